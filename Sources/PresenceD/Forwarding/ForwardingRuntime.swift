import Glibc
import RedisShim

/// Forwarding's set-up (CHAT_SERVICE_URL): per loop a durable queue, the loop's own HTTP client
/// and a `Forwarder`.
///
/// - Embedded mode: a `FileForwardQueue` per loop under STATE_DIRECTORY, locked for this process;
///   queues left by a run with more loops are adopted by the loops of this one. Every loop
///   delivers its own queue.
/// - Redis mode: one `RedisStreamForwardQueue` per loop on the loop's Redis connection (from the
///   moment it is attached), all on the shared stream. Every loop appends; loop 0 is this
///   instance's consumer (`<instance id>/0`) and the only one that delivers — of all instances,
///   the one holding the reader lease does (strict per-channel order).
final class ForwardingRuntime: @unchecked Sendable {
    /// Where the queue lives.
    enum Storage {
        case files(directory: String, options: FileForwardQueue.Options)
        case redisStream(options: RedisStreamForwardQueue.Options)
    }

    let target: OutboundURL
    let token: String?
    let storage: Storage
    /// Backoff and FORWARD_MAX_ATTEMPTS.
    let policy: ForwardRetryPolicy
    private let adoptions: [[Int]]
    private let lockFD: Int32
    /// Each loop's forwarder (its box is touched by that loop's thread only).
    private final class LoopParts { var forwarder: Forwarder? }
    private let parts: [LoopParts]

    /// Embedded storage locks its state directory: throws when another presenced holds it or it
    /// cannot be made.
    init(target: OutboundURL, token: String?, storage: Storage, loops: Int,
         policy: ForwardRetryPolicy = ForwardRetryPolicy()) throws(ForwardQueueError) {
        self.target = target
        self.token = token
        self.storage = storage
        self.policy = policy
        switch storage {
        case .files(let directory, _):
            lockFD = try FileForwardQueue.lockDirectory(directory)
            adoptions = FileForwardQueue.adoptions(existing: FileForwardQueue.existingIndices(in: directory), loops: loops)
        case .redisStream:
            lockFD = -1
            adoptions = []
        }
        parts = (0..<loops).map { _ in LoopParts() }
    }

    deinit { if lockFD >= 0 { Glibc.close(lockFD) } }

    /// On each loop's thread at its start: embedded, opens its queue and starts delivering what
    /// it holds. (Redis mode waits for ``redisAttached(loop:redis:instanceID:)``.)
    func loopStarted(_ loop: EventLoop) {
        guard case .files(let directory, let options) = storage else { return }
        do {
            let queue = try FileForwardQueue.open(directory: directory, index: loop.index, options: options,
                                                  adopting: adoptions[loop.index])
            queue.batchesAppends = true
            let found = queue.recovery
            if found.pending > 0 || found.deadLetters > 0 || found.truncatedBytes > 0 || !found.adopted.isEmpty {
                Log.info("forward queue recovered", ["loop": "\(loop.index)", "waiting": "\(found.pending)",
                                                     "dead_letters": "\(found.deadLetters)", "truncated_bytes": "\(found.truncatedBytes)",
                                                     "adopted": "\(found.adopted)"])
            }
            start(queue, on: loop, delivers: true)
        } catch {
            Log.error("forward queue unusable: chat messages on this loop are refused", ["loop": "\(loop.index)", "error": "\(error)"])
        }
    }

    /// Redis mode, on the loop's thread once its command connection exists: the loop's queue on
    /// the shared stream (loop 0 also reads it, as consumer `<instanceID>/0`).
    func redisAttached(loop: EventLoop, redis: any RedisCommanding, instanceID: String) {
        guard case .redisStream(let options) = storage, parts[loop.index].forwarder == nil else { return }
        let queue = RedisStreamForwardQueue(redis: redis, consumer: "\(instanceID)/\(loop.index)", options: options)
        start(queue, on: loop, delivers: loop.index == 0)
    }

    private func start(_ queue: any ForwardQueue, on loop: EventLoop, delivers: Bool) {
        let forwarder = Forwarder(loop: loop, queue: queue, client: LoopHTTPClient(loop: loop), target: target, token: token,
                                  delivers: delivers, policy: policy)
        parts[loop.index].forwarder = forwarder
        forwarder.start()
    }

    /// The calling loop's forwarder (nil when its queue could not be opened, or in Redis mode
    /// before the loop's Redis connection exists).
    func forwarder(on loop: EventLoop) -> Forwarder? { parts[loop.index].forwarder }

    /// End of the loop's turn: its batched appends are written and completed.
    func endTurn(on index: Int) { parts[index].forwarder?.endTurn() }

    /// At shutdown, on each loop's thread: stops sending (what is in flight stays queued and is
    /// sent again at the next start) and flushes and closes the queue.
    func stop(on loop: EventLoop) {
        parts[loop.index].forwarder?.stop()
        parts[loop.index].forwarder = nil
    }
}
