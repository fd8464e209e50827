import XCTest

@testable import PresenceD
@testable import PresenceRealtime

final class JoinedChannelsTests: XCTestCase {
    func testKeepsJoinOrderThroughRemovals() {
        var joined = JoinedChannels()
        XCTAssertEqual(joined.count, 0)
        XCTAssertFalse(joined.contains("a"))
        for c in ["a", "b", "c", "d"] { joined.append(c) }
        XCTAssertEqual(Array(joined), ["a", "b", "c", "d"])
        XCTAssertEqual(joined.count, 4)
        XCTAssertTrue(joined.remove("a"))  // the inline one: the next takes its place
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

    func testEntriesThatArePrefixesOfOthersAreTheirOwn() {
        var joined = JoinedChannels()
        for c in ["ab", "a", "abc", "b"] { joined.append(c) }
        XCTAssertTrue(joined.contains("a"))
        XCTAssertFalse(joined.contains("bc"))
        XCTAssertFalse(joined.contains("ab c"))
        XCTAssertFalse(joined.remove("bc"))
        XCTAssertTrue(joined.remove("a"))
        XCTAssertEqual(Array(joined), ["ab", "abc", "b"])
        XCTAssertTrue(joined.remove("b"))
        XCTAssertTrue(joined.remove("ab"))
        XCTAssertEqual(Array(joined), ["abc"])
        XCTAssertEqual(joined.count, 1)
    }

    /// Joins and leaves in a scrambled order, against an array.
    func testMatchesAnArray() {
        let names = ["a", "b", "ab", "room", "family:42", "family:4", "x.y-z", String(repeating: "q", count: 128)]
        var joined = JoinedChannels()
        var model: [String] = []
        for step in 0..<4_000 {
            let name = names[(step &* 7 &+ step / 5) % names.count]
            if model.contains(name) {
                XCTAssertTrue(joined.remove(name))
                model.removeAll { $0 == name }
            } else {
                XCTAssertFalse(joined.remove(name))
                joined.append(name)
                model.append(name)
            }
            XCTAssertEqual(Array(joined), model, "step \(step)")
            XCTAssertEqual(joined.count, model.count)
            for n in names { XCTAssertEqual(joined.contains(n), model.contains(n)) }
        }
    }

    func testSixteenBytesInASession() {
        XCTAssertEqual(MemoryLayout<JoinedChannels>.size, 16)
    }
}
