import WSCore

/// The realtime protocol on one loop (CONTRACT §5): the `/ws` upgrade policy, join/leave,
/// messages, typing and ping for this loop's connections, and fan-out to members here.
final class RealtimeApplication: WebSocketApplication {
    /// Per-connection protocol state.
    struct Session {
        var user: String
        /// The upgrade's request id, carried by forwards to chat-service (empty when not forwarding).
        var requestID: String
        var allowedChannels: Set<String>?
        var joined: [String] = []
        var limiter: RateLimiter
        var rateStrikes = 0
        /// Channels where this connection is typing, with the auto-stop time.
        var typing: [(channel: String, until: Int64)] = []
    }

    static let maxChannelsPerConnection = 64
    static let typingTimeoutMillis: Int64 = 5_000
    /// Presence grace periods are checked this often on loop 0.
    static let presenceTickMillis: Int64 = 250

    let hub: RealtimeHub
    unowned(unsafe) let loop: EventLoop
    unowned(unsafe) var server: WebSocketServer!
    private var channels = LocalChannels()
    private var sessions: [Session?] = []
    /// Joins whose presence part waits for the channel's subscription (Redis mode; entries live
    /// only while waiting, so sessions carry nothing for it).
    private var awaitingSubscription = Set<AwaitingJoin>()
    private struct AwaitingJoin: Hashable {
        let connection: ConnectionID
        let channel: String
    }
    private var ids = MessageIDGenerator()
    private var typingSlots = Set<UInt32>()

    init(hub: RealtimeHub, loop: EventLoop) {
        self.hub = hub
        self.loop = loop
        hub.register(self, loop: loop)
        loop.onTick = { [unowned self] in self.tick() }
        loop.scheduleTick(at: loop.now + RealtimeApplication.presenceTickMillis)
    }

    // MARK: Upgrade

    func acceptsUpgrade(path: String) -> Bool { path == "/ws" }

    func authorize(_ head: HTTPRequestHead, requestID: String, server: WebSocketServer,
                   _ done: @escaping (Result<UpgradeGrant, UpgradeRefusal>) -> Void) {
        guard !hub.draining.load(ordering: .relaxed) else {
            return done(.failure(UpgradeRefusal(status: 503, code: "draining", message: "server draining")))
        }
        guard hub.origins.allows(head.headers["origin"], host: head.headers["host"]) else {
            return done(.failure(UpgradeRefusal(status: 403, code: "forbidden_origin", message: "origin not allowed")))
        }
        guard let token = head.queryParameter("token"), !token.isEmpty else {
            return done(reject(.missing, requestID: requestID))
        }
        let now = UnixTime.now()
        let claims: TokenClaims
        switch hub.verifier.verify(token, now: now) {
        case .success(let c): claims = c
        case .failure(let reason): return done(reject(reason, requestID: requestID))
        }
        // Capacity before the token is spent: a refused client may retry with the same token.
        let open = hub.sessions.add(1, ordering: .relaxed).newValue
        if open > hub.config.maxConnections {
            hub.sessions.subtract(1, ordering: .relaxed)
            return done(.failure(UpgradeRefusal(status: 503, code: "at_capacity", message: "server at capacity")))
        }
        hub.replayGuard.firstUse(jti: claims.jti, expiresAt: claims.expiresAt, now: now) { [hub] check in
            guard check != .replayed else {
                hub.sessions.subtract(1, ordering: .relaxed)
                return done(self.reject(.replayed, requestID: requestID))
            }
            if check == .firstInThisProcess { self.loop.counters.tokensCheckedInProcessOnly &+= 1 }
            done(.success(UpgradeGrant(claims: claims, requestID: requestID)))
        }
    }

    func abandoned(grant: UpgradeGrant, server: WebSocketServer) {
        hub.sessions.subtract(1, ordering: .relaxed)
    }

    private func reject(_ reason: TokenRejection, requestID: String) -> Result<UpgradeGrant, UpgradeRefusal> {
        loop.counters.tokenRejections.add(reason)
        Log.debug("token refused", requestID: requestID, ["reason": reason.rawValue])
        return .failure(UpgradeRefusal(status: 401, code: "invalid_token", message: "token \(reason.rawValue)"))
    }

    func opened(_ id: ConnectionID, grant: UpgradeGrant, server: WebSocketServer) {
        let s = Int(id.slot)
        while sessions.count <= s { sessions.append(nil) }
        let claims = grant.claims!
        sessions[s] = Session(user: claims.userID, requestID: hub.forwarding == nil ? "" : grant.requestID,
                              allowedChannels: claims.channels.map(Set.init),
                              limiter: RateLimiter(rate: hub.config.messageRate, now: loop.now))
    }

    func closed(_ id: ConnectionID, server: WebSocketServer) {
        let s = Int(id.slot)
        guard s < sessions.count, let session = sessions[s] else { return }
        sessions[s] = nil
        hub.sessions.subtract(1, ordering: .relaxed)
        for (channel, _) in session.typing { announceTyping(false, user: session.user, channel: channel, from: id) }
        typingSlots.remove(id.slot)
        for channel in session.joined {
            if channels.remove(id, from: channel) { hub.channelEmptied(channel) }
            if awaitingSubscription.remove(AwaitingJoin(connection: id, channel: channel)) == nil {
                hub.presence.leave(channel: channel, user: session.user, now: loop.now)
            }
        }
    }

    // MARK: Console (the instance view; on this loop's thread, never on the message path)

    /// WebSocket sessions open on this loop.
    var openSessions: Int { sessions.reduce(0) { $1 == nil ? $0 : $0 + 1 } }

    /// This loop's `limit` channels with the most member connections, most first.
    func busiestChannels(limit: Int) -> [TopChannels.Entry] {
        var top = TopChannels(limit: limit)
        for (name, channel) in channels.channels { top.offer(name, channel.members.count) }
        return top.entries
    }

    /// Closes every session on this loop with `code` (drain), in steps at most every 50 ms
    /// spread evenly over `windowMillis` (all at once when it is 0).
    func closeAll(code: CloseCode, reason: String, over windowMillis: Int64 = 0) {
        let ids = sessions.indices.filter { sessions[$0] != nil }.map {
            ConnectionID(slot: UInt32($0), generation: loop.generation(ofSlot: UInt32($0)))
        }
        guard !ids.isEmpty else { return }
        let steps = max(1, min(ids.count, Int(windowMillis / 50)))
        for step in 0..<steps {
            let batch = ids[(step * ids.count / steps)..<((step + 1) * ids.count / steps)]
            _ = loop.schedule(after: Int64(step) * windowMillis / Int64(steps)) { [unowned self] in
                for id in batch where self.sessions[Int(id.slot)] != nil { self.server.close(id, code: code, reason: reason) }
            }
        }
    }

    // MARK: Messages

    func received(_ id: ConnectionID, text: Bool, payload: UnsafeRawBufferPointer, server: WebSocketServer) {
        let s = Int(id.slot)
        guard sessions[s] != nil else { return }
        if !sessions[s]!.limiter.allow(rate: hub.config.messageRate, now: loop.now) {
            loop.counters.rateLimited &+= 1
            sessions[s]!.rateStrikes += 1
            if sessions[s]!.rateStrikes > 4 * max(1, hub.config.messageRate) {
                server.close(id, code: .policyViolation, reason: "message rate")
            } else {
                fail(id, .rateLimited, "more than \(hub.config.messageRate) messages per second")
            }
            return
        }
        sessions[s]!.rateStrikes = 0
        guard text else {
            loop.counters.messagesIn.add(.other)
            return fail(id, .badJSON, "binary frames are not accepted")
        }
        // Counted in each branch: the parsed message is never copied for the count.
        let counts = loop.counters.messagesIn
        switch ClientMessage.parse(payload) {
        case .failure(let error):
            counts.add(.other)
            fail(id, error.code, error.message)
        case .success(.ping):
            counts.add(.ping)
            server.send(id, ServerMessage.pong)
        case .success(.join(let channel)):
            counts.add(.join)
            join(id, channel)
        case .success(.leave(let channel)):
            counts.add(.leave)
            leave(id, channel)
        case .success(.message(let channel, let content)):
            counts.add(.message)
            message(id, channel, content)
        case .success(.typing(let channel, let typing)):
            counts.add(.typing)
            typingChanged(id, channel, typing)
        }
    }

    private func fail(_ id: ConnectionID, _ code: ProtocolErrorCode, _ message: String) {
        server.send(id, ServerMessage.error(code, message))
    }

    private func join(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        guard let session = sessions[s] else { return }
        if let allowed = session.allowedChannels, !allowed.contains(channel) {
            return fail(id, .forbiddenChannel, "the token does not allow this channel")
        }
        if session.joined.contains(channel) {
            // Already a member: confirm again without counting a second join.
            server.send(id, ServerMessage.presence(userID: session.user, online: true, channel: channel))
            return
        }
        guard session.joined.count < RealtimeApplication.maxChannelsPerConnection else {
            return fail(id, .tooLarge, "at most \(RealtimeApplication.maxChannelsPerConnection) channels per connection")
        }
        sessions[s]!.joined.append(channel)
        if channels.add(id, to: channel) { hub.channelOccupied(channel) }
        let awaiting = AwaitingJoin(connection: id, channel: channel)
        awaitingSubscription.insert(awaiting)
        hub.whenSubscribed(channel, on: loop) { [unowned self] in
            // Gone, left (and maybe back, with its own wait) meanwhile: nothing to do for this one.
            guard self.awaitingSubscription.remove(awaiting) != nil else { return }
            self.joinPresence(id, channel)
        }
    }

    /// The presence part of a join, once the channel's events reach this instance.
    private func joinPresence(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        guard let user = sessions[s]?.user else { return }
        hub.presence.join(channel: channel, user: user, now: loop.now) { [unowned self] result in
            guard self.loop.isOpen(id), self.sessions[s]?.joined.contains(channel) == true else { return }
            for member in result.online {
                self.server.send(id, ServerMessage.presence(userID: member, online: true, channel: channel))
            }
            if result.firstConnection {
                let frame = ServerMessage.presence(userID: user, online: true, channel: channel)
                self.fanOut(channel: channel, frame: frame, exceptConnection: id)
            }
        }
    }

    private func leave(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        guard let session = sessions[s], let index = session.joined.firstIndex(of: channel) else {
            return fail(id, .notJoined, "not a member of this channel")
        }
        stopTyping(id, channel)
        sessions[s]!.joined.remove(at: index)
        if channels.remove(id, from: channel) { hub.channelEmptied(channel) }
        // A join still waiting for the subscription never reached presence.
        if awaitingSubscription.remove(AwaitingJoin(connection: id, channel: channel)) == nil {
            hub.presence.leave(channel: channel, user: session.user, now: loop.now)
        }
    }

    private func message(_ id: ConnectionID, _ channel: String, _ content: String) {
        guard let session = sessions[Int(id.slot)], session.joined.contains(channel) else {
            return fail(id, .notJoined, "join the channel before sending to it")
        }
        let arrived = loop.turnStartNanos
        let (messageID, millis) = ids.next()
        let timestamp = Timestamp.iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000))
        let frame = ServerMessage.message(id: messageID, sender: session.user, content: content, channel: channel, timestamp: timestamp)
        guard let forwarding = hub.forwarding else {
            fanOut(channel: channel, frame: frame)
            return loop.counters.fanOutQueued(arrivedAt: arrived)
        }
        // Stored for chat-service before anyone sees it; refused (not dropped) when it cannot be.
        guard let forwarder = forwarding.forwarder(on: loop) else {
            return fail(id, .unavailable, "the message could not be stored; try again")
        }
        let entry = ForwardEntry(id: messageID, channel: channel, sender: session.user, content: content,
                                 createdAt: timestamp, requestID: session.requestID)
        forwarder.accept(consume entry) { [unowned self] stored in
            guard case .success = stored else {
                forwarder.countRefused()
                return self.fail(id, .unavailable, "the message could not be stored; try again")
            }
            self.fanOut(channel: channel, frame: frame)
            self.loop.counters.fanOutQueued(arrivedAt: arrived)
        }
    }

    // MARK: Typing

    private func typingChanged(_ id: ConnectionID, _ channel: String, _ typing: Bool) {
        let s = Int(id.slot)
        guard let session = sessions[s], session.joined.contains(channel) else {
            return fail(id, .notJoined, "join the channel before typing in it")
        }
        if !typing { return stopTyping(id, channel) }
        let until = loop.now + RealtimeApplication.typingTimeoutMillis
        if let i = session.typing.firstIndex(where: { $0.channel == channel }) {
            sessions[s]!.typing[i].until = until // still typing: only the auto-stop moves
        } else {
            sessions[s]!.typing.append((channel, until))
            typingSlots.insert(id.slot)
            announceTyping(true, user: session.user, channel: channel, from: id)
        }
        loop.scheduleTick(at: until)
    }

    private func stopTyping(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        guard let session = sessions[s], let i = session.typing.firstIndex(where: { $0.channel == channel }) else { return }
        sessions[s]!.typing.remove(at: i)
        if sessions[s]!.typing.isEmpty { typingSlots.remove(id.slot) }
        announceTyping(false, user: session.user, channel: channel, from: id)
    }

    private func announceTyping(_ typing: Bool, user: String, channel: String, from id: ConnectionID) {
        // To the other users' connections only, and droppable under backpressure.
        fanOut(channel: channel, frame: ServerMessage.typing(userID: user, channel: channel, typing: typing),
               exceptUser: user, droppable: true)
    }

    private func tick() {
        let now = loop.now
        // Every loop: grace periods (embedded), this loop's presence refresh (Redis).
        hub.presence.tick(now: now)
        loop.scheduleTick(at: now + RealtimeApplication.presenceTickMillis)
        for slot in typingSlots {
            guard let session = sessions[Int(slot)] else { continue }
            let id = ConnectionID(slot: slot, generation: loop.generation(ofSlot: slot))
            var next = Int64.max
            for entry in session.typing {
                if entry.until <= now { stopTyping(id, entry.channel) } else { next = min(next, entry.until) }
            }
            if next != .max { loop.scheduleTick(at: next) }
        }
    }

    // MARK: Fan-out

    /// Delivers here at once, then to the other loops through their rings and to the other
    /// instances through Redis.
    private func fanOut(channel: String, frame: SharedBytes, exceptUser: String? = nil,
                        exceptConnection: ConnectionID? = nil, droppable: Bool = false) {
        deliver(channel: channel, frame: frame, exceptUser: exceptUser, exceptConnection: exceptConnection, droppable: droppable)
        hub.publish(channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable, fromLoop: loop.index)
        hub.redis?.fanOut.publish(channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable)
    }

    /// Queues `frame` on every member of `channel` on this loop, skipping `exceptUser`'s
    /// connections and `exceptConnection`. Nothing is copied per recipient.
    func deliver(channel: String, frame: SharedBytes, exceptUser: String?, exceptConnection: ConnectionID?, droppable: Bool) {
        guard let members = channels.channel(channel)?.members else { return }
        if exceptUser == nil && exceptConnection == nil && !droppable {
            // The message path: every member, no per-member test beyond the backlog.
            let server = self.server!
            let queued = members.withUnsafeBufferPointer { targets in
                loop.enqueue(frame, on: targets, limit: server.config.maxOutboundBytes) { server.closeSlowConsumer($0) }
            }
            loop.counters.fannedOut(frame, count: queued)
            return
        }
        var queued = 0
        for member in members {
            if member == exceptConnection { continue }
            if let exceptUser, sessions[Int(member.slot)]?.user == exceptUser { continue }
            if server.queue(member, frame, droppable: droppable) { queued += 1 }
        }
        loop.counters.fannedOut(frame, count: queued)
    }

    // MARK: REST support

    /// Token check for `GET /api/v1/presence` (not single use).
    func verifyBearer(_ token: String) -> Result<TokenClaims, TokenRejection> {
        hub.verifier.verify(token, now: UnixTime.now())
    }
}
