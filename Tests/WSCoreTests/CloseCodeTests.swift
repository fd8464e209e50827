import WSCore
import XCTest

final class CloseCodeTests: XCTestCase {
    func testNamedCodes() {
        let expected: [(CloseCode, UInt16)] = [
            (.normal, 1000), (.goingAway, 1001), (.protocolError, 1002), (.unsupportedData, 1003),
            (.noStatusReceived, 1005), (.abnormalClosure, 1006), (.invalidPayload, 1007), (.policyViolation, 1008),
            (.messageTooBig, 1009), (.mandatoryExtension, 1010), (.internalError, 1011), (.slowConsumer, 4008),
        ]
        for (code, raw) in expected {
            XCTAssertEqual(code.rawValue, raw)
            XCTAssertEqual(CloseCode(rawValue: raw), code)
        }
        XCTAssertEqual(Set(expected.map(\.0)).count, expected.count)
    }

    func testValidOnWireBoundaries() {
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4008, 4999] {
            XCTAssertTrue(CloseCode.isValidOnWire(code), "\(code)")
        }
        for code: UInt16 in [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            XCTAssertFalse(CloseCode.isValidOnWire(code), "\(code)")
        }
    }

    func testValidOnWireExhaustively() {
        for code in UInt16.min...UInt16.max {
            let expected = (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
            XCTAssertEqual(CloseCode.isValidOnWire(code), expected, "\(code)")
        }
    }

    func testNamedCodesThatMayBeSent() {
        XCTAssertFalse(CloseCode.isValidOnWire(CloseCode.noStatusReceived.rawValue))
        XCTAssertFalse(CloseCode.isValidOnWire(CloseCode.abnormalClosure.rawValue))
        for code: CloseCode in [
            .normal, .goingAway, .protocolError, .unsupportedData, .invalidPayload, .policyViolation,
            .messageTooBig, .mandatoryExtension, .internalError, .slowConsumer,
        ] {
            XCTAssertTrue(CloseCode.isValidOnWire(code.rawValue), "\(code.rawValue)")
        }
    }
}
