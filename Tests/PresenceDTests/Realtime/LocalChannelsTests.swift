import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// `LocalChannels`: membership by scan in small channels, by slot index in large ones, and the
/// same answers either way.
final class LocalChannelsTests: XCTestCase {
    private func id(_ slot: UInt32, _ generation: UInt32 = 1) -> ConnectionID {
        ConnectionID(slot: slot, generation: generation)
    }

    func testSmallChannelHasNoIndexAndFindsMembersByScan() {
        let channel = LocalChannels.Channel()
        for slot in 0..<UInt32(LocalChannels.Channel.indexedAbove) { channel.add(id(slot)) }
        XCTAssertFalse(channel.isIndexed)
        XCTAssertTrue(channel.contains(id(5)))
        XCTAssertFalse(channel.contains(id(5, 2)), "a later connection in the same slot is not a member")
        channel.add(id(5))
        XCTAssertEqual(channel.members.count, LocalChannels.Channel.indexedAbove, "added once")
        channel.remove(id(5, 2))
        XCTAssertTrue(channel.contains(id(5)), "removing another generation leaves the member")
        channel.remove(id(0))
        XCTAssertFalse(channel.contains(id(0)))
        XCTAssertEqual(Set(channel.members), Set((1..<UInt32(LocalChannels.Channel.indexedAbove)).map { id($0) }))
    }

    func testIndexComesAboveTheThresholdAndGoesAtHalf() {
        let channel = LocalChannels.Channel()
        let limit = LocalChannels.Channel.indexedAbove
        for slot in 0...UInt32(limit) { channel.add(id(slot)) }
        XCTAssertTrue(channel.isIndexed)
        for slot in 0...UInt32(limit) { XCTAssertTrue(channel.contains(id(slot)), "slot \(slot)") }
        XCTAssertFalse(channel.contains(id(3, 2)), "a later connection in the same slot is not a member")
        channel.remove(id(3, 2))
        XCTAssertEqual(channel.members.count, limit + 1)
        for slot in 0..<UInt32(limit / 2) { channel.remove(id(slot)) }
        XCTAssertTrue(channel.isIndexed, "\(channel.members.count) members: still indexed")
        channel.remove(id(UInt32(limit / 2)))
        XCTAssertFalse(channel.isIndexed)
        XCTAssertEqual(Set(channel.members), Set((UInt32(limit / 2 + 1)...UInt32(limit)).map { id($0) }))
    }

    /// Adds and removes in a scrambled order across both regimes, checked against a set.
    func testMembershipMatchesASetThroughGrowthAndShrinking() {
        let channel = LocalChannels.Channel()
        var expected = Set<ConnectionID>()
        var sawIndexed = false, sawUnindexed = false
        for step in 0..<20_000 {
            let slot = UInt32((step &* 7_919) % 97)
            let member = id(slot)  // the loop closes a slot's connection before it reuses the slot
            // Mostly adds while growing, mostly removes while shrinking: both regimes are crossed often.
            let growing = (step / 500).isMultiple(of: 2)
            if (step % 4 != 0) == growing {
                channel.add(member)
                expected.insert(member)
            } else {
                channel.remove(member)
                expected.remove(member)
            }
            XCTAssertEqual(channel.members.count, expected.count, "step \(step)")
            if channel.isIndexed { sawIndexed = true } else { sawUnindexed = true }
            if step % 97 == 0 {
                XCTAssertEqual(Set(channel.members), expected, "step \(step)")
                for probe in 0..<97 { XCTAssertEqual(channel.contains(id(UInt32(probe), 1)), expected.contains(id(UInt32(probe), 1))) }
            }
        }
        XCTAssertTrue(sawIndexed && sawUnindexed, "both regimes exercised")
    }

    func testLastMemberLeavingRemovesTheChannel() {
        var channels = LocalChannels()
        XCTAssertTrue(channels.addJoining(id(1), to: "c"))
        XCTAssertFalse(channels.addJoining(id(2), to: "c"))
        channels.channel("c")!.add(id(1))
        XCTAssertFalse(channels.remove(id(1), from: "c"), "one joiner is left")
        XCTAssertTrue(channels.remove(id(2), from: "c"))
        XCTAssertNil(channels.channel("c"))
    }
}
