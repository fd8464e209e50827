import WSCore

/// Chat messages (CONTRACT §5, §7, §10, §11): stored for chat-service first (when forwarding),
/// then given their offset in the channel's history — which also settles a repeated nonce — then
/// fanned out. A client's message and the server API's `POST /api/v1/publish` take the same path.
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
        publish(channel: channel, sender: session.user, content: content, nonce: nonce, forward: true,
                requestID: session.requestID) { [unowned self] published in
            switch published {
            case .stored(let stored, _, _) where stored.duplicate:
                // The sender alone gets the original again; the channel saw it once.
                self.realtimeCounters.nonceDuplicates &+= 1
                self.server.send(id, stored.frame)
            case .stored:
                self.loop.counters.fanOutQueued(arrivedAt: arrived)
            case .refused:
                self.fail(id, .unavailable, "the message could not be stored; try again", channel: channel, nonce: nonce)
            }
        }
    }

    /// Stores and fans out one chat message from `sender`; `done` runs on this loop's thread.
    /// `forward` false keeps it from chat-service (the server API's `forward:false`).
    func publish(channel: String, sender: String, content: String, nonce: String?, forward: Bool, requestID: String,
                 _ done: @escaping (Published) -> Void) {
        let (messageID, millis) = ids.next()
        let timestamp = Timestamp.iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000))
        let message = ChatMessage(id: messageID, channel: channel, sender: sender, content: content, timestamp: timestamp, nonce: nonce)
        let history = hub.history
        let store = { [unowned self] in
            history.append(message, publish: self.hub.redis != nil) { [unowned self] appended in
                guard let appended else { return done(.refused) }
                if !appended.duplicate {
                    self.fanOut(channel: channel, frame: appended.frame, position: appended.position, publishedToRedis: appended.published)
                }
                done(.stored(appended, id: messageID, timestamp: timestamp))
            }
        }
        guard forward, let forwarding = hub.forwarding else { return store() }
        // Stored for chat-service before anyone sees it; refused (not dropped) when it cannot be.
        let forwardThenStore = { [unowned self] in
            let refused = {
                if let nonce { history.releaseForward(channel: channel, sender: sender, nonce: nonce) }
                done(.refused)
            }
            guard let forwarder = forwarding.forwarder(on: self.loop) else { return refused() }
            let entry = ForwardEntry(id: messageID, channel: channel, sender: sender, content: content, createdAt: timestamp,
                                     requestID: requestID)
            forwarder.accept(consume entry) { stored in
                guard case .success = stored else {
                    forwarder.countRefused()
                    return refused()
                }
                store()
            }
        }
        guard let nonce else { return forwardThenStore() }
        // A repeat (on any instance) is not stored for chat-service again; the history answers it.
        history.claimForward(channel: channel, sender: sender, nonce: nonce) { seenBefore in
            if seenBefore { store() } else { forwardThenStore() }
        }
    }
}
