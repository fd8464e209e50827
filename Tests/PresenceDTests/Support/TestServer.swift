import Glibc
import WSCore

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// An in-process presenced (loop threads + protocol layer) on a free loopback port: the echo
/// target, or the realtime protocol in embedded mode with a known token secret. The per-IP cap
/// is off unless `configure` sets `maxConnectionsPerIP` (every test client comes from 127.0.0.1).
/// `configure` may set `tokenSecret` to nil for dev mode: the hub then signs with `secret` still.
final class TestServer {
    static let secret = "test-secret-0123456789-abcdefghijklmnop"
    let group: LoopGroup
    let config: Config
    let hub: RealtimeHub?
    var port: UInt16 { group.port }

    init(backend: IOBackendKind, threads: Int = 2, echo: Bool = true, configure: (inout Config) -> Void = { _ in }) throws {
        var config = try Config.parse(environment: [:], arguments: echo ? ["--echo"] : [])
        config.port = 0
        config.threads = threads
        config.tokenSecret = TestServer.secret
        config.maxConnectionsPerIP = 0
        configure(&config)
        self.config = config
        let hub = echo ? nil : try DaemonAssembly.makeHub(config: config, secret: config.tokenSecret ?? TestServer.secret)
        self.hub = hub
        let mode: ServerAssembly.Mode = hub.map { .realtime($0) } ?? .echo
        let frozen = config
        group = try LoopGroup(threads: threads, backend: backend, address: "127.0.0.1", port: 0)
        try group.start(connectionsPerIP: .make(limit: frozen.maxConnectionsPerIP)) { loop in
            ServerAssembly.make(config: frozen, mode: mode, loop: loop)
        }
    }

    /// A fresh single-use token for `user`.
    func token(_ user: String, channels: [String]? = nil, ttl: Int64 = 60) -> String {
        TokenMinter(secret: config.tokenSecret ?? TestServer.secret, audience: config.tokenAudience)
            .mint(userID: user, ttl: ttl, channels: channels, now: UnixTime.now()).token
    }

    /// A connected, upgraded realtime client for `user`.
    func client(
        _ user: String, channels: [String]? = nil, headers: HTTPHeaders = HTTPHeaders(),
        receiveTimeoutMillis: Int = 5000
    ) throws -> TestWebSocket {
        try TestWebSocket(
            port: port, path: "/ws?token=" + token(user, channels: channels), headers: headers,
            receiveTimeoutMillis: receiveTimeoutMillis)
    }

    func stop() {
        group.stop()
        group.join()
    }
}

/// The backends this machine can run: both where io_uring works, epoll otherwise.
let availableBackends: [IOBackendKind] = UringBackend.probe() == nil ? [.uring, .epoll] : [.epoll]

/// Sleeps at least `millis`, even when a signal interrupts the sleep.
func pause(millis: Int64) {
    let end = EventLoop.monotonicMillis() + millis
    while true {
        let left = end - EventLoop.monotonicMillis()
        if left <= 0 { return }
        usleep(UInt32(left * 1000))
    }
}
