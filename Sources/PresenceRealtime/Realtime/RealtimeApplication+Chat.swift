import PresenceLoop
import WSCore

/// Chat messages (docs/protocol.md, "Chat messages"): stored for chat-service first (when
/// forwarding), then given their offset in the channel's history — which also settles a repeated
/// nonce — then fanned out. A client's message and the server API's `POST /api/v1/publish` take the
/// same path.
extension RealtimeApplication {
    /// What a publish became.
    enum Published {
        /// Stored and fanned out; or, for a nonce seen before (`duplicate`), the original, which
        /// was not stored, fanned out or forwarded again.
        case stored(HistoryAppend, id: String, timestamp: String)
        /// It could not be stored (forward queue full or unusable): nothing was fanned out.
        case refused
    }

    func message(_ id: ConnectionID, _ channel: String, _ content: String, nonce: String?) {
        guard let session = sessions[Int(id.slot)], session.joined.contains(channel) else {
            return fail(id, .notJoined, "join the channel before sending to it", channel: channel, nonce: nonce)
        }
        let arrived = loop.turnStartNanos
        if hub.forwarding == nil, let embedded = embeddedHistory, let local = channels.channel(channel) {
            // Embedded mode without forwarding: stored and fanned out right here (the hot path:
            // no callback, no struct of strings copied along, the channel looked up once).
            let (messageID, millis) = ids.next()
            let timestamp = Timestamp.iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000))
            let appended = embedded.append(
                id: messageID, channel: channel, sender: session.user, content: content,
                timestamp: timestamp, nonce: nonce, now: millis, handle: &local.history)
            if appended.duplicate { return sendOriginal(appended.frame, to: id) }
            fanOut(channel: channel, frame: appended.frame, position: appended.position, local: local)
            return loop.counters.fanOutQueued(arrivedAt: arrived)
        }
        publish(
            channel: channel, sender: session.user, content: content, nonce: nonce, forward: true,
            requestID: session.requestID
        ) { [unowned self] published in
            switch published {
            case .stored(let stored, _, _) where stored.duplicate:
                self.sendOriginal(stored.frame, to: id)
            case .stored:
                self.loop.counters.fanOutQueued(arrivedAt: arrived)
            case .refused:
                self.fail(id, .unavailable, "the message could not be stored; try again", channel: channel, nonce: nonce)
            }
        }
    }

    /// A repeated nonce: the sender alone gets the original again; the channel saw it once.
    private func sendOriginal(_ frame: SharedBytes, to id: ConnectionID) {
        realtimeCounters.nonceDuplicates &+= 1
        server.send(id, frame)
    }

    /// Stores and fans out one chat message from `sender`; `done` runs on this loop's thread.
    /// `forward` false keeps it from chat-service (the server API's `forward:false`).
    func publish(
        channel: String, sender: String, content: String, nonce: String?, forward: Bool, requestID: String,
        _ done: @escaping (Published) -> Void
    ) {
        let (messageID, millis) = ids.next()
        let timestamp = Timestamp.iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000))
        let message = ChatMessage(id: messageID, channel: channel, sender: sender, content: content, timestamp: timestamp, nonce: nonce)
        guard forward, let forwarding = hub.forwarding else { return store(message, done) }
        let history = hub.history
        let store = { [unowned self] in self.store(message, done) }
        // Stored for chat-service before anyone sees it; refused (not dropped) when it cannot be.
        let forwardThenStore = { [unowned self] in
            let refused = {
                if let nonce { history.releaseForward(channel: channel, sender: sender, nonce: nonce) }
                done(.refused)
            }
            let forwarded = ForwardedMessage(
                id: messageID, channel: channel, sender: sender, content: content, createdAt: timestamp,
                requestID: requestID)
            forwarding.store(forwarded, on: self.loop) { stored in stored ? store() : refused() }
        }
        guard let nonce else { return forwardThenStore() }
        // A repeat (on any instance) is not stored for chat-service again; the history answers it.
        history.claimForward(channel: channel, sender: sender, nonce: nonce) { seenBefore in
            if seenBefore { store() } else { forwardThenStore() }
        }
    }

    /// Gives the message its offset in the channel's history and fans it out (a repeated nonce:
    /// the original, fanned out no more). In this process's history that happens right here, with
    /// no callback on the message path.
    private func store(_ message: ChatMessage, _ done: @escaping (Published) -> Void) {
        if let embeddedHistory {
            return stored(embeddedHistory.append(message, now: UnixTime.nowMillis()), message, done)
        }
        hub.history.append(message, publish: hub.redis != nil) { [unowned self] appended in self.stored(appended, message, done) }
    }

    private func stored(_ appended: HistoryAppend?, _ message: ChatMessage, _ done: (Published) -> Void) {
        guard let appended else { return done(.refused) }
        if !appended.duplicate {
            fanOut(channel: message.channel, frame: appended.frame, position: appended.position, publishedToRedis: appended.published)
        }
        done(.stored(appended, id: message.id, timestamp: message.timestamp))
    }
}
