import WSCore

/// The realtime protocol on one loop (CONTRACT §5): the `/ws` upgrade policy, join/leave,
/// messages, typing and ping for this loop's connections, and fan-out to members here.
final class RealtimeApplication: WebSocketApplication {
    /// Per-connection protocol state.
    struct Session {
        var user: String
        /// The token's `name` claim, shown beside the user id in presence frames.
        var name: String?
        /// The upgrade's request id, carried by forwards to chat-service and channel access checks
        /// (empty when neither is configured: a fresh id is made for a check).
        var requestID: String
        var allowedChannels: Set<String>?
        /// The token's `role` and `sid` (sent to CHANNEL_AUTH_URL; `sid` names the session a
        /// revocation may close).
        var role: String?
        var sessionID: String?
        /// Which secret signed the token (a reload that retires it closes the connection).
        var keyID: UInt64
        var joined: [String] = []
        /// Joins waiting for CHANNEL_AUTH_URL (they count toward the channel limit).
        var joinsAwaitingAccess = 0
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
    /// Joins waiting for CHANNEL_AUTH_URL's answer: not members yet, nothing counted, nothing
    /// delivered. A leave removes its entry, and the answer then finds nothing to do.
    private var awaitingAccess = Set<AwaitingJoin>()
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
        if let perUser = hub.connectionsPerUser, !perUser.acquire(claims.userID) {
            hub.sessions.subtract(1, ordering: .relaxed)
            return done(.failure(UpgradeRefusal(status: 503, code: "too_many_connections",
                                                message: "at most \(perUser.limit) connections per user")))
        }
        hub.replayGuard.firstUse(jti: claims.jti, expiresAt: claims.expiresAt, now: now) { [hub] check in
            guard check != .replayed else {
                self.release(user: claims.userID)
                return done(self.reject(.replayed, requestID: requestID))
            }
            if check == .firstInThisProcess { self.loop.counters.tokensCheckedInProcessOnly &+= 1 }
            done(.success(UpgradeGrant(claims: claims, requestID: requestID)))
        }
    }

    func abandoned(grant: UpgradeGrant, server: WebSocketServer) {
        release(user: grant.claims?.userID)
    }

    /// An authorized session ended (or never opened): its places in the connection counts.
    private func release(user: String?) {
        hub.sessions.subtract(1, ordering: .relaxed)
        if let user { hub.connectionsPerUser?.release(user) }
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
        let keepsRequestID = hub.forwarding != nil || hub.access.target != nil
        sessions[s] = Session(user: claims.userID, name: claims.name, requestID: keepsRequestID ? grant.requestID : "",
                              allowedChannels: claims.channels.map(Set.init), role: claims.role, sessionID: claims.sessionID,
                              keyID: claims.keyID, limiter: RateLimiter(rate: hub.config.messageRate, now: loop.now))
        hub.presence.connected(user: claims.userID, now: loop.now) // user presence (server API)
        if hub.config.maxConnectionAgeMillis > 0 { scheduleAgeLimit(id) }
    }

    /// MAX_CONNECTION_AGE: the connection is closed with 4401 after the age minus up to a tenth of
    /// it at random, so connections opened together (after a deploy) do not all come back together.
    private func scheduleAgeLimit(_ id: ConnectionID) {
        let age = hub.config.maxConnectionAgeMillis
        let after = age - Int64.random(in: 0...(age / 10))
        _ = loop.schedule(after: after) { [unowned self] in
            guard self.loop.isOpen(id), self.sessions[Int(id.slot)] != nil else { return }
            self.server.close(id, code: .reauthenticate, reason: "connection too old: fetch a new token")
        }
    }

    func closed(_ id: ConnectionID, server: WebSocketServer) {
        let s = Int(id.slot)
        guard s < sessions.count, let session = sessions[s] else { return }
        sessions[s] = nil
        release(user: session.user)
        hub.presence.disconnected(user: session.user, now: loop.now)
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

    /// Closes the sessions on this loop that `match` names with `code`; how many.
    func closeSessions(_ match: SessionMatch, code: CloseCode, reason: String) -> Int {
        var closed = 0
        for slot in sessions.indices {
            guard let session = sessions[slot],
                  match.matches(user: session.user, sessionID: session.sessionID, keyID: session.keyID) else { continue }
            let id = ConnectionID(slot: UInt32(slot), generation: loop.generation(ofSlot: UInt32(slot)))
            server.close(id, code: code, reason: reason)
            closed += 1
        }
        return closed
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

    private func fail(_ id: ConnectionID, _ code: ProtocolErrorCode, _ message: String, channel: String? = nil) {
        server.send(id, ServerMessage.error(code, message, channel: channel))
    }

    private func join(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        guard let session = sessions[s] else { return }
        if session.joined.contains(channel) {
            // Already a member: confirm again without counting a second join.
            server.send(id, ServerMessage.presence(userID: session.user, name: session.name, online: true, channel: channel))
            return
        }
        let awaiting = AwaitingJoin(connection: id, channel: channel)
        if awaitingAccess.contains(awaiting) { return } // its answer will come
        guard session.joined.count + session.joinsAwaitingAccess < RealtimeApplication.maxChannelsPerConnection else {
            return fail(id, .tooLarge, "at most \(RealtimeApplication.maxChannelsPerConnection) channels per connection", channel: channel)
        }
        let subject = AccessSubject(user: session.user, role: session.role, sessionID: session.sessionID,
                                    channels: session.allowedChannels)
        if let decision = hub.access.immediate(subject, channel: channel, on: loop) {
            return admit(id, channel, decision)
        }
        awaitingAccess.insert(awaiting)
        sessions[s]!.joinsAwaitingAccess += 1
        let requestID = session.requestID.isEmpty ? RequestID.make() : session.requestID
        hub.access.ask(subject, channel: channel, requestID: requestID, on: loop) { [unowned self] decision in
            // Left, or gone, meanwhile: the answer is cached for the next join, nothing else.
            guard self.awaitingAccess.remove(awaiting) != nil, self.loop.isOpen(id), self.sessions[s] != nil else { return }
            self.sessions[s]!.joinsAwaitingAccess -= 1
            self.admit(id, channel, decision)
        }
    }

    /// Carries out a join once channel access has answered.
    private func admit(_ id: ConnectionID, _ channel: String, _ decision: AccessDecision) {
        switch decision {
        case .allowed: enter(id, channel)
        case .refused: fail(id, .forbiddenChannel, "not allowed in this channel", channel: channel)
        case .unavailable: fail(id, .unavailable, "channel access could not be checked; try again", channel: channel)
        }
    }

    /// The join of an admitted connection: membership here, the channel's subscription, presence.
    private func enter(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
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
        let name = sessions[s]?.name
        hub.presence.join(channel: channel, user: user, name: name, now: loop.now) { [unowned self] result in
            guard self.loop.isOpen(id), self.sessions[s]?.joined.contains(channel) == true else { return }
            for member in result.online {
                self.server.send(id, ServerMessage.presence(userID: member.userID, name: member.name, online: true, channel: channel))
            }
            if result.firstConnection {
                let frame = ServerMessage.presence(userID: user, name: name, online: true, channel: channel)
                self.fanOut(channel: channel, frame: frame, exceptConnection: id)
            }
        }
    }

    private func leave(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        if awaitingAccess.remove(AwaitingJoin(connection: id, channel: channel)) != nil {
            // A join still being checked: cancelled, it never counted.
            sessions[s]!.joinsAwaitingAccess -= 1
            return
        }
        guard let session = sessions[s], let index = session.joined.firstIndex(of: channel) else {
            return fail(id, .notJoined, "not a member of this channel", channel: channel)
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
            return fail(id, .notJoined, "join the channel before sending to it", channel: channel)
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
            return fail(id, .unavailable, "the message could not be stored; try again", channel: channel)
        }
        let entry = ForwardEntry(id: messageID, channel: channel, sender: session.user, content: content,
                                 createdAt: timestamp, requestID: session.requestID)
        forwarder.accept(consume entry) { [unowned self] stored in
            guard case .success = stored else {
                forwarder.countRefused()
                return self.fail(id, .unavailable, "the message could not be stored; try again", channel: channel)
            }
            self.fanOut(channel: channel, frame: frame)
            self.loop.counters.fanOutQueued(arrivedAt: arrived)
        }
    }

    // MARK: Typing

    private func typingChanged(_ id: ConnectionID, _ channel: String, _ typing: Bool) {
        let s = Int(id.slot)
        guard let session = sessions[s], session.joined.contains(channel) else {
            return fail(id, .notJoined, "join the channel before typing in it", channel: channel)
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
