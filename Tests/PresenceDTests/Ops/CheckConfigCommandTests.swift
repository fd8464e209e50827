import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceOutbound
@testable import PresenceRealtime

/// `presenced check-config`: "config ok" and a summary without secrets (exit 0), or the one line
/// a start would give (exit 78).
final class CheckConfigCommandTests: XCTestCase {
    private let secret = "check-config-secret-0123456789-abcdefghij"

    private func run(_ environment: [String: String], _ arguments: [String] = []) -> (status: Int32, out: [String], err: [String]) {
        var out: [String] = [], err: [String] = []
        let status = CheckConfigCommand.run(
            arguments: arguments, environment: environment,
            output: { out.append($0) }, errorOutput: { err.append($0) })
        return (status, out, err)
    }

    func testAGoodConfigurationIsSummarizedWithoutSecrets() {
        let r = run(
            [
                "WS_TOKEN_SECRET": secret, "WS_TOKEN_SECRET_PREVIOUS": secret + "-old",
                "REDIS_URL": "redis://ops:redis-pass-1@10.1.2.3:6380/2", "CHAT_SERVICE_TOKEN": "chat-token-xyz",
                "BIND": "0.0.0.0", "PORT": "9000",
            ], ["--threads", "3"])
        XCTAssertEqual(r.status, 0, "\(r.err)")
        XCTAssertEqual(r.err, [])
        XCTAssertEqual(r.out.first, "config ok")
        let text = r.out.joined(separator: "\n")
        for variable in ConfigVariable.all {
            XCTAssertTrue(r.out.contains { $0.hasPrefix("  \(variable.name) ") }, variable.name)
        }
        for hidden in [secret, "redis-pass-1", "chat-token-xyz"] { XCTAssertFalse(text.contains(hidden), hidden) }
        XCTAssertTrue(text.contains("redis://ops:***@10.1.2.3:6380/2"), text)
        XCTAssertTrue(r.out.contains { $0.hasPrefix("  WS_TOKEN_SECRET ") && $0.hasSuffix(" set") }, text)
        XCTAssertTrue(r.out.contains { $0.hasPrefix("  AUTH_SERVICE_URL ") && $0.hasSuffix(" unset") }, text)
        XCTAssertTrue(r.out.contains { $0.hasPrefix("  THREADS ") && $0.hasSuffix(" 3") }, "flags override: \(text)")
        XCTAssertTrue(r.out.contains { $0.hasPrefix("  PORT ") && $0.hasSuffix(" 9000") }, text)
        XCTAssertEqual(r.out.last, "  mode: Redis")
    }

    func testDevModeIsNamed() {
        let r = run([:])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.out.last?.contains("dev mode") == true, "\(r.out)")
    }

    func testBadValuesGiveOneLineAndExit78() throws {
        let file = NSTemporaryDirectory() + "presenced-not-a-dir-" + RequestID.make()
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        defer { _ = try? FileManager.default.removeItem(atPath: file) }
        let cases: [([String: String], [String], String)] = [
            (["PORT": "eighty"], [], "PORT"),
            ([:], ["--port", "eighty"], "--port"),
            (["BIND": "0.0.0.0"], [], "WS_TOKEN_SECRET"),
            (["INVOCATION_ID": "abc"], [], "WS_TOKEN_SECRET"),
            (
                ["WS_TOKEN_SECRET": secret, "CHAT_SERVICE_URL": "http://chat:8080", "STATE_DIRECTORY": file + "/queue"], [],
                "STATE_DIRECTORY"
            ),
            (["WS_TOKEN_SECRET": secret, "CHAT_SERVICE_URL": "http://chat:8080", "STATE_DIRECTORY": file], [], "STATE_DIRECTORY"),
            (["ALLOWED_ORIGINS": "casa.devarno.cloud"], [], "ALLOWED_ORIGINS"),
        ]
        for (environment, arguments, variable) in cases {
            let r = run(environment, arguments)
            XCTAssertEqual(r.status, 78, "\(environment) \(arguments)")
            XCTAssertEqual(r.out, [], "\(environment)")
            XCTAssertEqual(r.err.count, 1, "\(r.err)")
            XCTAssertTrue(r.err.first?.hasPrefix("presenced: invalid \(variable): ") == true, "\(r.err)")
            XCTAssertFalse(r.err.first?.contains("\n") ?? true)
        }
        // A state directory that does not exist yet but can be made is fine.
        let makeable = NSTemporaryDirectory() + "presenced-new-" + RequestID.make() + "/a/b"
        XCTAssertEqual(run(["WS_TOKEN_SECRET": secret, "CHAT_SERVICE_URL": "http://chat:8080", "STATE_DIRECTORY": makeable]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: makeable), "check-config creates nothing")
    }

    // MARK: The binary

    func testBinaryExits78WithOneStderrLineNamingPORT() throws {
        let r = try DaemonProcess.run(["check-config"], environment: ["PORT": "not-a-port", "WS_TOKEN_SECRET": secret])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.out, "")
        XCTAssertEqual(r.err.split(separator: "\n", omittingEmptySubsequences: false).count, 2, "one line: \(r.err)")
        XCTAssertTrue(r.err.hasPrefix("presenced: invalid PORT: "), r.err)
        let ok = try DaemonProcess.run(["check-config"], environment: ["PORT": "8123", "WS_TOKEN_SECRET": secret])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.hasPrefix("config ok\n"), ok.out)
        XCTAssertFalse(ok.out.contains(secret))
    }

    func testHelpListsCheckConfigAndEveryVariable() throws {
        let r = try DaemonProcess.run(["--help"], environment: [:])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.out.contains("presenced check-config"), r.out)
        for variable in ConfigVariable.all { XCTAssertTrue(r.out.contains("  \(variable.name) "), variable.name) }
    }
}
