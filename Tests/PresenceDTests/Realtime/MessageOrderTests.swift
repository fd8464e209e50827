import XCTest
@testable import PresenceD

/// `MessageOrder`: a channel's messages in offset order on one loop.
final class MessageOrderTests: XCTestCase {
    private func p(_ offset: Int64, _ epoch: String = "e") -> StreamPosition { StreamPosition(offset: offset, epoch: epoch) }

    func testNothingGoesOutBeforeTheStartAndOnlyWhatFollowsItAfter() {
        var order = MessageOrder<Int>()
        XCTAssertTrue(order.arrive(p(5), 5, now: 0).isEmpty, "not started: held")
        XCTAssertTrue(order.arrive(p(7), 7, now: 0).isEmpty)
        XCTAssertTrue(order.arrive(p(3), 3, now: 0).isEmpty)
        // The join read 4: 5 follows it; 7 waits for 6; 3 was covered.
        XCTAssertEqual(order.start(at: p(4)).map(\.1), [5])
        XCTAssertTrue(order.isHolding)
        XCTAssertEqual(order.arrive(p(6), 6, now: 0).map(\.1), [6, 7], "the gap closes: both, in order")
        XCTAssertFalse(order.isHolding)
        XCTAssertTrue(order.start(at: p(100)).isEmpty, "started once")
    }

    func testRepeatsAreDroppedAndGapsSkippedAfterTheirTime() {
        var order = MessageOrder<Int>()
        _ = order.start(at: p(0))
        XCTAssertEqual(order.arrive(p(1), 1, now: 0).map(\.1), [1])
        XCTAssertTrue(order.arrive(p(1), 1, now: 0).isEmpty, "a repeat")
        XCTAssertTrue(order.arrive(p(3), 3, now: 100).isEmpty)
        XCTAssertTrue(order.arrive(p(4), 4, now: 200).isEmpty)
        XCTAssertTrue(order.skipGap(now: 100 + MessageOrder<Int>.gapMillis - 1).isEmpty, "not yet")
        XCTAssertEqual(order.skipGap(now: 100 + MessageOrder<Int>.gapMillis).map(\.1), [3, 4], "2 never came")
        XCTAssertTrue(order.arrive(p(2), 2, now: 2_000).isEmpty, "too late: behind what went out")
        XCTAssertEqual(order.arrive(p(5), 5, now: 2_000).map(\.1), [5])
    }

    func testANewEpochStartsAgain() {
        var order = MessageOrder<Int>()
        _ = order.start(at: p(10))
        XCTAssertTrue(order.arrive(p(12), 12, now: 0).isEmpty)
        XCTAssertEqual(order.arrive(p(1, "f"), 1, now: 0).map(\.1), [1], "history lost and started again")
        XCTAssertFalse(order.isHolding, "what was held belonged to the old epoch")
        XCTAssertEqual(order.arrive(p(2, "f"), 2, now: 0).map(\.1), [2])
    }
}
