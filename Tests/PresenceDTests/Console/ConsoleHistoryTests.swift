import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// The instance view's pieces: the history ring's rates, the busiest-channels ranking, and the
/// admin token's comparison.
final class ConsoleHistoryTests: XCTestCase {
    private func totals(
        _ index: Int, upgrades: UInt64, deliveries: UInt64, events: UInt64 = 0, rtt: (Int64, UInt64) = (0, 0)
    )
        -> ConsoleHistory.LoopTotals
    {
        ConsoleHistory.LoopTotals(
            index: index, upgrades: upgrades, deliveries: deliveries, events: events,
            redisRTTSumMillis: rtt.0, redisRTTCount: rtt.1)
    }

    func testRatesAreDifferencesOverTheInterval() {
        let history = ConsoleHistory()
        history.record([totals(0, upgrades: 10, deliveries: 100), totals(1, upgrades: 5, deliveries: 50)], nowMillis: 1_000, unixMillis: 7)
        XCTAssertEqual(history.samples, [], "the first read is the base")
        XCTAssertNil(history.eventsPerSecond(loop: 0))
        history.record(
            [totals(0, upgrades: 20, deliveries: 600, events: 50, rtt: (30, 10)), totals(1, upgrades: 15, deliveries: 50)],
            nowMillis: 6_000, unixMillis: 5_007)
        XCTAssertEqual(history.samples, [ConsoleHistory.Sample(time: 5_007, upgradesPerSecond: 4, deliveriesPerSecond: 100)])
        XCTAssertEqual(history.eventsPerSecond(loop: 0), 10)
        XCTAssertEqual(history.eventsPerSecond(loop: 1), 0)
        XCTAssertEqual(history.recentRTTMillis, 3)
        // A loop seen for the first time adds nothing yet; no Redis command: no recent RTT.
        history.record(
            [
                totals(0, upgrades: 20, deliveries: 600, events: 50, rtt: (30, 10)), totals(1, upgrades: 15, deliveries: 50),
                totals(2, upgrades: 1000, deliveries: 1000),
            ], nowMillis: 11_000, unixMillis: 10_007)
        XCTAssertEqual(history.samples.last, ConsoleHistory.Sample(time: 10_007, upgradesPerSecond: 0, deliveriesPerSecond: 0))
        XCTAssertNil(history.recentRTTMillis)
    }

    func testRingKeepsTheLastTenMinutesOldestFirst() {
        let history = ConsoleHistory()
        let n = ConsoleHistory.capacity + 7
        for i in 0...n {
            history.record([totals(0, upgrades: UInt64(i * i), deliveries: 0)], nowMillis: Int64(i) * 5_000, unixMillis: Int64(i))
        }
        let samples = history.samples
        XCTAssertEqual(samples.count, ConsoleHistory.capacity)
        XCTAssertEqual(ConsoleHistory.capacity * Int(ConsoleHistory.intervalMillis), 600_000, "10 minutes")
        XCTAssertEqual(samples.map(\.time), Array((n - ConsoleHistory.capacity + 1)...n).map(Int64.init))
        // i² − (i−1)² = 2i − 1 upgrades in 5 s.
        XCTAssertEqual(samples.last?.upgradesPerSecond, Double(2 * n - 1) / 5)
    }

    func testTopChannelsRanksAndMergesLoops() {
        var top = TopChannels(limit: 3)
        for (name, members) in [("a", 1), ("b", 5), ("c", 3), ("d", 5), ("e", 2), ("f", 9)] { top.offer(name, members) }
        XCTAssertEqual(top.entries.map(\.channel), ["f", "b", "d"])
        let merged = TopChannels.merge(
            [
                [.init(channel: "x", members: 4), .init(channel: "y", members: 6)],
                [.init(channel: "x", members: 4), .init(channel: "z", members: 1)],
            ], limit: 2)
        XCTAssertEqual(merged, [.init(channel: "x", members: 8), .init(channel: "y", members: 6)])
        var none = TopChannels(limit: 0)
        none.offer("a", 1)
        XCTAssertEqual(none.entries, [])
    }

    func testAdminTokenComparison() throws {
        let config = try Config.parse(environment: ["CONSOLE_ADMIN_TOKEN": "0123456789abcdef"], arguments: [])
        let console = ConsoleState(config: config, instanceID: nil)
        XCTAssertTrue(console.isAdmin(authorization: "Bearer 0123456789abcdef"))
        XCTAssertTrue(console.isAdmin(authorization: "bearer 0123456789abcdef"))
        for wrong in [
            nil, "", "Bearer", "Bearer ", "Bearer 0123456789abcde", "Bearer 0123456789abcdefg", "Bearer 0123456789abcdeF",
            "Basic 0123456789abcdef", "0123456789abcdef",
        ] {
            XCTAssertFalse(console.isAdmin(authorization: wrong), String(describing: wrong))
        }
        XCTAssertFalse(
            ConsoleState(config: try Config.parse(environment: [:], arguments: []), instanceID: nil)
                .isAdmin(authorization: "Bearer 0123456789abcdef"), "no admin token: nobody is admin")
        XCTAssertEqual(console.instanceID.count, 16)
        XCTAssertNotNil(console.history)
        XCTAssertTrue(BearerCredential.constantTimeEquals([1, 2], [1, 2]))
        XCTAssertFalse(BearerCredential.constantTimeEquals([1, 2], [1, 2, 0]), "a longer value with a zero tail differs")
        XCTAssertFalse(BearerCredential.constantTimeEquals([], [0]))
    }
}
