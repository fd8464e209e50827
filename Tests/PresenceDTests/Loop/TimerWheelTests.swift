import XCTest
@testable import PresenceD

final class TimerWheelTests: XCTestCase {
    private func expire(_ wheel: inout TimerWheel, _ now: Int64) -> [Int32] {
        var due: [Int32] = []
        wheel.expire(now: now, into: &due)
        return due
    }

    func testFiresEachDeadlineOnceAndNotEarly() {
        var wheel = TimerWheel(slots: 8, resolution: 10, now: 1000)
        wheel.reserve(4)
        wheel.schedule(0, at: 1015)
        wheel.schedule(1, at: 1500) // beyond the wheel's 80 ms span: waits for its lap
        wheel.schedule(2, at: 1001)
        var fired: [Int32] = []
        fired += expire(&wheel, 1009)
        XCTAssertEqual(fired, [])
        fired += expire(&wheel, 1010)
        XCTAssertEqual(fired, [2])
        fired += expire(&wheel, 1030)
        XCTAssertEqual(fired, [2, 0])
        for t in stride(from: 1040, through: 1490, by: 10) { fired += expire(&wheel, Int64(t)) }
        XCTAssertEqual(fired, [2, 0])
        fired += expire(&wheel, 1500)
        XCTAssertEqual(fired, [2, 0, 1])
        XCTAssertEqual(wheel.count, 0)
    }

    func testRescheduleCancelAndRearmFromInsideFire() {
        var wheel = TimerWheel(slots: 16, resolution: 10, now: 0)
        wheel.reserve(3)
        wheel.schedule(0, at: 50)
        wheel.schedule(0, at: 100) // moved
        wheel.schedule(1, at: 50)
        wheel.cancel(1)
        var fired: [(Int32, Int64)] = []
        for t in stride(from: 0, through: 400, by: 5) {
            for slot in expire(&wheel, Int64(t)) {
                fired.append((slot, Int64(t)))
                if fired.count < 3 { wheel.schedule(slot, at: Int64(t) + 100) } // a repeating ping
            }
        }
        XCTAssertEqual(fired.map(\.0), [0, 0, 0])
        XCTAssertEqual(fired.map(\.1), [100, 200, 300])
    }

    func testLongStallFiresEverythingDue() {
        var wheel = TimerWheel(slots: 8, resolution: 10, now: 0)
        wheel.reserve(3)
        for i in 0..<3 { wheel.schedule(Int32(i), at: Int64(20 * (i + 1))) }
        var fired = Set<Int32>()
        fired.formUnion(expire(&wheel, 10_000))
        XCTAssertEqual(fired, [0, 1, 2])
        XCTAssertNil(wheel.millisecondsUntilNext(now: 10_000, cap: 1000))
    }

    func testTimeUntilNext() {
        var wheel = TimerWheel(slots: 64, resolution: 10, now: 0)
        wheel.reserve(1)
        wheel.schedule(0, at: 95)
        XCTAssertEqual(wheel.millisecondsUntilNext(now: 0, cap: 1000), 100)
        XCTAssertEqual(wheel.millisecondsUntilNext(now: 0, cap: 50), 50)
    }
}
