import XCTest

@testable import PresenceLoop

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
        wheel.schedule(1, at: 1500)  // beyond the wheel's 80 ms span: waits for its lap
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
        wheel.schedule(0, at: 100)  // moved
        wheel.schedule(1, at: 50)
        wheel.cancel(1)
        var fired: [(Int32, Int64)] = []
        for t in stride(from: 0, through: 400, by: 5) {
            for slot in expire(&wheel, Int64(t)) {
                fired.append((slot, Int64(t)))
                if fired.count < 3 { wheel.schedule(slot, at: Int64(t) + 100) }  // a repeating ping
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

    /// Many slots over several laps, some moved or cancelled (bucket heads included): each fires
    /// once, at the first look at or after its deadline's tick boundary.
    func testManySlotsAgainstAModel() {
        let resolution: Int64 = 10
        var wheel = TimerWheel(slots: 16, resolution: resolution, now: 0)
        wheel.reserve(300)
        var due: [Int32: Int64] = [:]  // slot → the tick boundary it fires at
        for slot in 0..<300 {
            let deadline = Int64((slot &* 7_919) % 480) + 1
            wheel.schedule(Int32(slot), at: deadline)
            due[Int32(slot)] = (deadline + resolution - 1) / resolution * resolution
        }
        for slot in stride(from: 0, to: 300, by: 3) {
            if slot % 2 == 0 {
                wheel.cancel(Int32(slot))
                due[Int32(slot)] = nil
                XCTAssertFalse(wheel.isScheduled(Int32(slot)))
            } else {
                wheel.schedule(Int32(slot), at: 200)
                due[Int32(slot)] = 200
            }
        }
        XCTAssertEqual(wheel.count, due.count)
        var now: Int64 = 0
        while now <= 600 {
            now += 7
            let fired = expire(&wheel, now)
            XCTAssertEqual(Set(fired).count, fired.count)
            for slot in fired {
                XCTAssertNotNil(due[slot], "slot \(slot) fired twice or after a cancel")
                XCTAssertLessThanOrEqual(due[slot] ?? 0, now, "slot \(slot) early")
                XCTAssertGreaterThan(due[slot] ?? .max, now - 7, "slot \(slot) late")
                XCTAssertFalse(wheel.isScheduled(slot))
                due[slot] = nil
            }
        }
        XCTAssertEqual(due.count, 0)
        XCTAssertEqual(wheel.count, 0)
    }
}
