import RedisTestSupport
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// The bounds on remembered last-seen times: Redis' `seen` set (the sweep script, run on a real
/// redis-server with a small cap) and embedded mode's `LastSeenBook`.
final class UserPresenceScriptTests: XCTestCase {
    func testTheSweepKeepsSeenWithinItsAgeAndCount() throws {
        let redis = try RedisServerProcess()
        let keys = PresenceScripts.userKeys(bucket: "!users:0")
        let (users, names, left, seen) = (keys[3], keys[4], keys[5], keys[6])
        let now: Int64 = 1_800_000_000_000, retention: Int64 = 60_000
        func cli(_ args: String...) -> String { redis.redisCLI(args) }
        // Six remembered users (one past the retention) and two whose grace periods just ended.
        _ = cli("ZADD", seen, String(now - retention - 1), "ancient")
        for i in 1...5 { _ = cli("ZADD", seen, String(now - 5_000 + Int64(i)), "old\(i)") }
        _ = cli("ZADD", users, String(now - 10), "gone1", String(now - 5), "gone2")
        _ = cli("HSET", left, "gone1", String(now - 1_510), "gone2", String(now - 1_505))
        _ = cli("HSET", names, "gone1", "Gone One")

        let reply = redis.redisCLI(
            ["EVAL", PresenceScripts.sweep.source, String(keys.count)] + keys
                + [String(now), "30000", "1500", "4", String(retention)])
        let lines = reply.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(Array(lines.prefix(6)), ["gone1", "Gone One", String(now - 1_510), "gone2", "", String(now - 1_505)], reply)

        // Age first (ancient), then the oldest down to the cap of 4: the two just gone are kept.
        XCTAssertEqual(cli("ZRANGE", seen, "0", "-1"), ["old4", "old5", "gone1", "gone2"].joined(separator: "\n"))
        XCTAssertEqual(cli("ZSCORE", seen, "gone1"), String(now - 1_510))
        XCTAssertEqual(cli("HLEN", left), "0")
        XCTAssertEqual(cli("HLEN", names), "0")
        XCTAssertEqual(cli("ZCARD", users), "0")

        // The query: a remembered user, one past the retention (as if never seen), one never seen.
        _ = cli("ZADD", seen, String(now - retention - 1), "ancient")
        let answer = redis.redisCLI(
            ["EVAL", PresenceScripts.users.source, String(keys.count)] + keys
                + [String(now), "30000", "1500", "4", String(retention), "gone1", "ancient", "nobody"])
        var got = answer.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while got.count < 6 { got.append("") }  // redisCLI trims the output's trailing (nil) lines
        XCTAssertEqual(got, ["0", String(now - 1_510), "0", "", "0", ""], answer)
    }

    func testLastSeenBookForgetsTheOldestBeyondItsCapacity() {
        var book = LastSeenBook(capacity: 8, retentionMillis: 10_000)
        for i in 0..<20 { book.record("u\(i)", at: 100_000 + Int64(i)) }
        XCTAssertLessThanOrEqual(book.count, 8)
        XCTAssertEqual(book.lastSeen("u19", now: 100_100), 100_019, "the newest is kept")
        XCTAssertNil(book.lastSeen("u0", now: 100_100), "the oldest is forgotten")
        XCTAssertNil(book.lastSeen("u19", now: 100_019 + 10_001), "past the retention")
        book.record("u19", at: 200_000)
        XCTAssertEqual(book.lastSeen("u19", now: 200_000), 200_000, "a later close replaces the time")
    }
}
