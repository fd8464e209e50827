import RedisShim
import XCTest

final class RedisEndpointTests: XCTestCase {
    private func parse(_ url: String) throws -> RedisEndpoint { try RedisEndpoint.parse(url) }

    func testHostOnlyUsesDefaults() throws {
        XCTAssertEqual(try parse("redis://localhost"), RedisEndpoint(host: "localhost"))
        let e = try parse("redis://redis.internal/")
        XCTAssertEqual(e.host, "redis.internal")
        XCTAssertEqual(e.port, 6379)
        XCTAssertFalse(e.tls)
        XCTAssertNil(e.username)
        XCTAssertNil(e.password)
        XCTAssertEqual(e.database, 0)
    }

    func testTLSPortAndDatabase() throws {
        XCTAssertEqual(
            try parse("rediss://cache.example.com:6380/2"),
            RedisEndpoint(host: "cache.example.com", port: 6380, tls: true, database: 2))
        XCTAssertEqual(try parse("rediss://h").port, 6379)
        XCTAssertEqual(try parse("REDIS://h:1").port, 1)
        XCTAssertEqual(try parse("redis://h:65535/15").database, 15)
    }

    func testUserAndPasswordForms() throws {
        let both = try parse("redis://alice:s3cret@10.0.0.5:7000/1")
        XCTAssertEqual(both, RedisEndpoint(host: "10.0.0.5", port: 7000, username: "alice", password: "s3cret", database: 1))
        let passwordOnly = try parse("redis://:s3cret@h")
        XCTAssertNil(passwordOnly.username)
        XCTAssertEqual(passwordOnly.password, "s3cret")
        let userOnly = try parse("redis://alice@h")
        XCTAssertEqual(userOnly.username, "alice")
        XCTAssertNil(userOnly.password)
        let emptyPassword = try parse("redis://alice:@h")
        XCTAssertEqual(emptyPassword.password, "")
    }

    func testPercentDecoding() throws {
        let e = try parse("redis://us%40er:p%40ss%3Aw%2Frd%25%20x@h:1")
        XCTAssertEqual(e.username, "us@er")
        XCTAssertEqual(e.password, "p@ss:w/rd% x")
        XCTAssertEqual(try parse("redis://:%C3%A9t%C3%A9@h").password, "été")
        XCTAssertEqual(try parse("redis://:a+b@h").password, "a+b", "+ is not a space in userinfo")
        // An unencoded "@" in the password still works: the last "@" ends the userinfo.
        XCTAssertEqual(try parse("redis://:p@ss@h").password, "p@ss")
        XCTAssertEqual(try parse("redis://:p@ss@h").host, "h")
    }

    func testIPv6() throws {
        XCTAssertEqual(try parse("redis://[::1]:6380/3"), RedisEndpoint(host: "::1", port: 6380, database: 3))
        XCTAssertEqual(
            try parse("rediss://u:p@[2001:db8::7]"),
            RedisEndpoint(host: "2001:db8::7", tls: true, username: "u", password: "p"))
    }

    func testDatabaseFromQuery() throws {
        XCTAssertEqual(try parse("redis://h?db=4").database, 4)
        XCTAssertEqual(try parse("redis://h:1/?db=4").database, 4)
        XCTAssertEqual(try parse("redis://h/4?db=4").database, 4)
        XCTAssertEqual(try parse("redis://h?timeout=5&db=6").database, 6)
        XCTAssertEqual(try parse("redis://h?timeout=5").database, 0)
    }

    func testRejectsInvalidURLs() {
        let invalid = [
            "http://h", "redis:/h", "h:6379", "", "redis://", "redis://:pw@", "redis://h:", "redis://h:0",
            "redis://h:65536", "redis://h:12ab", "redis://h:-1", "redis://h/x", "redis://h/-1", "redis://h/1/2",
            "redis://[::1", "redis://[::1]x", "redis://[host]", "redis://h?db=x", "redis://h?db=", "redis://h/1?db=2",
            "redis://h#frag", "redis://:%zz@h", "redis://:%4@h", "redis://:%ff@h", "redis://a b",
        ]
        for url in invalid {
            XCTAssertThrowsError(try parse(url), url) { XCTAssertTrue($0 is RedisURLError, url) }
        }
    }

    func testErrorsNeverQuoteThePassword() {
        for url in ["redis://:hunter2@h:99999", "redis://u:hunter2@h/abc", "redis://:hunter2%zz@h", "redis://u:hunter2@h?db=q"] {
            do {
                _ = try parse(url)
                XCTFail("accepted \(url)")
            } catch {
                XCTAssertFalse("\(error)".contains("hunter2"), "\(error)")
            }
        }
    }

    func testDescriptionMasksThePassword() throws {
        let e = try parse("rediss://user:hunter2@host:6380/2")
        XCTAssertEqual(e.description, "rediss://user:***@host:6380/2")
        XCTAssertEqual("\(e)", "rediss://user:***@host:6380/2")
        XCTAssertFalse(String(reflecting: e).contains("hunter2"))
        var dumped = ""
        dump(e, to: &dumped)
        XCTAssertFalse(dumped.contains("hunter2"), dumped)
        XCTAssertTrue(dumped.contains("host"), dumped)
        XCTAssertEqual(try parse("redis://:pw@h").description, "redis://:***@h:6379")
        XCTAssertEqual(try parse("redis://alice@h").description, "redis://alice@h:6379")
        XCTAssertEqual(try parse("redis://[::1]/0").description, "redis://[::1]:6379")
    }
}
