import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// `MessageOrder`: a channel's messages in offset order on one loop.
final class MessageOrderTests: XCTestCase {
    private func p(_ offset: Int64, _ epoch: String = "e") -> StreamPosition { StreamPosition(offset: offset, epoch: epoch) }

    /// What `arrive` lets out, as the items in order.
    private func arrive(_ order: inout MessageOrder<Int>, _ position: StreamPosition, now: Int64) -> [Int] {
        switch order.arrive(position, Int(position.offset), now: now) {
        case .next: return [Int(position.offset)]
        case .nothing: return []
        case .run(let released): return released.map(\.1)
        }
    }

    func testNothingGoesOutBeforeTheStartAndOnlyWhatFollowsItAfter() {
        var order = MessageOrder<Int>()
        XCTAssertTrue(arrive(&order, p(5), now: 0).isEmpty, "not started: held")
        XCTAssertTrue(arrive(&order, p(7), now: 0).isEmpty)
        XCTAssertTrue(arrive(&order, p(3), now: 0).isEmpty)
        // The join read 4: 5 follows it; 7 waits for 6; 3 was covered.
        XCTAssertEqual(order.start(at: p(4)).map(\.1), [5])
        XCTAssertTrue(order.isHolding)
        XCTAssertEqual(arrive(&order, p(6), now: 0), [6, 7], "the gap closes: both, in order")
        XCTAssertFalse(order.isHolding)
        XCTAssertTrue(order.start(at: p(100)).isEmpty, "started once")
    }

    func testRepeatsAreDroppedAndGapsSkippedAfterTheirTime() {
        var order = MessageOrder<Int>()
        _ = order.start(at: p(0))
        XCTAssertEqual(arrive(&order, p(1), now: 0), [1])
        XCTAssertTrue(arrive(&order, p(1), now: 0).isEmpty, "a repeat")
        XCTAssertTrue(arrive(&order, p(3), now: 100).isEmpty)
        XCTAssertTrue(arrive(&order, p(4), now: 200).isEmpty)
        XCTAssertTrue(order.skipGap(now: 100 + MessageOrder<Int>.gapMillis - 1).isEmpty, "not yet")
        XCTAssertEqual(order.skipGap(now: 100 + MessageOrder<Int>.gapMillis).map(\.1), [3, 4], "2 never came")
        XCTAssertTrue(arrive(&order, p(2), now: 2_000).isEmpty, "too late: behind what went out")
        XCTAssertEqual(arrive(&order, p(5), now: 2_000), [5])
    }

    func testANewEpochStartsAgain() {
        var order = MessageOrder<Int>()
        _ = order.start(at: p(10))
        XCTAssertTrue(arrive(&order, p(12), now: 0).isEmpty)
        XCTAssertEqual(arrive(&order, p(1, "f"), now: 0), [1], "history lost and started again")
        XCTAssertFalse(order.isHolding, "what was held belonged to the old epoch")
        XCTAssertEqual(arrive(&order, p(2, "f"), now: 0), [2])
    }
}
