import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// What every connection carries in the loop's and the server's tables (issue 19: idle memory per
/// connection). A field added there costs 19,000 × its size at the fd limit: these bounds make
/// that a decision.
final class LoopTableLayoutTests: XCTestCase {
    func testLoopSlotIs40Bytes() {
        XCTAssertLessThanOrEqual(MemoryLayout<EventLoop.Slot>.stride, 40)
    }

    func testConnectionStateIs56Bytes() {
        XCTAssertLessThanOrEqual(MemoryLayout<FrameDecoder>.size, 49)
        XCTAssertLessThanOrEqual(MemoryLayout<ConnectionState>.stride, 48)
    }

    /// The packed flags read back what was written, each on its own.
    func testSlotFlagsAreIndependent() {
        var slot = EventLoop.Slot()
        slot.receiveArmed = true
        slot.writeBlocked = true
        slot.countedPeer = true
        XCTAssertTrue(slot.receiveArmed && slot.writeBlocked && slot.countedPeer)
        XCTAssertFalse(slot.sendInFlight || slot.queued || slot.outbound)
        slot.writeBlocked = false
        slot.outbound = true
        XCTAssertTrue(slot.receiveArmed && slot.outbound && slot.countedPeer)
        XCTAssertFalse(slot.writeBlocked || slot.sendInFlight || slot.queued)
    }
}
