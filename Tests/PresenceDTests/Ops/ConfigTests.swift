import XCTest
@testable import PresenceD

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
        XCTAssertEqual(c.tokenAudience, "presenced")
        XCTAssertEqual(c.allowedOrigins, ["https://casa.devarno.cloud", "http://localhost:3000"])
        XCTAssertNil(c.redisURL)
    }

    func testDurationsAndFlagsOverrideEnvironment() throws {
        let c = try Config.parse(environment: ["PORT": "9000", "PING_INTERVAL": "500ms", "PRESENCE_TTL": "2m", "PRESENCE_GRACE": "3"],
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
}
