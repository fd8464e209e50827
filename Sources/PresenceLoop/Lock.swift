// The one lock type of the daemon and its tests: `Synchronization.Mutex` itself in normal builds,
// a `pthread_mutex_t` in ThreadSanitizer builds (`-DPRESENCED_TSAN`, Benchmarks/sanitizers.sh).
// On Linux `Mutex` locks with raw futexes inside libswiftSynchronization, which TSan does not see,
// so every access under a `Mutex` looks racy to it; TSan intercepts pthread locks.
#if PRESENCED_TSAN
import Glibc

/// `Mutex`'s shape (`init(_:)`, `withLock`) over a heap-allocated `pthread_mutex_t` (a stable
/// address) for ThreadSanitizer builds only.
package final class Lock<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    package init(_ initialValue: consuming sending Value) {
        mutex = .allocate(capacity: 1)
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value, like `Mutex.withLock`.
    package func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
#else
import Synchronization

/// `Synchronization.Mutex` under the daemon's name: the same type, so no cost on the hot path.
package typealias Lock<Value: ~Copyable> = Mutex<Value>
#endif
