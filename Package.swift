// swift-tools-version:6.0
import PackageDescription

/// presenced: a realtime presence and fan-out daemon. No package dependencies:
/// system C libraries only, through the single `CSystem` module (see PLATFORM notes in README).
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
        // The daemon.
        .executableTarget(name: "PresenceD", dependencies: ["CSystem", "WSCore", "RedisShim"], path: "Sources/PresenceD",
                          resources: [.embedInCode("Console/assets/console.html"), .embedInCode("Console/assets/console.css"),
                                      .embedInCode("Console/assets/console.js"), .embedInCode("Console/assets/presence-client.js")],
                          swiftSettings: hotPath),
        // The bundled load generator: its own epoll client loop over WSCore's client side.
        .executableTarget(name: "PresenceBench", dependencies: ["CSystem", "WSCore"], path: "Benchmarks/PresenceBench"),
        .testTarget(name: "WSCoreTests", dependencies: ["WSCore"], path: "Tests/WSCoreTests"),
        // A throwaway redis-server for tests (RedisShimTests, PresenceDTests).
        .target(name: "RedisTestSupport", path: "Tests/RedisTestSupport"),
        .testTarget(name: "RedisShimTests", dependencies: ["RedisShim", "RedisTestSupport"], path: "Tests/RedisShimTests"),
        .testTarget(name: "PresenceDTests", dependencies: ["PresenceD", "WSCore", "CSystem", "RedisShim", "RedisTestSupport"], path: "Tests/PresenceDTests"),
    ],
    swiftLanguageModes: [.v6]
)
