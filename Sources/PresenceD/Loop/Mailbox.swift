import Synchronization

/// Work posted to a loop from other threads (signals, cross-thread fan-out), run at its next turn.
final class Mailbox: Sendable {
    typealias Job = @Sendable (EventLoop) -> Void
    private let jobs = Mutex<[Job]>([])
    private let backend: UnsafeSendable<any IOBackend>

    init(backend: any IOBackend) {
        self.backend = UnsafeSendable(backend)
    }

    /// Queues `job` and wakes the loop; callable from any thread.
    func post(_ job: @escaping Job) {
        let wasEmpty = jobs.withLock { list in
            list.append(job)
            return list.count == 1
        }
        if wasEmpty { backend.value.wake() }
    }

    /// Runs every posted job on the loop's thread.
    func drain(_ loop: EventLoop) {
        let pending = jobs.withLock { list -> [Job] in
            guard !list.isEmpty else { return [] }
            defer { list.removeAll(keepingCapacity: true) }
            return list
        }
        for job in pending { job(loop) }
    }
}

/// A value handed across threads deliberately, where the type's own thread rules make it safe.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
