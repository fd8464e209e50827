import RedisShim
import TestSupport
import XCTest

final class RedisBackoffTests: XCTestCase {
    func testCeilingDoublesUpToTheCap() {
        let backoff = RedisBackoff(baseMillis: 100, capMillis: 5000)
        XCTAssertEqual((0...7).map { backoff.ceiling(attempt: $0) }, [100, 200, 400, 800, 1600, 3200, 5000, 5000])
        XCTAssertEqual(backoff.ceiling(attempt: -1), 100)
        XCTAssertEqual(backoff.ceiling(attempt: 63), 5000)
        XCTAssertEqual(backoff.ceiling(attempt: Int.max), 5000)
    }

    func testCeilingNeverOverflows() {
        let backoff = RedisBackoff(baseMillis: Int64.max / 3, capMillis: Int64.max)
        XCTAssertEqual(backoff.ceiling(attempt: 0), Int64.max / 3)
        XCTAssertEqual(backoff.ceiling(attempt: 1), Int64.max / 3 * 2)
        XCTAssertEqual(backoff.ceiling(attempt: 2), Int64.max)
        XCTAssertEqual(RedisBackoff(baseMillis: 0, capMillis: 100).ceiling(attempt: 5), 0)
    }

    func testRandomSourceSeesTheFullRangeAndIsClamped() {
        let backoff = RedisBackoff(baseMillis: 100, capMillis: 5000)
        var ranges: [ClosedRange<Int64>] = []
        XCTAssertEqual(
            backoff.delay(attempt: 3) {
                ranges.append($0)
                return $0.upperBound
            }, 800)
        XCTAssertEqual(
            backoff.delay(attempt: 3) {
                ranges.append($0)
                return $0.lowerBound
            }, 0)
        XCTAssertEqual(
            backoff.delay(attempt: 9) {
                ranges.append($0)
                return 1_000_000
            }, 5000)
        XCTAssertEqual(
            backoff.delay(attempt: 0) {
                ranges.append($0)
                return -5
            }, 0)
        XCTAssertEqual(ranges, [0...800, 0...800, 0...5000, 0...100])
    }

    func testFullJitterIsUniformOverZeroToCeiling() {
        let backoff = RedisBackoff(baseMillis: 100, capMillis: 5000)
        var rng = SplitMix(seed: 7)
        for attempt in [0, 2, 10] {
            let ceiling = backoff.ceiling(attempt: attempt)
            let draws = (0..<10_000).map { _ in backoff.delay(attempt: attempt, using: &rng) }
            XCTAssertTrue(draws.allSatisfy { (0...ceiling).contains($0) })
            let mean = Double(draws.reduce(0, +)) / Double(draws.count)
            XCTAssertEqual(mean / Double(ceiling), 0.5, accuracy: 0.03, "attempt \(attempt)")
            // Full jitter reaches both ends (equal jitter would never go below ceiling/2).
            XCTAssertTrue(draws.contains { $0 < ceiling / 10 })
            XCTAssertTrue(draws.contains { $0 > ceiling * 9 / 10 })
        }
    }

    func testOptionsDescribeTheBackoff() {
        let options = RedisOptions(backoffBaseMillis: 20, backoffCapMillis: 300)
        XCTAssertEqual(options.backoff, RedisBackoff(baseMillis: 20, capMillis: 300))
        XCTAssertEqual(RedisOptions().backoff.ceiling(attempt: 0), 100)
        XCTAssertEqual(RedisOptions().backoff.ceiling(attempt: 20), 5000)
    }
}
