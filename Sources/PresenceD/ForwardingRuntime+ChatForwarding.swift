import PresenceForwarding
import PresenceLoop
import PresenceRealtime
import RedisShim

/// Forwarding as the realtime hub asks for it: a chat message becomes a `ForwardEntry` on the
/// loop's forwarder, and the forwarder's counters and queue figures become `ForwardingFigures`.
extension ForwardingRuntime: ChatForwarding {
    package var modeName: String {
        switch storage {
        case .files: "files"
        case .redisStream: "redis-stream"
        }
    }

    package func store(_ message: ForwardedMessage, on loop: EventLoop, _ done: @escaping (Bool) -> Void) {
        guard let forwarder = forwarder(on: loop) else { return done(false) }
        let entry = ForwardEntry(
            id: message.id, channel: message.channel, sender: message.sender, content: message.content,
            createdAt: message.createdAt, requestID: message.requestID)
        forwarder.accept(consume entry) { stored in
            guard case .success = stored else {
                forwarder.countRefused()
                return done(false)
            }
            done(true)
        }
    }

    package func figures(on loop: EventLoop) -> ForwardingFigures? {
        guard let forwarder = forwarder(on: loop) else { return nil }
        var figures = ForwardingFigures()
        let counters = forwarder.counters
        figures.delivered = counters.delivered
        figures.retried = counters.retried
        figures.deadLettered = counters.deadLettered
        figures.poisoned = counters.poisoned
        figures.refused = counters.refused
        if let stats = forwarder.queueStats {
            figures.queueDepth = stats.depth
            figures.deadLetters = stats.deadLetters
            figures.oldestAgeMillis = stats.oldestAgeMillis(nowMillis: UnixTime.nowMillis())
        }
        if let buffered = bufferedQueue(on: loop) {
            figures.localBacklog = buffered.localDepth
            figures.queuedLocally = buffered.counters.queuedLocally
            figures.movedToStream = buffered.counters.movedToStream
        }
        return figures
    }
}
