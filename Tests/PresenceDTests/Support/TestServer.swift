import Glibc
@testable import PresenceD

/// An in-process presenced (loop threads + protocol layer) on a free loopback port.
final class TestServer {
    let group: LoopGroup
    var port: UInt16 { group.port }

    init(backend: IOBackendKind, threads: Int = 2, echo: Bool = true, configure: (inout Config) -> Void = { _ in }) throws {
        var config = try Config.parse(environment: [:], arguments: echo ? ["--echo"] : [])
        config.port = 0
        configure(&config)
        let frozen = config
        group = try LoopGroup(threads: threads, backend: backend, address: "127.0.0.1", port: 0)
        try group.start { loop in
            WebSocketServer(config: frozen, application: frozen.echo ? EchoApplication() : nil, endpoints: HTTPEndpoints(), loop: loop)
        }
    }

    func stop() {
        group.stop()
        group.join()
    }

    deinit {}
}

/// The backends this machine can run: both where io_uring works, epoll otherwise.
let availableBackends: [IOBackendKind] = UringBackend.probe() == nil ? [.uring, .epoll] : [.epoll]
