import Glibc
import RedisShim

@testable import PresenceD
@testable import PresenceForwarding
@testable import PresenceLoop
@testable import PresenceRealtime

/// An in-process presenced like `TestServer` (embedded or, with `redisURL` set, Redis mode) whose
/// forwards are retried after 20…200 ms, and which stops the way SIGTERM does (queues flushed,
/// the state directory freed for the next instance).
final class ForwardingTestServer {
    let group: LoopGroup
    let config: Config
    let hub: RealtimeHub
    var port: UInt16 { group.port }
    private var stopped = false

    /// Forwards retried after 20…200 ms instead of 250 ms…30 s.
    static let shortBackoff = RedisBackoff(baseMillis: 20, capMillis: 200)

    init(
        backend: IOBackendKind, threads: Int = 2, backoff: RedisBackoff = ForwardingTestServer.shortBackoff,
        configure: (inout Config) -> Void
    ) throws {
        var config = try Config.parse(environment: [:], arguments: [])
        config.port = 0
        config.threads = threads
        config.tokenSecret = TestServer.secret
        config.maxConnectionsPerIP = 0
        config.messageRate = 0
        configure(&config)
        self.config = config
        hub = try DaemonAssembly.makeHub(config: config, secret: TestServer.secret, forwardBackoff: backoff)
        group = try LoopGroup(threads: threads, backend: backend, address: "127.0.0.1", port: 0)
        let frozen = config, mode = ServerAssembly.Mode.realtime(hub)
        try group.start(connectionsPerIP: .make(limit: 0)) { loop in
            ServerAssembly.make(config: frozen, mode: mode, loop: loop)
        }
    }

    deinit { stop() }

    /// A connected realtime client for `user`.
    func client(_ user: String) throws -> TestWebSocket {
        let token = TokenMinter(secret: TestServer.secret, audience: config.tokenAudience).mint(userID: user, ttl: 60, now: UnixTime.now())
            .token
        return try TestWebSocket(port: port, path: "/ws?token=" + token, receiveTimeoutMillis: 15_000)
    }

    /// Stops forwarding the way SIGTERM does (queues flushed and closed), then the loops, and
    /// frees the state directory for the next instance.
    func stop() {
        guard !stopped else { return }
        stopped = true
        hub.stopForwarding(timeoutMillis: 3_000)
        group.stop()
        group.join()
        (hub.forwarding as? ForwardingRuntime)?.unlockDirectory()  // the hub outlives this object (the loops' closures keep it)
    }
}
