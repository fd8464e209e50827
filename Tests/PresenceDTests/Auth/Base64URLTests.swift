import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// Unpadded, strict base64url.
final class Base64URLTests: XCTestCase {
    func testRFC4648Vectors() {
        let vectors: [(String, String)] = [
            ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64URL.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64URL.decode(encoded), Array(plain.utf8))
        }
    }

    func testURLAlphabet() {
        XCTAssertEqual(Base64URL.encode([0xFB, 0xFF, 0xBF]), "-_-_")
        XCTAssertEqual(Base64URL.decode("-_-_"), [0xFB, 0xFF, 0xBF])
    }

    func testRoundTripsEveryLengthAgainstFoundation() {
        var bytes: [UInt8] = []
        for length in 0..<200 {
            let encoded = Base64URL.encode(bytes)
            let foundation = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            XCTAssertEqual(encoded, foundation, "length \(length)")
            XCTAssertEqual(Base64URL.decode(encoded), bytes, "length \(length)")
            bytes.append(UInt8(truncatingIfNeeded: length &* 37 &+ 11))
        }
    }

    func testRefusesPaddingStandardAlphabetWhitespaceAndBadLengths() {
        for bad in [
            "Zg==", "Zm8=", "Zg=", "+/+/", "Zm9v+A", "Zm9v/A", "Zm 9v", "Zm9v\n", "Z", "Zm9vY", "Zm9v.",
            "Zm9\u{00E9}",
        ] {
            XCTAssertNil(Base64URL.decode(bad), bad)
        }
    }

    func testRefusesNonCanonicalTrailingBits() {
        XCTAssertEqual(Base64URL.decode("Zg"), [0x66])
        XCTAssertNil(Base64URL.decode("Zh"))  // same byte, a non-zero unused bit
        XCTAssertEqual(Base64URL.decode("Zm8"), [0x66, 0x6F])
        XCTAssertNil(Base64URL.decode("Zm9"))
    }
}
