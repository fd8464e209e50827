import Synchronization

/// Control work posted to a loop from other threads (stop, drain, reload), run at its next turn.
/// Not the fan-out path (that is `CrossLoopFanOut`'s rings); an empty mailbox costs one atomic load per turn.
package final class Mailbox: Sendable {
    package typealias Job = @Sendable (EventLoop) -> Void
    private let jobs = Lock<[Job]>([])
    private let count = Atomic<Int>(0)
    private let backend: UnsafeSendable<any IOBackend>

    package init(backend: any IOBackend) {
        self.backend = UnsafeSendable(backend)
    }

    /// Queues `job` and wakes the loop; callable from any thread.
    package func post(_ job: @escaping Job) {
        let wasEmpty = jobs.withLock { list in
            list.append(job)
            count.add(1, ordering: .releasing)
            return list.count == 1
        }
        if wasEmpty { backend.value.wake() }
    }

    /// Runs every posted job on the loop's thread.
    package func drain(_ loop: EventLoop) {
        guard count.load(ordering: .acquiring) > 0 else { return }
        let pending = jobs.withLock { list -> [Job] in
            guard !list.isEmpty else { return [] }
            count.subtract(list.count, ordering: .relaxed)
            defer { list.removeAll(keepingCapacity: true) }
            return list
        }
        for job in pending { job(loop) }
    }
}

/// A value handed across threads deliberately, where the type's own thread rules make it safe.
package struct UnsafeSendable<T>: @unchecked Sendable {
    package let value: T
    package init(_ value: T) { self.value = value }
}
