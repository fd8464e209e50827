import Glibc
import PresenceLoop
import PresenceOutbound
import RedisShim

/// Forwarding's set-up (CHAT_SERVICE_URL): per loop a durable queue, the loop's own HTTP client
/// and a `Forwarder`.
///
/// - Embedded mode: a `FileForwardQueue` per loop under STATE_DIRECTORY, locked for this process;
///   queues left by a run with more loops are adopted by the loops of this one. Every loop
///   delivers its own queue.
/// - Redis mode: one `BufferedStreamForwardQueue` per loop: a `RedisStreamForwardQueue` on the
///   loop's Redis connection (from the moment it is attached), all on the shared stream, behind
///   the loop's `FileForwardQueue` under STATE_DIRECTORY that keeps chat messages while Redis is
///   unreachable (docs/operations.md, "Through a Redis outage (Redis mode)"). The directory is
///   locked and the local queues opened at start, as in embedded mode: an unusable STATE_DIRECTORY
///   fails the start instead of the first outage, and entries an earlier run kept during an outage
///   are moved to the stream. Every loop appends; loop 0 is this instance's consumer
///   (`<instance id>/0`) and the only one that delivers — of all instances, the one holding the
///   reader lease does (strict per-channel order).
package final class ForwardingRuntime: @unchecked Sendable {
    /// Where the queue lives.
    package enum Storage {
        case files(directory: String, options: FileForwardQueue.Options)
        /// The shared stream; `localDirectory` holds each loop's queue for Redis outages (nil:
        /// messages are refused with `unavailable` while Redis is unreachable).
        case redisStream(
            options: RedisStreamForwardQueue.Options, localDirectory: String? = nil,
            localOptions: FileForwardQueue.Options = FileForwardQueue.Options())
    }

    package let target: OutboundURL
    package let token: String?
    package let storage: Storage
    /// Backoff and FORWARD_MAX_ATTEMPTS.
    package let policy: ForwardRetryPolicy
    private let adoptions: [[Int]]
    private let lock: Lock<Int32>
    /// Each loop's forwarder and, in Redis mode, its queue (a box touched by that loop's thread only).
    private final class LoopParts {
        var forwarder: Forwarder?
        var buffered: BufferedStreamForwardQueue?
        /// Redis mode: the loop's stream queue when its connection came before the loop's start.
        var earlyStream: RedisStreamForwardQueue?
    }
    private let parts: [LoopParts]

    /// A storage with a directory locks it: throws when another presenced holds it or it cannot
    /// be made.
    package init(
        target: OutboundURL, token: String?, storage: Storage, loops: Int,
        policy: ForwardRetryPolicy = ForwardRetryPolicy()
    ) throws(ForwardQueueError) {
        self.target = target
        self.token = token
        self.storage = storage
        self.policy = policy
        switch storage {
        case .files(let directory, _), .redisStream(_, let directory?, _):
            lock = Lock(try FileForwardQueue.lockDirectory(directory))
            adoptions = FileForwardQueue.adoptions(existing: FileForwardQueue.existingIndices(in: directory), loops: loops)
        case .redisStream(_, nil, _):
            lock = Lock(-1)
            adoptions = []
        }
        parts = (0..<loops).map { _ in LoopParts() }
    }

    deinit { unlockDirectory() }

    /// Gives up the state directory's lock, once every loop has stopped (``stop(on:)``): for a
    /// process that starts another instance on the same directory (tests); a daemon holds it
    /// until it exits.
    func unlockDirectory() {
        lock.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// On each loop's thread at its start: opens its queue and starts delivering what it holds
    /// (Redis mode: loop 0 only, once the stream is attached by
    /// ``redisAttached(loop:redis:instanceID:)``; until then messages are kept locally).
    package func loopStarted(_ loop: EventLoop) {
        switch storage {
        case .files(let directory, let options):
            guard let queue = openLocal(directory, options, loop, unusable: "chat messages on this loop are refused") else { return }
            start(queue, on: loop, delivers: true)
        case .redisStream(let options, let directory, let localOptions):
            let local = directory.flatMap {
                openLocal($0, localOptions, loop, unusable: "chat messages on this loop are refused while Redis is unreachable")
            }
            let queue = BufferedStreamForwardQueue(loop: loop, options: options, local: local)
            let mine = parts[loop.index]
            mine.buffered = queue
            if let early = mine.earlyStream {
                mine.earlyStream = nil
                queue.attach(early)
            }
            start(queue, on: loop, delivers: loop.index == 0)
        }
    }

    /// Opens the loop's file queue (adopting those of a run with more loops); nil, logged, when it
    /// cannot be used.
    private func openLocal(
        _ directory: String, _ options: FileForwardQueue.Options, _ loop: EventLoop,
        unusable consequence: String
    ) -> FileForwardQueue? {
        do {
            let queue = try FileForwardQueue.open(
                directory: directory, index: loop.index, options: options,
                adopting: adoptions[loop.index])
            queue.batchesAppends = true
            let found = queue.recovery
            if found.pending > 0 || found.deadLetters > 0 || found.truncatedBytes > 0 || !found.adopted.isEmpty {
                Log.info(
                    "forward queue recovered",
                    [
                        "loop": "\(loop.index)", "waiting": "\(found.pending)",
                        "dead_letters": "\(found.deadLetters)", "truncated_bytes": "\(found.truncatedBytes)",
                        "adopted": "\(found.adopted)",
                    ])
            }
            return queue
        } catch {
            Log.error("forward queue unusable: " + consequence, ["loop": "\(loop.index)", "error": "\(error)"])
            return nil
        }
    }

    /// Redis mode, on the loop's thread once its command connection exists: the loop's queue on
    /// the shared stream (loop 0 also reads it, as consumer `<instanceID>/0`).
    package func redisAttached(loop: EventLoop, redis: any RedisCommanding, instanceID: String) {
        guard case .redisStream(let options, _, _) = storage else { return }
        let mine = parts[loop.index]
        guard mine.earlyStream == nil, mine.buffered?.stream == nil else { return }
        let stream = RedisStreamForwardQueue(redis: redis, consumer: "\(instanceID)/\(loop.index)", options: options)
        if let queue = mine.buffered { queue.attach(stream) } else { mine.earlyStream = stream }
    }

    private func start(_ queue: any ForwardQueue, on loop: EventLoop, delivers: Bool) {
        let forwarder = Forwarder(
            loop: loop, queue: queue, client: LoopHTTPClient(loop: loop), target: target, token: token,
            delivers: delivers, policy: policy)
        parts[loop.index].forwarder = forwarder
        forwarder.start()
    }

    /// The calling loop's forwarder (nil when its queue could not be opened in embedded mode).
    package func forwarder(on loop: EventLoop) -> Forwarder? { parts[loop.index].forwarder }

    /// Redis mode: the calling loop's queue (its local backlog, for `/metrics`).
    package func bufferedQueue(on loop: EventLoop) -> BufferedStreamForwardQueue? { parts[loop.index].buffered }

    /// End of the loop's turn: its batched appends are written and completed.
    package func endTurn(on index: Int) { parts[index].forwarder?.endTurn() }

    /// At shutdown, on each loop's thread: stops sending (what is in flight stays queued and is
    /// sent again at the next start) and flushes and closes the queue.
    package func stop(on loop: EventLoop) {
        parts[loop.index].forwarder?.stop()
        parts[loop.index].forwarder = nil
        parts[loop.index].buffered = nil
    }
}
