import XCTest

@testable import PresenceLoop

final class LoopTimersTests: XCTestCase {
    func testDueTimersRunEarliestFirstAndCancelledOnesNever() {
        var timers = LoopTimers()
        var ran: [Int] = []
        var ids: [UInt64] = []
        for deadline in [50, 10, 40, 20, 30] {
            ids.append(timers.add(at: Int64(deadline)) { ran.append(deadline) })
        }
        timers.cancel(ids[2])  // 40
        XCTAssertEqual(timers.millisecondsUntilNext(now: 0), 10)
        for work in timers.takeDue(now: 45) { work() }
        XCTAssertEqual(ran, [10, 20, 30])
        XCTAssertEqual(timers.millisecondsUntilNext(now: 45), 5)
        for work in timers.takeDue(now: 100) { work() }
        XCTAssertEqual(ran, [10, 20, 30, 50])
        XCTAssertTrue(timers.isEmpty)
        XCTAssertNil(timers.millisecondsUntilNext(now: 100))
    }

    /// A burst of request timers that are answered (cancelled) long before their deadline must not
    /// keep heap entries for the whole timeout: the heap stays within twice the live timers.
    func testCancelledEntriesAreCompactedAndOrderSurvives() {
        var timers = LoopTimers()
        var live: [(UInt64, Int64)] = []
        var ran: [Int64] = []
        var generator = SystemRandomNumberGenerator()
        for i in 0..<50_000 {
            let deadline = Int64.random(in: 1_000...60_000, using: &generator)
            let id = timers.add(at: deadline) { ran.append(deadline) }
            if i % 50 == 0 { live.append((id, deadline)) } else { timers.cancel(id) }
            XCTAssertLessThanOrEqual(timers.heapCount, max(2 * (live.count + 1), LoopTimers.compactionFloor * 2 + 1))
        }
        XCTAssertEqual(live.count, 1_000)
        XCTAssertLessThan(timers.heapCount, 3_000, "cancelled entries were not dropped")
        for work in timers.takeDue(now: 60_000) { work() }
        XCTAssertEqual(ran, live.map(\.1).sorted(), "every live timer ran once, earliest first")
        XCTAssertTrue(timers.isEmpty)
        XCTAssertEqual(timers.heapCount, 0)
    }

    func testCancellingTwiceOrAfterRunningChangesNothing() {
        var timers = LoopTimers()
        var count = 0
        let a = timers.add(at: 5) { count += 1 }
        let b = timers.add(at: 6) { count += 10 }
        for work in timers.takeDue(now: 5) { work() }
        timers.cancel(a)
        timers.cancel(b)
        timers.cancel(b)
        for work in timers.takeDue(now: 10) { work() }
        XCTAssertEqual(count, 1)
        XCTAssertEqual(timers.heapCount, 0)
    }
}
