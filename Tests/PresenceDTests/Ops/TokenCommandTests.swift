import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// `presenced token`: prints a token `TokenVerifier` accepts; usage errors exit 64, secret and
/// audience problems exit 78, each with one stderr line free of the secret.
final class TokenCommandTests: XCTestCase {
    private let secret = "command-secret-0123456789-abcdefghij"

    private func run(
        _ arguments: [String], environment: [String: String]? = nil
    )
        -> (status: Int32, out: [String], err: [String])
    {
        var out: [String] = [], err: [String] = []
        let status = TokenCommand.run(
            arguments: arguments, environment: environment ?? ["WS_TOKEN_SECRET": secret],
            output: { out.append($0) }, errorOutput: { err.append($0) })
        return (status, out, err)
    }

    func testPrintsATokenTheVerifierAccepts() throws {
        let before = UnixTime.now()
        let r = run([
            "--user", "u-1", "--ttl", "120", "--role", "admin", "--channel", "family:1", "--channel", "dm.2",
            "--name", "Ann", "--session", "s-1",
        ])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.err, [])
        XCTAssertEqual(r.out.count, 1)
        let token = try XCTUnwrap(r.out.first)
        XCTAssertFalse(token.contains("\n") || token.contains(" "))
        let claims = try TokenVerifier(secrets: [secret], audience: "presenced").verify(token, now: UnixTime.now()).get()
        XCTAssertEqual(claims.userID, "u-1")
        XCTAssertEqual(claims.expiresAt - claims.issuedAt, 120)
        XCTAssertGreaterThanOrEqual(claims.issuedAt, before)
        XCTAssertEqual(claims.role, .admin)
        XCTAssertEqual(claims.channels, ["family:1", "dm.2"])
        XCTAssertEqual(claims.name, "Ann")
        XCTAssertEqual(claims.sessionID, "s-1")
    }

    func testDefaultsEqualsFormAndLeadingTokenWord() throws {
        let r = run(["token", "--user=dev", "--ttl=2m"], environment: ["WS_TOKEN_SECRET": secret, "WS_TOKEN_AUDIENCE": "casa"])
        XCTAssertEqual(r.status, 0)
        let claims = try TokenVerifier(secrets: [secret], audience: "casa").verify(r.out[0], now: UnixTime.now()).get()
        XCTAssertEqual(claims.userID, "dev")
        XCTAssertEqual(claims.expiresAt - claims.issuedAt, 120)
        XCTAssertNil(claims.channels)
        XCTAssertNil(claims.role)

        let plain = run(["--user", "dev"])
        XCTAssertEqual(plain.status, 0)
        let defaults = try TokenVerifier(secrets: [secret], audience: "presenced").verify(plain.out[0], now: UnixTime.now()).get()
        XCTAssertEqual(defaults.expiresAt - defaults.issuedAt, 60, "default ttl 60 s, default audience presenced")
    }

    func testShortSecretExits78WithOneLineAndNoSecret() {
        let short = "only-31-bytes-of-secret-text-xx"
        XCTAssertEqual(short.utf8.count, 31)
        let r = run(["--user", "u"], environment: ["WS_TOKEN_SECRET": short])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.out, [])
        XCTAssertEqual(r.err.count, 1)
        XCTAssertTrue(r.err[0].contains("WS_TOKEN_SECRET"))
        XCTAssertFalse(r.err[0].contains(short))
        XCTAssertFalse(r.err[0].contains("\n"))
        XCTAssertEqual(run(["--user", "u"], environment: ["WS_TOKEN_SECRET": String(repeating: "s", count: 32)]).status, 0)
    }

    func testMissingSecretOrEmptyAudienceExit78() {
        for environment in [[:], ["WS_TOKEN_SECRET": ""], ["WS_TOKEN_SECRET": secret, "WS_TOKEN_AUDIENCE": ""]] {
            let r = run(["--user", "u"], environment: environment)
            XCTAssertEqual(r.status, 78, "\(environment.keys.sorted())")
            XCTAssertEqual(r.err.count, 1)
            XCTAssertEqual(r.out, [])
        }
    }

    func testUsageErrorsExit64WithOneLine() {
        let cases: [[String]] = [
            [], ["--ttl", "60"], ["--user"], ["--user", ""], ["--user=", "--ttl", "60"],
            ["--user", "u", "--ttl", "0"], ["--user", "u", "--ttl", "301"], ["--user", "u", "--ttl", "6m"],
            ["--user", "u", "--ttl", "soon"], ["--user", "u", "--ttl", "500ms"], ["--user", "u", "--ttl", "-1"],
            ["--user", "u", "--role", "owner"], ["--user", "u", "--channel", "bad channel"],
            ["--user", "u", "--channel", ""], ["--user", "u", "--bogus", "x"], ["--user", "u", "extra"],
            ["--user", "u", "--ttl"],
        ]
        for arguments in cases {
            let r = run(arguments)
            XCTAssertEqual(r.status, 64, "\(arguments)")
            XCTAssertEqual(r.err.count, 1, "\(arguments)")
            XCTAssertEqual(r.out, [], "\(arguments)")
        }
        // A usage error wins over a bad secret, and neither is echoed.
        XCTAssertEqual(run([], environment: ["WS_TOKEN_SECRET": "short"]).status, 64)
    }

    func testErrorsNeverEchoValues() {
        // A secret pasted after a mistyped option, or as a stray argument, is not repeated.
        let pasted = "pasted-secret-value-0123456789abcdef"
        for arguments in [["--user", "u", "--secret", pasted], ["--user", "u", "--secret=" + pasted], ["--user", "u", pasted]] {
            let r = run(arguments)
            XCTAssertEqual(r.status, 64)
            XCTAssertFalse(r.err.joined().contains(pasted), "\(r.err)")
        }
    }

    func testHelp() {
        let r = run(["--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.out.joined().contains("--user"))
        XCTAssertEqual(r.err, [])
    }
}
