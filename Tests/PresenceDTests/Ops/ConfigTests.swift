import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceOutbound
@testable import PresenceRealtime

final class ConfigTests: XCTestCase {
    func testDefaultsFollowTheContract() throws {
        let c = try Config.parse(environment: [:], arguments: [])
        XCTAssertEqual(c.port, 8082)
        XCTAssertEqual(c.bind, "127.0.0.1")
        XCTAssertEqual(c.presenceTTLMillis, 30_000)
        XCTAssertEqual(c.presenceGraceMillis, 2_000)
        XCTAssertEqual(c.pingIntervalMillis, 25_000)
        XCTAssertEqual(c.maxMessageBytes, 65_536)
        XCTAssertEqual(c.messageRate, 20)
        XCTAssertEqual(c.maxConnections, 100_000)
        XCTAssertEqual(c.maxConnectionsPerIP, 0)
        XCTAssertEqual(try Config.parse(environment: ["MAX_CONNECTIONS_PER_IP": "256"], arguments: []).maxConnectionsPerIP, 256)
        XCTAssertEqual(c.tokenAudience, "presenced")
        XCTAssertEqual(c.allowedOrigins, ["https://casa.devarno.cloud", "http://localhost:3000"])
        XCTAssertNil(c.redisURL)
    }

    func testDurationsAndFlagsOverrideEnvironment() throws {
        let c = try Config.parse(
            environment: ["PORT": "9000", "PING_INTERVAL": "500ms", "PRESENCE_TTL": "2m", "PRESENCE_GRACE": "3"],
            arguments: ["--port", "9100", "--io=epoll", "--threads", "3"])
        XCTAssertEqual(c.port, 9100)
        XCTAssertEqual(c.io, .epoll)
        XCTAssertEqual(c.threads, 3)
        XCTAssertEqual(c.pingIntervalMillis, 500)
        XCTAssertEqual(c.presenceTTLMillis, 120_000)
        XCTAssertEqual(c.presenceGraceMillis, 3_000)
    }

    func testEveryBadValueNamesItsVariable() {
        let cases: [([String: String], [String], String)] = [
            (["PORT": "70000"], [], "PORT"),
            (["BIND": "localhost:1"], [], "BIND"),
            (["PING_INTERVAL": "soon"], [], "PING_INTERVAL"),
            (["WS_TOKEN_SECRET": "short"], [], "WS_TOKEN_SECRET"),
            (["REDIS_URL": "http://x"], [], "REDIS_URL"),
            (["AUTH_SERVICE_URL": "ftp://auth"], [], "AUTH_SERVICE_URL"),
            (["CHAT_SERVICE_URL": "http://user:pw@chat"], [], "CHAT_SERVICE_URL"),
            (["LOG_LEVEL": "loud"], [], "LOG_LEVEL"),
            (["MESSAGE_RATE": "-1"], [], "MESSAGE_RATE"),
            (["MAX_CONNECTIONS": "0"], [], "MAX_CONNECTIONS"),
            ([:], ["--io", "kqueue"], "--io"),
            ([:], ["--bogus"], "--bogus"),
        ]
        for (env, args, variable) in cases {
            XCTAssertThrowsError(try Config.parse(environment: env, arguments: args)) { error in
                XCTAssertEqual((error as? ConfigError)?.variable, variable)
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }
    /// One bad value (or more) for every variable presenced reads: each fails with a ConfigError
    /// naming exactly that variable, on one line, and a secret's value is never echoed.
    func testEveryVariableRejectsABadValueNamingIt() throws {
        let directory = NSTemporaryDirectory()
        let bad: [String: [String]] = [
            "PORT": ["70000", "-1", "http", ""],
            "BIND": ["localhost:1", "999.1.1.1", ""],
            "IO_BACKEND": ["kqueue", ""],
            "THREADS": ["0", "1025", "two"],
            "REDIS_URL": ["http://x", "redis://:pw@host:99999"],
            "WS_TOKEN_SECRET": ["short-secret-value"],
            "WS_TOKEN_SECRET_PREVIOUS": ["short-previous-value"],
            "WS_TOKEN_AUDIENCE": [""],
            "ALLOWED_ORIGINS": ["https://casa.example.org/path", "casa.example.org", ",", "https://user@casa.example.org", "https://*"],
            "CHAT_SERVICE_URL": ["http://user:pw@chat", "chat:8080"],
            "CHAT_SERVICE_TOKEN": ["abc\r\nX-Injected: 1"],
            "AUTH_SERVICE_URL": ["ftp://auth", "https://auth?x=1"],
            "PRESENCE_TTL": ["500ms", "2d", "25h"],
            "PRESENCE_GRACE": ["-1s", "soon"],
            "PING_INTERVAL": ["50ms", "9999999999999999h", "1.5s"],
            "MAX_MESSAGE_BYTES": ["12", "lots"],
            "MAX_OUTBOUND_BYTES": ["1", "2147483648"],
            "MESSAGE_RATE": ["-1", "fast"],
            "MAX_CONNECTIONS": ["0", "1e6"],
            "MAX_CONNECTIONS_PER_IP": ["-1", "many", "100000001"],
            "STATE_DIRECTORY": [":", ":/var/lib/x"],
            "FORWARD_QUEUE_MAX": ["0"],
            "FORWARD_QUEUE_MAX_BYTES": ["100"],
            "FORWARD_CLAIM_IDLE": ["100ms", "soon"],
            "FORWARD_MAX_ATTEMPTS": ["0", "1000001", "many"],
            "LOG_LEVEL": ["loud", "trace"],
            "DRAIN_WINDOW": ["11m", "forever"],
            "ENV_FILE": ["/nonexistent/presenced.env", directory],
            "SSL_CERT_FILE": ["/nonexistent/ca.pem", directory],
            "CONSOLE_DEV_TOKENS": ["yes", "2", ""],
            "CONSOLE_ADMIN_TOKEN": ["short-admin-tok", "admin token with spaces"],
            "AUTH_SESSION_COOKIE": ["", "a b", "x;y"],
            "WS_TOKEN_RATE": ["-1", "fast"],
            "AUTH_MAX_IN_FLIGHT": ["0", "many"],
            "TRUSTED_PROXIES": ["nginx", "10.0.0.0/33", "::1/129", "10.0.0.1/"],
            "CHANNEL_AUTH_URL": ["ftp://x", "https://a?x=1"],
            "CHANNEL_AUTH_TOKEN": ["abc\r\nX-Injected: 1"],
            "CHANNEL_AUTH_CACHE": ["soon", "25h"],
            "CHANNELS_OPEN": ["yes", "2"],
            "SERVER_API_TOKEN": ["short-server-t", "server token with spaces"],
            "MAX_CONNECTION_AGE": ["500ms", "forever"],
            "MAX_CONNECTIONS_PER_USER": ["-1", "many"],
            "HISTORY_SIZE": ["-1", "100001", "lots"],
            "HISTORY_TTL": ["500ms", "8d", "forever"],
            "NONCE_WINDOW": ["soon", "2d"],
        ]
        for variable in ConfigVariable.all {
            XCTAssertNotNil(bad[variable.name], "no bad value tested for \(variable.name)")
        }
        for (name, values) in bad {
            for value in values {
                XCTAssertThrowsError(try Config.parse(environment: [name: value], arguments: []), "\(name)=\(value)") { error in
                    XCTAssertEqual((error as? ConfigError)?.variable, name, "\(name)=\(value): \(error)")
                    XCTAssertFalse("\(error)".contains("\n") || "\(error)".contains("\r"), "\(error)")
                    XCTAssertTrue("\(error)".hasPrefix("presenced: invalid \(name): "), "\(error)")
                    if name.contains("SECRET") || name.hasSuffix("_TOKEN") || name == "REDIS_URL" {
                        XCTAssertFalse("\(error)".contains(value), "a secret is echoed: \(error)")
                    }
                }
            }
        }
    }

    /// Every variable is declared once (``Config/Setting``), and `--help` lists each with the flags
    /// that override them; Config.swift reads no other environment variable than INVOCATION_ID.
    func testEveryDeclaredVariableIsListed() throws {
        let names = ConfigVariable.all.map(\.name)
        XCTAssertGreaterThan(names.count, 40)
        XCTAssertEqual(names.count, Set(names).count, "a variable is declared twice: \(names)")
        XCTAssertEqual(ConfigVariable.all.compactMap(\.flag), ["--port", "--bind", "--io", "--threads"])
        let help = Config.help
        for variable in ConfigVariable.all {
            XCTAssertTrue(help.contains("  \(variable.name) "), variable.name)
            if let flag = variable.flag { XCTAssertTrue(help.contains("  \(flag) "), "\(flag) is not in --help's flag list") }
        }
        XCTAssertTrue(help.contains("check-config"))
        var path = #filePath
        for _ in 0..<4 { path = String(path[..<path.lastIndex(of: "/")!]) }
        let source = try String(contentsOfFile: path + "/Sources/PresenceRealtime/Ops/Config.swift", encoding: .utf8)
        XCTAssertEqual(source.components(separatedBy: "environment[\"").count - 1, 1, "only INVOCATION_ID is read outside a declaration")
    }

    /// Flags override the environment, the last of a repeated flag wins, and with several bad
    /// values the first bad variable is reported before any bad argument.
    func testFlagsAndTheFirstProblem() throws {
        let c = try Config.parse(
            environment: ["PORT": "9000", "BIND": "::1"], arguments: ["--port=9001", "--port", "9002", "--bind", "0.0.0.0"])
        XCTAssertEqual(c.port, 9002)
        XCTAssertEqual(c.bind, "0.0.0.0")
        let cases: [([String: String], [String], String, String)] = [
            (["PORT": "x"], ["--bogus"], "PORT", "\"x\" is not a port number (0–65535)"),
            ([:], ["--port", "x", "--bogus"], "--port", "\"x\" is not a port number (0–65535)"),
            ([:], ["--bogus", "--port", "x"], "--bogus", "unknown option (see presenced --help)"),
            ([:], ["--threads", "0", "--port", "x"], "--threads", "\"0\" is not a whole number in 1...1024"),
            ([:], ["--port", "1", "--threads"], "--threads", "needs a value"),
            ([:], ["--port", "x", "--port", "1"], "--port", "\"x\" is not a port number (0–65535)"),
        ]
        for (environment, arguments, variable, problem) in cases {
            XCTAssertThrowsError(try Config.parse(environment: environment, arguments: arguments), "\(environment) \(arguments)") { error in
                XCTAssertEqual((error as? ConfigError)?.variable, variable, "\(arguments)")
                XCTAssertEqual((error as? ConfigError)?.problem, problem, "\(arguments)")
            }
        }
        let switches = try Config.parse(environment: [:], arguments: ["--echo", "-h", "--version"])
        XCTAssertTrue(switches.echo && switches.showHelp && switches.showVersion)
        XCTAssertEqual(switches.maxMessageBytes, 32 << 20, "echo mode raises the message limit")
    }

    /// The configuration table in docs/operations.md is the one the declarations produce.
    /// `PRESENCED_UPDATE_DOCS=1 swift test --filter ConfigTests` rewrites it.
    func testOperationsGuideTableMatchesTheDeclarations() throws {
        var path = #filePath
        for _ in 0..<4 { path = String(path[..<path.lastIndex(of: "/")!]) }
        path += "/docs/operations.md"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let start = try XCTUnwrap(
            text.range(of: ConfigVariable.tableStart), "docs/operations.md lacks the line \(ConfigVariable.tableStart)")
        let end = try XCTUnwrap(
            text.range(of: ConfigVariable.tableEnd, range: start.upperBound..<text.endIndex),
            "docs/operations.md lacks the line \(ConfigVariable.tableEnd)")
        let table = "\n" + ConfigVariable.markdownTable + "\n"
        if ProcessInfo.processInfo.environment["PRESENCED_UPDATE_DOCS"] == "1" {
            try (text[..<start.upperBound] + table + text[end.lowerBound...]).write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        let written = text[start.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let generated = table.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func line(_ lines: [String], _ i: Int) -> String { i < lines.count ? lines[i] : "(end of the table)" }
        if let first = (0..<max(written.count, generated.count)).first(where: { line(written, $0) != line(generated, $0) }) {
            XCTFail(
                """
                docs/operations.md's configuration table differs from the declarations in Config.swift \
                (run PRESENCED_UPDATE_DOCS=1 swift test --filter ConfigTests to rewrite it); first difference:
                  docs:      \(line(written, first))
                  generated: \(line(generated, first))
                """)
        }
    }

    func testGoodValuesAreAccepted() throws {
        let file = NSTemporaryDirectory() + "presenced-env-" + RequestID.make()
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("WS_TOKEN_SECRET=x\n".utf8)))
        defer { _ = try? FileManager.default.removeItem(atPath: file) }
        let c = try Config.parse(
            environment: [
                "ALLOWED_ORIGINS": " https://casa.devarno.cloud , https://*.example.org:8443,http://[::1]:3000, http://localhost:3000/ ",
                "ENV_FILE": file, "DRAIN_WINDOW": "10m", "PRESENCE_TTL": "24h", "CHAT_SERVICE_TOKEN": "Abc-123_x.y~z",
                "STATE_DIRECTORY": "/var/lib/presenced:/var/lib/other", "IO_BACKEND": "EPOLL", "THREADS": "1024",
            ], arguments: [])
        XCTAssertEqual(
            c.allowedOrigins, ["https://casa.devarno.cloud", "https://*.example.org:8443", "http://[::1]:3000", "http://localhost:3000/"])
        XCTAssertEqual(c.environmentFile, file)
        XCTAssertEqual(c.drainWindowMillis, 600_000)
        XCTAssertEqual(c.presenceTTLMillis, 86_400_000)
        XCTAssertEqual(c.stateDirectory, "/var/lib/presenced")
        XCTAssertEqual(c.io, .epoll)
        XCTAssertEqual(try Config.parse(environment: ["ALLOWED_ORIGINS": "*"], arguments: []).allowedOrigins, ["*"])
        XCTAssertEqual(
            try Config.parse(environment: ["SSL_CERT_FILE": "/dev/null"], arguments: []).certificateFile, "/dev/null",
            "an empty CA list is a choice, not a typo")
        XCTAssertEqual(try Config.parse(environment: ["PORT": "0"], arguments: []).port, 0, "0 = any free port (tests)")
    }

    func testOriginPatterns() {
        for good in [
            "*", "https://casa.devarno.cloud", "http://localhost:3000", "https://*.example.org", "https://*.example.org:8443",
            "http://[::1]:3000", "https://casa.devarno.cloud/", "chrome-extension://abcdef",
        ] {
            XCTAssertTrue(Config.isOriginPattern(good), good)
        }
        for bad in [
            "casa.devarno.cloud", "https://", "https:///", "https://a/b", "https://user@a", "https://*", "https://*.",
            "https://a.*.b", "https://a:0", "https://a:99999", "https://a:", "ftp//x", "https://a b", "https://.a",
            "https://a..b", "1http://a", "https://[zz]:1", "https://a?x", "https://a#f", "**",
        ] {
            XCTAssertFalse(Config.isOriginPattern(bad), bad)
        }
    }

    func testTokenSecretIsRequiredOutsideDevMode() throws {
        let loopback = try Config.parse(environment: [:], arguments: [])
        XCTAssertNil(loopback.tokenSecretProblem, "dev mode")
        XCTAssertTrue(loopback.isDevMode)
        XCTAssertEqual(
            try Config.parse(environment: ["INVOCATION_ID": "x"], arguments: []).tokenSecretProblem?.variable,
            "WS_TOKEN_SECRET", "under systemd")
        let exposed = try Config.parse(environment: ["BIND": "0.0.0.0"], arguments: [])
        XCTAssertEqual(exposed.tokenSecretProblem?.variable, "WS_TOKEN_SECRET")
        let configured = try Config.parse(
            environment: ["BIND": "0.0.0.0", "WS_TOKEN_SECRET": String(repeating: "s", count: 32)], arguments: [])
        XCTAssertNil(configured.tokenSecretProblem)
        XCTAssertFalse(configured.isDevMode)
    }

    func testShownValuesStayOnOneLine() {
        XCTAssertEqual(Config.shown("a\nb\"c"), #""a\u{a}b\"c""#)
        XCTAssertEqual(Config.shown(String(repeating: "x", count: 100)), "\"" + String(repeating: "x", count: 64) + "…\"")
    }
}
