import XCTest

@testable import PresenceD
@testable import PresenceRealtime

final class RateLimiterTests: XCTestCase {
    func testBurstOfTwiceTheRateThenRefillAtTheRate() {
        var r = RateLimiter(rate: 5, now: 1000)
        for _ in 0..<10 { XCTAssertTrue(r.allow(rate: 5, now: 1000)) }
        XCTAssertFalse(r.allow(rate: 5, now: 1000))
        XCTAssertFalse(r.allow(rate: 5, now: 1199))  // 0.995 tokens back
        XCTAssertTrue(r.allow(rate: 5, now: 1200))
        XCTAssertFalse(r.allow(rate: 5, now: 1200))
        XCTAssertTrue(r.allow(rate: 5, now: 1700))
        XCTAssertTrue(r.allow(rate: 5, now: 1700))
        XCTAssertFalse(r.allow(rate: 5, now: 1700))
        // A long pause refills only up to the burst.
        for _ in 0..<10 { XCTAssertTrue(r.allow(rate: 5, now: 100_000)) }
        XCTAssertFalse(r.allow(rate: 5, now: 100_000))
    }

    func testZeroMeansNoLimit() {
        var r = RateLimiter(rate: 0, now: 0)
        for _ in 0..<10_000 { XCTAssertTrue(r.allow(rate: 0, now: 0)) }
    }

    func testTheTopRateFitsItsBurst() {
        var r = RateLimiter(rate: 1_000_000, now: 0)
        for _ in 0..<2_000_000 { XCTAssertTrue(r.allow(rate: 1_000_000, now: 0)) }
        XCTAssertFalse(r.allow(rate: 1_000_000, now: 0))
        XCTAssertTrue(r.allow(rate: 1_000_000, now: 1), "a millisecond brings 1,000 back")
        XCTAssertTrue(r.isFull(rate: 1_000_000, now: 60_000))
    }

    func testARunOfRefusalsCloseOnlyAfterFiveSeconds() {
        var r = RateLimiter(rate: 1, now: 0)
        // Refusals every 900 ms: one run, started at 400 ms; the one at 5,800 ms is 5 s after that.
        var closedAt: Int64?
        for t in stride(from: Int64(400), through: 10_000, by: 900) where r.recordRefusal(now: t) {
            closedAt = t
            break
        }
        XCTAssertEqual(closedAt, 5_800)
        // A pause over 1 s starts a new run.
        var fresh = RateLimiter(rate: 1, now: 0)
        XCTAssertFalse(fresh.recordRefusal(now: 1_000))
        XCTAssertFalse(fresh.recordRefusal(now: 2_000))
        XCTAssertFalse(fresh.recordRefusal(now: 3_001), "1,001 ms after the last: a new run")
        for t in stride(from: Int64(4_000), through: 8_000, by: 1_000) { XCTAssertFalse(fresh.recordRefusal(now: t)) }
        XCTAssertTrue(fresh.recordRefusal(now: 8_001), "5 s after 3,001")
    }

    func testLimiterAndSessionSizes() {
        // Both are per connection (issue 19).
        XCTAssertEqual(MemoryLayout<RateLimiter>.size, 22)
        XCTAssertLessThanOrEqual(MemoryLayout<RealtimeApplication.Session?>.stride, 112)
    }
}
