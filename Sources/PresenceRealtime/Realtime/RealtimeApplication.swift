import PresenceLoop
import WSCore

/// The realtime protocol on one loop (docs/protocol.md, "Client messages"): the `/ws` upgrade
/// policy, join/leave, messages, typing and ping for this loop's connections, and fan-out to
/// members here.
final class RealtimeApplication: WebSocketApplication {
    /// Per-connection protocol state.
    struct Session {
        var user: String
        /// The token's `name` claim, shown beside the user id in presence frames.
        var name: String?
        /// The upgrade's request id, carried by forwards to chat-service and channel access checks
        /// (empty when neither is configured: a fresh id is made for a check).
        var requestID: String
        /// The token's `sid` (sent to CHANNEL_AUTH_URL; it names the session a revocation may close).
        var sessionID: String?
        /// Which secret signed the token (a reload that retires it closes the connection).
        var keyID: UInt64
        var joined = JoinedChannels()
        var limiter: RateLimiter
        /// Joins waiting for CHANNEL_AUTH_URL (they count toward the channel limit of 64) and the
        /// token's `role` (sent to CHANNEL_AUTH_URL): one byte each, in the limiter's tail padding.
        var joinsAwaitingAccess: UInt8 = 0
        var role: TokenRole?
    }

    static let maxChannelsPerConnection = 64
    static let typingTimeoutMillis: Int64 = 5_000
    /// Presence grace periods are checked this often on loop 0.
    static let presenceTickMillis: Int64 = 250

    let hub: RealtimeHub
    unowned(unsafe) let loop: EventLoop
    unowned(unsafe) var server: WebSocketServer!
    var channels = LocalChannels()
    var sessions: [Session?] = []
    /// Joins whose presence part waits for the channel's subscription (Redis mode; entries live
    /// only while waiting, so sessions carry nothing for it).
    var awaitingSubscription = Set<AwaitingJoin>()
    /// Joins waiting for CHANNEL_AUTH_URL's answer, with their `since`: not members yet, nothing
    /// counted, nothing delivered. A leave removes its entry, and the answer then finds nothing to do.
    var awaitingAccess: [AwaitingJoin: StreamPosition?] = [:]
    struct AwaitingJoin: Hashable {
        let connection: ConnectionID
        let channel: String
    }
    var ids = MessageIDGenerator()
    /// Channels where a connection is typing, with the auto-stop time, by slot: only connections
    /// that are typing have an entry (an array in every session was 8 bytes each, issue 19).
    var typingChannels: [UInt32: [(channel: String, until: Int64)]] = [:]
    /// The token's `channels` claim (the only channels it may join), by slot, for the connections
    /// whose token has one: tokens from `/api/ws-token` never do, and an optional set in every
    /// session was 8 bytes each (issue 19). Set (or cleared) at every open, dropped at the close.
    var channelClaims: [UInt32: Set<String>] = [:]
    /// Channels whose message order holds a message ahead of a gap (checked every tick).
    var holdingOrder = Set<String>()
    /// Recovery, nonce and publish figures of this loop.
    let realtimeCounters = RealtimeCounters()
    /// The history when it is this process's (embedded mode): stored without a callback.
    let embeddedHistory: EmbeddedHistory?
    /// Channels keep history (HISTORY_SIZE > 0): messages pass the channels' order.
    let keepsHistory: Bool

    init(hub: RealtimeHub, loop: EventLoop) {
        self.hub = hub
        self.loop = loop
        embeddedHistory = hub.history as? EmbeddedHistory
        keepsHistory = hub.history.keepsMessages
        hub.register(self, loop: loop)
        loop.onTick = { [unowned self] in self.tick() }
        loop.scheduleTick(at: loop.now + RealtimeApplication.presenceTickMillis)
    }

    // MARK: Upgrade

    func acceptsUpgrade(path: String) -> Bool { path == "/ws" }

    func authorize(
        _ head: HTTPRequestHead, requestID: String, server: WebSocketServer,
        _ done: @escaping (Result<UpgradeGrant, UpgradeRefusal>) -> Void
    ) {
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
            return done(
                .failure(
                    UpgradeRefusal(
                        status: 503, code: "too_many_connections",
                        message: "at most \(perUser.limit) connections per user")))
        }
        hub.replayGuard.firstUse(jti: claims.jti, expiresAt: claims.expiresAt, now: now) { check in
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
        sessions.extendForSlot(s, with: nil)
        let claims = grant.claims!
        let keepsRequestID = hub.forwarding != nil || hub.access.target != nil
        sessions[s] = Session(
            user: claims.userID, name: claims.name, requestID: keepsRequestID ? grant.requestID : "",
            sessionID: claims.sessionID, keyID: claims.keyID,
            limiter: RateLimiter(rate: hub.config.messageRate, now: loop.now),
            role: claims.role)
        channelClaims[id.slot] = claims.channels.map(Set.init)
        hub.presence.connected(user: claims.userID, now: loop.now)  // user presence (server API)
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
        channelClaims[id.slot] = nil
        release(user: session.user)
        hub.presence.disconnected(user: session.user, now: loop.now)
        for (channel, _) in typingChannels.removeValue(forKey: id.slot) ?? [] {
            announceTyping(false, user: session.user, channel: channel, from: id)
        }
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
                match.matches(user: session.user, sessionID: session.sessionID, keyID: session.keyID)
            else { continue }
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
            return refuseForRate(id, text: text, payload: payload)
        }
        guard text else {
            loop.counters.messagesIn.add(.other)
            return fail(id, .badJSON, "binary frames are not accepted")
        }
        // Counted in each branch: the parsed message is never copied for the count.
        let counts = loop.counters.messagesIn
        switch ClientMessage.parse(payload) {
        case .failure(let error):
            counts.add(.other)
            fail(id, error.code, error.message, nonce: error.nonce)
        case .success(.ping):
            counts.add(.ping)
            server.send(id, ServerMessage.pong)
        case .success(.join(let channel, let since)):
            counts.add(.join)
            join(id, channel, since: since)
        case .success(.leave(let channel)):
            counts.add(.leave)
            leave(id, channel)
        case .success(.message(let channel, let content, let nonce)):
            counts.add(.message)
            message(id, channel, content, nonce: nonce)
        case .success(.typing(let channel, let typing)):
            counts.add(.typing)
            typingChanged(id, channel, typing)
        }
    }

    /// A message over MESSAGE_RATE: `rate_limited` (with the message's channel and nonce, so the
    /// client knows which send to try again); a run of refusals no more than 1 s apart that goes
    /// on for 5 s closes the connection with 1008 — one burst never does.
    private func refuseForRate(_ id: ConnectionID, text: Bool, payload: UnsafeRawBufferPointer) {
        let s = Int(id.slot), now = loop.now
        loop.counters.rateLimited &+= 1
        if sessions[s]!.limiter.recordRefusal(now: now) {
            return server.close(id, code: .policyViolation, reason: "message rate")
        }
        var channel: String?, nonce: String?
        if text, case .success(.message(let c, _, let n)) = ClientMessage.parse(payload) { (channel, nonce) = (c, n) }
        fail(id, .rateLimited, "more than \(hub.config.messageRate) messages per second", channel: channel, nonce: nonce)
    }

    func fail(_ id: ConnectionID, _ code: ProtocolErrorCode, _ message: String, channel: String? = nil, nonce: String? = nil) {
        server.send(id, ServerMessage.error(code, message, channel: channel, nonce: nonce))
    }

    private func tick() {
        let now = loop.now
        // Every loop: grace periods (embedded), this loop's presence refresh (Redis).
        hub.presence.tick(now: now)
        if loop.index == 0 { hub.history.tick(nowMillis: UnixTime.nowMillis()) }
        loop.scheduleTick(at: now + RealtimeApplication.presenceTickMillis)
        skipOrderGaps(now: now)
        for (slot, entries) in typingChannels {
            guard sessions[Int(slot)] != nil else { continue }
            let id = ConnectionID(slot: slot, generation: loop.generation(ofSlot: slot))
            var next = Int64.max
            for entry in entries {
                if entry.until <= now { stopTyping(id, entry.channel) } else { next = min(next, entry.until) }
            }
            if next != .max { loop.scheduleTick(at: next) }
        }
    }

}
