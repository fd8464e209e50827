// swift-tools-version:6.0
import PackageDescription

/// presenced: a realtime presence and fan-out daemon. No package dependencies: system C
/// libraries only, through the single `CSystem` module (docs/architecture.md, "Platform notes").
/// The hot path (loops, fan-out, codecs) is written to be exclusive by construction; the runtime's
/// dynamic exclusivity checks cost ~30 % of the instructions per delivery (callgrind), so release
/// builds leave them to the compile-time checks.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "presenced",
    products: [
        .executable(name: "presenced", targets: ["PresenceD"]),
        .executable(name: "presence-bench", targets: ["PresenceBench"]),
        .library(name: "WSCore", targets: ["WSCore"]),
    ],
    targets: [
        // liburing, hiredis and OpenSSL behind one module map and one shim header.
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        // HTTP/1.1 upgrade and RFC 6455 codec: bytes in, bytes out. No I/O, no JSON.
        .target(name: "WSCore", dependencies: ["CSystem"], path: "Sources/WSCore", swiftSettings: hotPath),
        // Redis client that runs on the daemon's event loop.
        .target(name: "RedisShim", dependencies: ["CSystem"], path: "Sources/RedisShim"),
        // JSON string escaping, shared by log lines, forward bodies and frames. No I/O.
        .target(name: "PresenceJSON", path: "Sources/PresenceJSON", swiftSettings: hotPath),
        // The event loops (io_uring, epoll), sockets, timers, rings, mailboxes, worker threads,
        // logging and time. Sockets, never protocols.
        .target(name: "PresenceLoop", dependencies: ["CSystem", "WSCore", "PresenceJSON"], path: "Sources/PresenceLoop",
                swiftSettings: hotPath),
        // Outbound connections on a loop: streams, TLS, the HTTP/1.1 client, the resolver.
        .target(name: "PresenceOutbound", dependencies: ["CSystem", "WSCore", "PresenceLoop"], path: "Sources/PresenceOutbound"),
        // Chat messages to chat-service: durable queues (files, Redis stream) and the Forwarder.
        .target(name: "PresenceForwarding", dependencies: ["CSystem", "WSCore", "PresenceJSON", "PresenceLoop", "PresenceOutbound", "RedisShim"],
                path: "Sources/PresenceForwarding"),
        // The WebSocket server, the realtime protocol, presence, access, tokens, history, Redis
        // mode, console, server API, configuration and metrics.
        .target(name: "PresenceRealtime", dependencies: ["CSystem", "WSCore", "RedisShim", "PresenceJSON", "PresenceLoop", "PresenceOutbound"],
                path: "Sources/PresenceRealtime",
                resources: [.embedInCode("Console/assets/console.html"), .embedInCode("Console/assets/console.css"),
                            .embedInCode("Console/assets/console.js"), .embedInCode("Console/assets/presence-client.js")],
                swiftSettings: hotPath),
        // The daemon: main, the commands, and the composition that plugs forwarding into the hub.
        .executableTarget(name: "PresenceD", dependencies: ["CSystem", "WSCore", "RedisShim", "PresenceJSON", "PresenceLoop",
                                                            "PresenceOutbound", "PresenceForwarding", "PresenceRealtime"],
                          path: "Sources/PresenceD", swiftSettings: hotPath),
        // The bundled load generator: its own epoll client loop over WSCore's client side.
        .executableTarget(name: "PresenceBench", dependencies: ["CSystem", "WSCore"], path: "Benchmarks/PresenceBench"),
        // Test support shared by the test targets: a seeded generator, stand-in HTTP servers.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // A throwaway redis-server for tests.
        .target(name: "RedisTestSupport", path: "Tests/RedisTestSupport"),
        // Each module's own tests import that module only (docs/architecture.md, "Modules and allowed imports").
        .testTarget(name: "WSCoreTests", dependencies: ["WSCore", "TestSupport"], path: "Tests/WSCoreTests"),
        .testTarget(name: "RedisShimTests", dependencies: ["RedisShim", "RedisTestSupport", "TestSupport"], path: "Tests/RedisShimTests"),
        .testTarget(name: "PresenceLoopTests", dependencies: ["PresenceLoop", "WSCore", "TestSupport"], path: "Tests/PresenceLoopTests"),
        .testTarget(name: "PresenceOutboundTests", dependencies: ["PresenceOutbound", "PresenceLoop", "WSCore", "TestSupport", "RedisTestSupport"],
                    path: "Tests/PresenceOutboundTests"),
        .testTarget(name: "PresenceForwardingTests", dependencies: ["PresenceForwarding", "PresenceOutbound", "PresenceLoop", "RedisShim",
                                                                    "TestSupport", "RedisTestSupport"],
                    path: "Tests/PresenceForwardingTests"),
        // End to end: in-process servers and the daemon's process, real redis-server, stand-in
        // chat-service and better-auth.
        .testTarget(name: "PresenceDTests", dependencies: ["PresenceD", "PresenceJSON", "PresenceLoop", "PresenceOutbound", "PresenceForwarding",
                                                           "PresenceRealtime", "WSCore", "CSystem", "RedisShim", "TestSupport", "RedisTestSupport"],
                    path: "Tests/PresenceDTests"),
    ],
    swiftLanguageModes: [.v6]
)
