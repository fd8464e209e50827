import Glibc
import PresenceLoop
import PresenceOutbound
import Synchronization
import WSCore

/// What every loop of the process shares for the realtime protocol: token checks, presence,
/// the connection count, and fan-out to the other loops. Each loop registers its
/// `RealtimeApplication` once at start; after that the table is only read.
package final class RealtimeHub: @unchecked Sendable {
    let config: Config
    let presence: any PresenceStore
    let replayGuard: any ReplayGuard
    /// Chat message history and nonces (docs/protocol.md, "Recovery and nonces").
    let history: any ChannelHistory
    /// WebSocket sessions open in this process (for `MAX_CONNECTIONS`).
    let sessions = Atomic<Int>(0)
    /// Set once on SIGTERM: upgrades get 503, `/readyz` says 503, every client is closed with 1001.
    let draining = Atomic<Bool>(false)
    /// better-auth, asked by `POST /api/v1/ws-token` (nil when AUTH_SERVICE_URL is unset).
    let authService: AuthServiceClient?
    /// Redis mode (nil: embedded single-instance mode).
    let redis: RedisRuntime?
    /// Chat messages to chat-service (nil when CHAT_SERVICE_URL is unset).
    let forwarding: (any ChatForwarding)?
    /// The console page's switches, instance id and history.
    let console: ConsoleState
    /// Who may join which channel (docs/protocol.md, "Channel access").
    let access: ChannelAccess
    /// MAX_CONNECTIONS_PER_USER on this instance (nil: no cap).
    let connectionsPerUser: ConnectionsPerUser?
    /// better-auth calls in flight now (AUTH_MAX_IN_FLIGHT).
    let authCallsInFlight = Atomic<Int>(0)
    /// `POST /api/v1/ws-token` requests per client address (WS_TOKEN_RATE).
    let wsTokenPacer: AddressPacer
    /// SERVER_API_TOKEN (nil: no server API).
    let serverAPI: BearerCredential?
    /// TRUSTED_PROXIES: peers whose X-Forwarded-For names the client.
    let trustedProxies: [AddressPrefix]
    /// Each loop's outbound HTTP client (better-auth, CHANNEL_AUTH_URL), made at its registration.
    private let httpClients: LoopSlots<LoopHTTPClient?>
    private let security: Lock<(verifier: TokenVerifier, minter: TokenMinter, origins: OriginPolicy)>
    /// Written by each loop in `register` (under `registration`), then only read.
    private var applications: [RealtimeApplication?]
    private var mailboxes: [Mailbox?]
    /// Loops register concurrently, and each writes the per-loop tables here, in `fanOut` and in
    /// Redis mode's presence store: one at a time (the group starts no turn before all have).
    private let registration = Lock(())
    /// Loop-to-loop delivery rings (the hot path); mailboxes carry only rare control work.
    let fanOut: CrossLoopFanOut

    init(
        config: Config, secrets: [String], loops: Int, presence: any PresenceStore, replayGuard: any ReplayGuard,
        history: any ChannelHistory, authService: AuthServiceClient? = nil, redis: RedisRuntime? = nil,
        forwarding: (any ChatForwarding)? = nil
    ) {
        self.config = config
        self.presence = presence
        self.replayGuard = replayGuard
        self.history = history
        self.authService = authService
        self.redis = redis
        self.forwarding = forwarding
        console = ConsoleState(config: config, instanceID: redis?.instanceHex)
        let httpClients = LoopSlots<LoopHTTPClient?>(count: loops, initial: nil)
        self.httpClients = httpClients
        access = ChannelAccess(config: config, loops: loops) { loop in httpClients[loop.index] }
        connectionsPerUser = ConnectionsPerUser.make(limit: config.maxConnectionsPerUser)
        wsTokenPacer = AddressPacer(rate: config.wsTokenRate)
        trustedProxies = config.trustedProxies.compactMap(AddressPrefix.init)
        serverAPI = config.serverAPIToken.map(BearerCredential.init)
        security = Lock(RealtimeHub.security(secrets: secrets, config: config, origins: config.allowedOrigins))
        applications = Array(repeating: nil, count: loops)
        mailboxes = Array(repeating: nil, count: loops)
        fanOut = CrossLoopFanOut(loops: loops)
        presence.offlineSink = { [unowned self] gone in
            let frame = ServerMessage.presence(
                userID: gone.userID, name: gone.name, online: false, channel: gone.channel,
                lastSeen: Timestamp.iso8601(millis: gone.lastSeen))
            self.announce(channel: gone.channel, frame: frame)
        }
        if let redis {
            redis.presence.onlineSink = { [unowned self] channel, user in
                self.announce(
                    channel: channel, frame: ServerMessage.presence(userID: user.userID, name: user.name, online: true, channel: channel))
            }
            // From other instances (on loop 0): every member of this instance.
            redis.fanOut.deliver = { [unowned self] channel, frame, exceptUser, droppable, position in
                self.publishEverywhere(channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable, position: position)
            }
            // Revocations from other instances (on loop 0).
            redis.fanOut.control = { [unowned self] message in
                guard let loop = EventLoop.current, let match = SessionMatch(controlMessage: message) else { return }
                self.closeSessions(match, code: .revoked, reason: "revoked", from: loop) { _ in }
            }
        }
    }

    /// Called by each loop on its own thread before the group reports ready.
    func register(_ application: RealtimeApplication, loop: EventLoop) {
        registration.withLock { _ in registerAlone(application, loop: loop) }
    }

    private func registerAlone(_ application: RealtimeApplication, loop: EventLoop) {
        applications[loop.index] = application
        mailboxes[loop.index] = loop.mailbox
        fanOut.register(loop)
        httpClients[loop.index] = LoopHTTPClient(loop: loop, caFile: config.certificateFile, timeoutMillis: config.outboundTimeoutMillis)
        access.loopStarted(loop)
        let index = loop.index, fanOut = self.fanOut, forwarding = self.forwarding
        let drain = { [unowned application] in
            fanOut.drain(into: index) { d in
                application.deliver(
                    channel: d.channel, frame: d.frame, exceptUser: d.exceptUser, exceptConnection: nil,
                    droppable: d.droppable, position: d.position)
            }
        }
        // Before the turn's I/O (what other loops published earlier reaches only earlier members)
        // and after it (what they published meanwhile goes out in this turn's flush).
        loop.onWake = drain
        loop.onTurn = {
            // Messages stored this turn are fanned out now, in time for this turn's wakes and flush.
            forwarding?.endTurn(on: index)
            drain()
            fanOut.endTurn(of: index)
        }
        loop.hasInboundWork = { fanOut.hasWork(for: index) }
        redis?.loopStarted(loop)
        forwarding?.loopStarted(loop)
    }

    /// At shutdown, from the main thread: every loop stops forwarding (what is in flight stays
    /// queued) and flushes and closes its queue; waits up to `timeoutMillis` for them.
    func stopForwarding(timeoutMillis: Int64) {
        guard let forwarding else { return }
        let targets = mailboxes.compactMap { $0 }
        let left = Atomic<Int>(targets.count)
        for mailbox in targets {
            mailbox.post { loop in
                forwarding.stop(on: loop)
                left.subtract(1, ordering: .releasing)
            }
        }
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while left.load(ordering: .acquiring) > 0 && EventLoop.monotonicMillis() < end { usleep(2_000) }
    }

    /// Asks every loop for a value on its own thread (`read`), folds them with `combine`, and
    /// hands the total to `done` on `loop`'s thread (metrics of per-loop state).
    func gather<T>(
        from loop: EventLoop, _ initial: T, read: @escaping (EventLoop) -> T,
        combine: @escaping (inout T, T) -> Void, _ done: @escaping (T) -> Void
    ) {
        let targets = mailboxes.compactMap { $0 }
        let state = Lock<(total: UnsafeSendable<T>, left: Int)>((UnsafeSendable(initial), targets.count))
        let back = loop.mailbox
        let work = UnsafeSendable((read, combine, done))
        for mailbox in targets {
            mailbox.post { loop in
                let value = work.value.0(loop)
                let finished = state.withLock { s -> UnsafeSendable<T>? in
                    var total = s.total.value
                    work.value.1(&total, value)
                    s.total = UnsafeSendable(total)
                    s.left -= 1
                    return s.left == 0 ? s.total : nil
                }
                if let finished {
                    back.post { _ in work.value.2(finished.value) }
                }
            }
        }
    }

    /// `loop`'s outbound HTTP client (on that loop's thread).
    func httpClient(on loop: EventLoop) -> LoopHTTPClient? { httpClients[loop.index] }

    /// Closes the sessions `match` names on every loop of this instance with `code`; `done` gets
    /// how many, on `loop`'s thread.
    func closeSessions(
        _ match: SessionMatch, code: CloseCode, reason: String, from loop: EventLoop,
        _ done: @escaping (Int) -> Void
    ) {
        gather(
            from: loop, 0,
            read: { [unowned self] target in
                self.applications[target.index]?.closeSessions(match, code: code, reason: reason) ?? 0
            }, combine: { $0 += $1 }, done)
    }

    /// `POST /api/v1/disconnect`: closes the user's or session's connections here with 4403, and
    /// through Redis on every other instance; `done` gets this instance's count.
    func revoke(_ match: SessionMatch, from loop: EventLoop, _ done: @escaping (Int) -> Void) {
        redis?.fanOut.publishControl(match.controlMessage)
        closeSessions(match, code: .revoked, reason: "revoked", from: loop, done)
    }

    /// The application of `loop` (call on that loop's thread: its state is that thread's).
    func application(on loop: EventLoop) -> RealtimeApplication? {
        loop.index < applications.count ? applications[loop.index] : nil
    }

    /// Whether Redis (when configured) is reachable, for `/readyz`.
    var redisReady: Bool { redis?.isReady ?? true }

    /// A loop got its first member in `channel`: this instance listens to it on Redis.
    func channelOccupied(_ channel: String) { redis?.fanOut.activate(channel) }

    /// Runs `ready` on `loop` once this instance's subscription to `channel` is confirmed (at
    /// once in embedded mode, or when it is already): a join reads presence only then.
    func whenSubscribed(_ channel: String, on loop: EventLoop, _ ready: @escaping () -> Void) {
        guard let redis else { return ready() }
        redis.fanOut.whenSubscribed(channel, on: loop, ready)
    }

    /// A loop lost its last member in `channel`.
    func channelEmptied(_ channel: String) { redis?.fanOut.deactivate(channel) }

    /// A presence change no connection here caused (a grace period ended, Redis saw a user come
    /// back): every member on every loop of this instance and, through Redis, of the others.
    private func announce(channel: String, frame: SharedBytes) {
        publishEverywhere(channel: channel, frame: frame)
        redis?.fanOut.publish(channel: channel, frame: frame, exceptUser: nil, droppable: false)
    }

    private static func security(secrets: [String], config: Config, origins: [String]) -> (TokenVerifier, TokenMinter, OriginPolicy) {
        (
            TokenVerifier(secrets: secrets, audience: config.tokenAudience),
            TokenMinter(secret: secrets[0], audience: config.tokenAudience),
            OriginPolicy(origins)
        )
    }

    var verifier: TokenVerifier { security.withLock { $0.verifier } }
    var minter: TokenMinter { security.withLock { $0.minter } }
    var origins: OriginPolicy { security.withLock { $0.origins } }

    /// Starts the drain: from now on no upgrade is accepted, and every loop closes its clients
    /// with 1001, spread evenly over `windowMillis` so that their reconnects do not arrive at the
    /// other instances all at once.
    func drain(windowMillis: Int64) {
        draining.store(true, ordering: .sequentiallyConsistent)
        for case let mailbox? in mailboxes {
            mailbox.post { [unowned self] loop in
                self.applications[loop.index]?.closeAll(code: .goingAway, reason: "server draining", over: windowMillis)
            }
        }
    }

    /// Replaces the token secrets and origin list (SIGHUP). Connections opened with a secret that
    /// is no longer listed are closed with 4401, so their clients come back with a fresh token.
    func reload(secrets: [String], allowedOrigins: [String]) {
        let kept = security.withLock { state -> Set<UInt64> in
            state = RealtimeHub.security(secrets: secrets, config: config, origins: allowedOrigins)
            return Set(state.verifier.keyIDs)
        }
        for case let mailbox? in mailboxes {
            mailbox.post { [unowned self] loop in
                let closed =
                    self.applications[loop.index]?.closeSessions(
                        .signedWithout(kept), code: .reauthenticate,
                        reason: "token secret retired") ?? 0
                if closed > 0 { Log.info("closed connections of a retired token secret", ["loop": "\(loop.index)", "count": "\(closed)"]) }
            }
        }
    }

    /// On loop `fromLoop`'s thread: sends one shared frame to the members of `channel` on every
    /// other loop (that loop has delivered locally already), skipping `exceptUser`'s connections.
    func publish(
        channel: String, frame: SharedBytes, exceptUser: String?, droppable: Bool = false, position: StreamPosition? = nil,
        fromLoop: Int
    ) {
        fanOut.publish(
            CrossLoopFanOut.Delivery(
                channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable,
                position: position), from: fromLoop)
    }

    /// From any thread: sends `frame` to the members of `channel` on every loop of this instance
    /// (events no connection of the calling loop caused: a grace period ending, another
    /// instance's message). On a loop thread the rings carry it; elsewhere the mailboxes.
    func publishEverywhere(
        channel: String, frame: SharedBytes, exceptUser: String? = nil, droppable: Bool = false,
        position: StreamPosition? = nil
    ) {
        if let loop = EventLoop.current, loop.index < applications.count, let application = applications[loop.index] {
            application.deliver(
                channel: channel, frame: frame, exceptUser: exceptUser, exceptConnection: nil, droppable: droppable,
                position: position)
            publish(channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable, position: position, fromLoop: loop.index)
            return
        }
        for case let mailbox? in mailboxes {
            let job = UnsafeSendable((channel, frame, exceptUser))
            mailbox.post { [unowned self] loop in
                self.applications[loop.index]?.deliver(
                    channel: job.value.0, frame: job.value.1, exceptUser: job.value.2,
                    exceptConnection: nil, droppable: droppable, position: position)
            }
        }
    }
}
