import XCTest
@testable import PresenceD

final class JoinedChannelsTests: XCTestCase {
    func testKeepsJoinOrderThroughRemovals() {
        var joined = JoinedChannels()
        XCTAssertEqual(joined.count, 0)
        XCTAssertFalse(joined.contains("a"))
        for c in ["a", "b", "c", "d"] { joined.append(c) }
        XCTAssertEqual(Array(joined), ["a", "b", "c", "d"])
        XCTAssertEqual(joined.count, 4)
        XCTAssertTrue(joined.remove("a"))   // the inline one: the next takes its place
        XCTAssertEqual(Array(joined), ["b", "c", "d"])
        XCTAssertTrue(joined.remove("c"))
        XCTAssertEqual(Array(joined), ["b", "d"])
        XCTAssertFalse(joined.remove("c"))
        XCTAssertFalse(joined.contains("a"))
        XCTAssertTrue(joined.contains("d"))
        XCTAssertTrue(joined.remove("b"))
        XCTAssertTrue(joined.remove("d"))
        XCTAssertEqual(joined.count, 0)
        XCTAssertEqual(Array(joined), [])
        joined.append("e")
        XCTAssertEqual(Array(joined), ["e"])
    }
}
