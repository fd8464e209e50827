import XCTest
@testable import PresenceD

final class RateLimiterTests: XCTestCase {
    func testBurstOfTwiceTheRateThenRefillAtTheRate() {
        var r = RateLimiter(rate: 5, now: 1000)
        for _ in 0..<10 { XCTAssertTrue(r.allow(rate: 5, now: 1000)) }
        XCTAssertFalse(r.allow(rate: 5, now: 1000))
        XCTAssertFalse(r.allow(rate: 5, now: 1199)) // 0.995 tokens back
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
}
