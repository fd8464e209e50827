import Glibc

/// Forwarding's set-up (CHAT_SERVICE_URL): the state directory locked for this process, and per
/// loop a durable queue (`FileForwardQueue` under STATE_DIRECTORY), the loop's own HTTP client and
/// a `Forwarder`. Queues left by a run with more loops are adopted by the loops of this one.
final class ForwardingRuntime: @unchecked Sendable {
    let target: OutboundURL
    let token: String?
    let directory: String
    let options: FileForwardQueue.Options
    private let adoptions: [[Int]]
    private let lockFD: Int32
    /// Each loop's forwarder (its box is touched by that loop's thread only).
    private final class LoopParts { var forwarder: Forwarder? }
    private let parts: [LoopParts]

    /// Locks the state directory; throws when another presenced holds it or it cannot be made.
    init(target: OutboundURL, token: String?, directory: String, loops: Int, options: FileForwardQueue.Options) throws(ForwardQueueError) {
        self.target = target
        self.token = token
        self.directory = directory
        self.options = options
        lockFD = try FileForwardQueue.lockDirectory(directory)
        adoptions = FileForwardQueue.adoptions(existing: FileForwardQueue.existingIndices(in: directory), loops: loops)
        parts = (0..<loops).map { _ in LoopParts() }
    }

    deinit { Glibc.close(lockFD) }

    /// On each loop's thread at its start: opens its queue and starts delivering what it holds.
    func loopStarted(_ loop: EventLoop) {
        do {
            let queue = try FileForwardQueue.open(directory: directory, index: loop.index, options: options,
                                                  adopting: adoptions[loop.index])
            let found = queue.recovery
            if found.pending > 0 || found.deadLetters > 0 || found.truncatedBytes > 0 || !found.adopted.isEmpty {
                Log.info("forward queue recovered", ["loop": "\(loop.index)", "waiting": "\(found.pending)",
                                                     "dead_letters": "\(found.deadLetters)", "truncated_bytes": "\(found.truncatedBytes)",
                                                     "adopted": "\(found.adopted)"])
            }
            let forwarder = Forwarder(loop: loop, queue: queue, client: LoopHTTPClient(loop: loop), target: target, token: token)
            parts[loop.index].forwarder = forwarder
            forwarder.start()
        } catch {
            Log.error("forward queue unusable: chat messages on this loop are refused", ["loop": "\(loop.index)", "error": "\(error)"])
        }
    }

    /// The calling loop's forwarder (nil when its queue could not be opened).
    func forwarder(on loop: EventLoop) -> Forwarder? { parts[loop.index].forwarder }
}
