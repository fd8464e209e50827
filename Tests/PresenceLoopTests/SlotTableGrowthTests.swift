import XCTest

@testable import PresenceLoop

final class SlotTableGrowthTests: XCTestCase {
    func testGrowsByAnEighthNotByDoubling() {
        XCTAssertEqual(SlotTableGrowth.next(after: 0), 64)
        XCTAssertEqual(SlotTableGrowth.next(after: 8192), 9216)
        var table: [Int32] = []
        var spareAtMost = 0.0
        for slot in 0..<20_000 {
            table.extendForSlot(slot, with: -1)
            XCTAssertEqual(table.count, slot + 1)
            if slot > 1024 { spareAtMost = max(spareAtMost, Double(table.capacity) / Double(table.count)) }
        }
        XCTAssertTrue(table.allSatisfy { $0 == -1 })
        XCTAssertLessThanOrEqual(spareAtMost, 1.13, "at most an eighth (and malloc's rounding) spare")
        table.extendForSlot(10, with: 7)  // already covered: nothing changes
        XCTAssertEqual(table.count, 20_000)
        XCTAssertEqual(table[10], -1)
    }
}
