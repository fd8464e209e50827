import XCTest

@testable import PresenceOutbound

/// `TraceParent`: W3C trace context headers derived from request ids.
final class TraceParentTests: XCTestCase {
    func testDerivedFromHexRequestID() {
        let header = TraceParent.make(requestID: "0AF7651916CD43DD8448EB211C80319C")
        XCTAssertTrue(header.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-"))
        XCTAssertTrue(TraceParent.isValid(header), header)
        XCTAssertNotEqual(header, TraceParent.make(requestID: "0af7651916cd43dd8448eb211c80319c"), "span ids are fresh")
        XCTAssertEqual(TraceParent.traceID(from: "0af76519-16cd-43dd-8448-eb211c80319c"), "0af7651916cd43dd8448eb211c80319c")
    }

    func testRandomOtherwise() {
        for id in ["abc", "00000000000000000000000000000000", "0af7651916cd43dd8448eb211c80319g", "0af7651916cd43dd8448eb211c80319c0"] {
            XCTAssertNil(TraceParent.traceID(from: id), id)
            let header = TraceParent.make(requestID: id)
            XCTAssertTrue(TraceParent.isValid(header), header)
        }
        XCTAssertNotEqual(
            TraceParent.make(requestID: "x").dropFirst(3).prefix(32), TraceParent.make(requestID: "x").dropFirst(3).prefix(32))
    }

    func testValidation() {
        XCTAssertTrue(TraceParent.isValid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        XCTAssertFalse(TraceParent.isValid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"))
        XCTAssertFalse(TraceParent.isValid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"))
        XCTAssertFalse(TraceParent.isValid("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"))
        XCTAssertFalse(TraceParent.isValid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"))
        XCTAssertFalse(TraceParent.isValid(""))
    }
}
