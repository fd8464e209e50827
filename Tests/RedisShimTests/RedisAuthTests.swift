import RedisShim
import RedisTestSupport
import XCTest

final class RedisAuthTests: XCTestCase {
    func testRequirePassWithPasswordOnly() throws {
        let server = try RedisServerProcess(password: "s3cret")
        let host = PollHost()
        let c = try host.connect("redis://:s3cret@127.0.0.1:\(server.port)")
        XCTAssertEqual(host.call(c, "SET", "k", "v"), .success(.simple("OK")))
        XCTAssertEqual(host.call(c, "ACL", "WHOAMI"), bulk("default"))

        // Without a password the handshake passes (CLIENT SETNAME is cosmetic) but commands fail.
        let anonymous = try host.connect("redis://127.0.0.1:\(server.port)")
        guard case .failure(.server(let message))? = host.call(anonymous, "GET", "k") else { return XCTFail() }
        XCTAssertTrue(message.hasPrefix("NOAUTH"), message)
    }

    func testACLUserWithPercentEncodedPassword() throws {
        let server = try RedisServerProcess(password: "admin")
        XCTAssertEqual(server.redisCLI("ACL", "SETUSER", "alice", "on", ">p@ss:w/rd", "~*", "&*", "+@all"), "OK")
        let host = PollHost()
        let c = try host.connect("redis://alice:p%40ss%3Aw%2Frd@127.0.0.1:\(server.port)/2")
        XCTAssertEqual(host.call(c, "ACL", "WHOAMI"), bulk("alice"))
        XCTAssertEqual(host.call(c, "SET", "k", "alice"), .success(.simple("OK")))
        XCTAssertEqual(server.redisCLI(database: 2, "GET", "k"), "alice")
        XCTAssertEqual(host.call(c, "CLIENT", "GETNAME"), bulk("presenced"))
    }

    func testWrongPasswordReportsAuthFailedOnEveryRetry() throws {
        let server = try RedisServerProcess(password: "right")
        XCTAssertEqual(server.redisCLI("ACL", "SETUSER", "bob", "on", ">bobpw", "~*", "+@all"), "OK")
        let host = PollHost()
        for url in [
            "redis://:wrong@127.0.0.1:\(server.port)", "redis://bob:wrong@127.0.0.1:\(server.port)",
            "redis://nobody:right@127.0.0.1:\(server.port)",
        ] {
            let c = RedisConnection(
                endpoint: try RedisEndpoint.parse(url), host: host,
                options: RedisOptions(backoffBaseMillis: 10, backoffCapMillis: 30))
            var downs: [RedisError] = []
            var readies = 0
            c.onDown = { downs.append($0) }
            c.onReady = { readies += 1 }
            c.start()
            XCTAssertTrue(host.run(until: { downs.count >= 3 }, timeoutMillis: 3000), url)
            XCTAssertEqual(readies, 0)
            XCTAssertFalse(c.isReady)
            for down in downs {
                guard case .authFailed(let message) = down else { return XCTFail("\(url): \(down)") }
                XCTAssertTrue(message.hasPrefix("WRONGPASS"), message)
            }
            XCTAssertGreaterThanOrEqual(c.stats.connectAttempts, 3)
            c.shutdown()
        }
    }
}
