import PresenceLoop
import RedisShim

/// Chat-service forwarding as the realtime code sees it: a chat message stored durably before it
/// is fanned out, the end of each loop turn, and figures for `/metrics` and the console.
/// `PresenceForwarding`'s `ForwardingRuntime` implements it and the daemon plugs it into the hub,
/// so the realtime code never imports the forwarding code. Every call but `stop`'s caller runs on
/// the named loop's thread.
package protocol ChatForwarding: AnyObject, Sendable {
    /// "files" (embedded mode) or "redis-stream" (Redis mode), for the console.
    var modeName: String { get }
    /// Stores `message` for chat-service on `loop`; `done(true)` once it is durable, `done(false)`
    /// when it is refused (the queue is full or unusable).
    func store(_ message: ForwardedMessage, on loop: EventLoop, _ done: @escaping (Bool) -> Void)
    /// End of loop `index`'s turn: the turn's batched appends are written and completed.
    func endTurn(on index: Int)
    /// At `loop`'s start, on its thread: opens its queue and starts delivering.
    func loopStarted(_ loop: EventLoop)
    /// At shutdown, on `loop`'s thread: stops sending, flushes and closes its queue.
    func stop(on loop: EventLoop)
    /// Redis mode, once `loop`'s command connection exists: the shared stream is reachable.
    func redisAttached(loop: EventLoop, redis: any RedisCommanding, instanceID: String)
    /// `loop`'s forwarding figures (nil: no forwarder on that loop).
    func figures(on loop: EventLoop) -> ForwardingFigures?
}

/// One chat message for chat-service, as the realtime code hands it over.
package struct ForwardedMessage: Sendable {
    package let id: String
    package let channel: String
    package let sender: String
    package let content: String
    /// ISO 8601, the message's own timestamp.
    package let createdAt: String
    /// The request id sent as `X-Request-ID`.
    package let requestID: String

    package init(id: String, channel: String, sender: String, content: String, createdAt: String, requestID: String) {
        self.id = id
        self.channel = channel
        self.sender = sender
        self.content = content
        self.createdAt = createdAt
        self.requestID = requestID
    }
}

/// One loop's forwarding counters and queue figures (summed over loops for `/metrics`).
package struct ForwardingFigures: Sendable, Equatable {
    package var delivered: UInt64 = 0
    package var retried: UInt64 = 0
    /// Every entry moved to the dead letters (refused by a 4xx, or out of attempts).
    package var deadLettered: UInt64 = 0
    /// Of those, entries answered 5xx FORWARD_MAX_ATTEMPTS times (poison messages).
    package var poisoned: UInt64 = 0
    package var refused: UInt64 = 0
    package var queueDepth = 0
    package var deadLetters = 0
    package var oldestAgeMillis: Int64 = 0
    /// Redis mode: chat messages in the local queue waiting for Redis (nil: embedded mode).
    package var localBacklog: Int?
    /// Redis mode: messages written to the local queue because Redis could not take them.
    package var queuedLocally: UInt64 = 0
    /// Redis mode: of those (and of any left by an earlier run), the ones now in the stream.
    package var movedToStream: UInt64 = 0

    package init() {}

    /// Adds another loop's figures (the oldest age is the larger one).
    package mutating func add(_ other: ForwardingFigures) {
        delivered &+= other.delivered
        retried &+= other.retried
        deadLettered &+= other.deadLettered
        poisoned &+= other.poisoned
        refused &+= other.refused
        queueDepth += other.queueDepth
        deadLetters += other.deadLetters
        oldestAgeMillis = max(oldestAgeMillis, other.oldestAgeMillis)
        if let n = other.localBacklog { localBacklog = (localBacklog ?? 0) + n }
        queuedLocally &+= other.queuedLocally
        movedToStream &+= other.movedToStream
    }
}
