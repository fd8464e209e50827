import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// CONSOLE_DEV_TOKENS and CONSOLE_ADMIN_TOKEN: parsing, defaults, check-config's view (the token
/// never shown), log redaction, and same-origin matching of `OriginPolicy`.
final class ConsoleConfigTests: XCTestCase {
    private let secret = String(repeating: "s", count: 32)

    func testDevTokensFollowTheMode() throws {
        XCTAssertTrue(try Config.parse(environment: [:], arguments: []).devTokensEnabled, "auto: on in dev mode, embedded")
        XCTAssertFalse(
            try Config.parse(environment: ["WS_TOKEN_SECRET": secret], arguments: []).devTokensEnabled,
            "auto: a real secret is not dev mode, even on loopback outside systemd")
        XCTAssertFalse(
            try Config.parse(environment: ["REDIS_URL": "redis://127.0.0.1:6379"], arguments: []).devTokensEnabled,
            "auto: off in Redis mode")
        for (value, embedded, redis) in [("auto", true, false), ("AUTO", true, false), ("1", true, true), ("0", false, false)] {
            XCTAssertEqual(try Config.parse(environment: ["CONSOLE_DEV_TOKENS": value], arguments: []).devTokensEnabled, embedded, value)
            XCTAssertEqual(
                try Config.parse(environment: ["CONSOLE_DEV_TOKENS": value, "REDIS_URL": "redis://r:6379"], arguments: [])
                    .devTokensEnabled, redis, value)
        }
        // auto is for a developer's machine only: a reachable bind or systemd turns it off.
        XCTAssertFalse(
            try Config.parse(environment: ["BIND": "0.0.0.0", "WS_TOKEN_SECRET": secret], arguments: []).devTokensEnabled,
            "auto: off on a non-loopback bind")
        XCTAssertFalse(
            try Config.parse(environment: ["INVOCATION_ID": "abc", "WS_TOKEN_SECRET": secret], arguments: []).devTokensEnabled,
            "auto: off under systemd")
        // 1 cannot put dev tokens beside a real secret: the start fails instead.
        for environment in [["WS_TOKEN_SECRET": secret], ["INVOCATION_ID": "abc", "BIND": "0.0.0.0", "WS_TOKEN_SECRET": secret]] {
            XCTAssertThrowsError(try Config.parse(environment: environment.merging(["CONSOLE_DEV_TOKENS": "1"]) { $1 }, arguments: [])) {
                XCTAssertTrue("\($0)".hasPrefix("presenced: invalid CONSOLE_DEV_TOKENS: 1 needs dev mode"), "\($0)")
            }
        }
        for bad in ["yes", "true", "on", "2", ""] {
            XCTAssertThrowsError(try Config.parse(environment: ["CONSOLE_DEV_TOKENS": bad], arguments: [])) {
                XCTAssertEqual("\($0)", "presenced: invalid CONSOLE_DEV_TOKENS: must be auto, 1 or 0")
            }
        }
    }

    func testAdminTokenIsValidatedLikeASecretAndNeverShown() throws {
        XCTAssertNil(try Config.parse(environment: [:], arguments: []).consoleAdminToken)
        XCTAssertNil(try Config.parse(environment: ["CONSOLE_ADMIN_TOKEN": ""], arguments: []).consoleAdminToken, "empty = unset")
        let token = "0123456789abcdef"
        XCTAssertEqual(try Config.parse(environment: ["CONSOLE_ADMIN_TOKEN": token], arguments: []).consoleAdminToken, token)
        for bad in ["0123456789abcde", "0123456789 abcdef", "0123456789abcdef\n", "0123456789abcdé"] {
            XCTAssertThrowsError(try Config.parse(environment: ["CONSOLE_ADMIN_TOKEN": bad], arguments: []), bad) { error in
                XCTAssertEqual((error as? ConfigError)?.variable, "CONSOLE_ADMIN_TOKEN")
                XCTAssertFalse("\(error)".contains(bad.prefix(10)), "the value is echoed: \(error)")
            }
        }
        let config = try Config.parse(environment: ["CONSOLE_ADMIN_TOKEN": token], arguments: [])
        let shown = ConfigVariable.all.first { $0.name == "CONSOLE_ADMIN_TOKEN" }!.shown(config)
        XCTAssertEqual(shown, "set")
        let check = try DaemonProcess.run(
            ["check-config"],
            environment: [
                "CONSOLE_ADMIN_TOKEN": token, "WS_TOKEN_SECRET": secret,
                "CONSOLE_DEV_TOKENS": "0",
            ])
        XCTAssertEqual(check.status, 0, check.err)
        XCTAssertFalse((check.out + check.err).contains(token), "check-config printed the admin token")
        XCTAssertTrue(check.out.contains("CONSOLE_DEV_TOKENS") && check.out.contains("0 (off)"), check.out)
        let help = try DaemonProcess.run(["--help"], environment: [:])
        XCTAssertTrue(help.out.contains("CONSOLE_DEV_TOKENS") && help.out.contains("CONSOLE_ADMIN_TOKEN"), help.out)
    }

    func testLogRedactionCoversTheAdminToken() {
        let token = "adm1n-T0ken-value-xyz"
        XCTAssertEqual(LogRedaction.clean(token, key: "console_admin_token"), LogRedaction.mask)
        XCTAssertEqual(LogRedaction.clean(token, key: "CONSOLE_ADMIN_TOKEN"), LogRedaction.mask)
        for text in ["CONSOLE_ADMIN_TOKEN=\(token)", "env: CONSOLE_ADMIN_TOKEN=\(token) PORT=1", "Authorization: Bearer \(token)"] {
            let cleaned = LogRedaction.clean(text)
            XCTAssertFalse(cleaned.contains(token), cleaned)
            XCTAssertTrue(cleaned.contains(LogRedaction.mask), cleaned)
        }
        XCTAssertTrue(LogRedaction.clean("PORT=1 CONSOLE_ADMIN_TOKEN=\(token)").hasPrefix("PORT=1 "), "the rest stays")
        XCTAssertEqual(LogRedaction.clean("mytoken=visible"), "mytoken=visible", "a longer word is not a token parameter")
    }

    func testDevTokensOnLogsOneWarningAndTheAdminTokenNever() throws {
        let token = "admin-token-never-in-logs-42"
        var pipe: [Int32] = [0, 0]
        XCTAssertEqual(Glibc.pipe(&pipe), 0)
        let daemon = try DaemonProcess(environment: ["CONSOLE_ADMIN_TOKEN": token, "LOG_LEVEL": "debug"], stdout: pipe[1])
        close(pipe[1])
        let socket = try TestSocket(port: daemon.port)
        try socket.write("GET /api/v1/admin/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(try socket.readHTTPResponse().head.status, 200)
        daemon.send(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeoutMillis: 15_000), 0)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(pipe[0], &buffer, buffer.count)
            if n <= 0 { break }
            output += buffer[0..<n]
        }
        close(pipe[0])
        let log = String(decoding: output, as: UTF8.self)
        let warnings = log.split(separator: "\n").filter {
            $0.contains("dev tokens are on: anyone who reaches this port can connect as any user")
        }
        XCTAssertEqual(warnings.count, 1, log)
        XCTAssertTrue(warnings.first?.contains(#""level":"warn""#) == true, log)
        XCTAssertFalse(log.contains(token), "the admin token was logged")
    }

    func testSameOriginMatching() {
        let policy = OriginPolicy(["https://casa.example.org"])
        XCTAssertTrue(policy.allows("https://casa.example.org", host: "elsewhere:1"), "the list still applies")
        XCTAssertTrue(policy.allows(nil, host: "h"), "no Origin: not a browser")
        XCTAssertTrue(policy.allows("http://127.0.0.1:8082", host: "127.0.0.1:8082"))
        XCTAssertTrue(policy.allows("HTTP://Console.Example.org:8082", host: "console.example.org:8082"))
        XCTAssertTrue(policy.allows("http://console.example.org", host: "console.example.org:80"), "default port")
        XCTAssertTrue(policy.allows("https://console.example.org", host: "console.example.org"), "behind a TLS proxy")
        XCTAssertTrue(policy.allows("http://[::1]:8082", host: "[::1]:8082"))
        XCTAssertFalse(policy.allows("http://127.0.0.1:8083", host: "127.0.0.1:8082"), "another port")
        XCTAssertFalse(policy.allows("http://evil.example:8082", host: "127.0.0.1:8082"), "another host")
        XCTAssertFalse(policy.allows("https://console.example.org", host: "console.example.org:80"), "https is not port 80")
        XCTAssertFalse(policy.allows("null", host: "null"))
        XCTAssertFalse(policy.allows("ws://h:1", host: "h:1"), "only http and https pages")
        XCTAssertFalse(policy.allows("http://h:1/path", host: "h:1/path"))
        XCTAssertFalse(policy.allows("http://user@h:1", host: "user@h:1"))
        XCTAssertFalse(policy.allows("http://h:1", host: nil))
        XCTAssertFalse(policy.allows("http://", host: ""))
    }
}
