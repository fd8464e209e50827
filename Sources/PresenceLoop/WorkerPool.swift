import CSystem
import Glibc
import Synchronization

/// A fixed pool of worker threads (pthreads, like LoopGroup's LoopThread) with a bounded queue: `submit` returns false when the queue is full.
///
/// For the two blocking calls that must stay off the event-loop threads; there are two pools,
/// one thread each:
/// - `LoopStream.resolverPool` ("resolver"): getaddrinfo, through `HostResolver.resolve` (5 s
///   bound), for the host name of every `LoopStream` — the outbound HTTP connections
///   (`LoopHTTPClient`: auth service, channel access checks, forwarding) and the Redis connections
///   (`LoopRedisTransport`). Numeric addresses never reach it.
/// - `QueueLogFile.syncPool` ("fsync"): the periodic `fdatasync` of the forward queue's log
///   files (`QueueLogFile.syncInBackground`).
///
/// Jobs run in submission order on whichever worker is free; `queueLimit` bounds the jobs waiting
/// for a worker (running jobs do not count). Idle workers sleep in read(2) on an eventfd in
/// semaphore mode, one count per queued job. Threads are detached; `shutdown()` lets them finish
/// the queue and end.
package final class WorkerPool: Sendable {
    /// A unit of work.
    package typealias Job = @Sendable () -> Void

    /// The queue and the flags guarded with it.
    private struct State {
        var ring: [Job?]
        var head = 0
        var count = 0
        var stopping = false
    }

    private let state: Lock<State>
    private let wakeFD: Int32
    private let started = Atomic<Int>(0)
    package let queueLimit: Int

    /// Starts `threads` workers (named `worker-N`) with room for `queueLimit` waiting jobs.
    package init(threads: Int, queueLimit: Int, name: String = "worker") {
        precondition(threads > 0 && queueLimit > 0)
        self.queueLimit = queueLimit
        state = Lock(State(ring: [Job?](repeating: nil, count: queueLimit)))
        wakeFD = eventfd(0, Int32(EFD_SEMAPHORE) | Int32(EFD_CLOEXEC))
        if wakeFD >= 0 {
            for i in 0..<threads {
                guard let thread = try? LoopThread.spawn(name: "\(name)-\(i)", { [self] in self.work() }) else { break }
                pthread_detach(thread)
                started.add(1, ordering: .relaxed)
            }
        }
    }

    /// How many worker threads actually started (a failed pthread_create leaves fewer).
    var threadCount: Int { started.load(ordering: .relaxed) }

    deinit {
        if wakeFD >= 0 { close(wakeFD) }
    }

    /// Queues `job`; false (and `job` is dropped) when the queue is full, the pool is shutting
    /// down, or no worker could be started.
    package func submit(_ job: @escaping Job) -> Bool {
        guard threadCount > 0 else { return false }
        let accepted = state.withLock { state -> Bool in
            guard !state.stopping, state.count < state.ring.count else { return false }
            state.ring[(state.head + state.count) % state.ring.count] = job
            state.count += 1
            return true
        }
        if accepted { signal(1) }
        return accepted
    }

    /// Jobs waiting for a worker.
    package var queued: Int { state.withLock { $0.count } }

    /// Refuses new jobs; workers run what is queued, then end.
    package func shutdown() {
        let first = state.withLock { state -> Bool in
            defer { state.stopping = true }
            return !state.stopping
        }
        if first { signal(UInt64(threadCount)) }
    }

    private func signal(_ n: UInt64) {
        var value = n
        while write(wakeFD, &value, 8) < 0 && errno == EINTR {}
    }

    /// A worker's life: wait for a count, take a job (or end when stopping with nothing queued).
    private func work() {
        while true {
            var value: UInt64 = 0
            let n = read(wakeFD, &value, 8)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            let job: Job?? = state.withLock { state -> Job?? in
                guard state.count > 0 else { return state.stopping ? .none : .some(nil) }
                let job = state.ring[state.head]
                state.ring[state.head] = nil
                state.head = (state.head + 1) % state.ring.count
                state.count -= 1
                return .some(job)
            }
            switch job {
            case .none:
                signal(1)  // pass the stop on to the next worker
                return
            case .some(let job?):
                job()
            case .some(nil):
                continue
            }
        }
    }
}
