import XCTest

@testable import WSCore

final class SHA1Tests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    func testFIPSVectors() {
        XCTAssertEqual(hex(SHA1.digest(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(hex(SHA1.digest([UInt8]())), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(
            hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        XCTAssertEqual(
            hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    func testNonContiguousCollections() {
        let expected = SHA1.digest(Array("abc".utf8))
        XCTAssertEqual(SHA1.digest("abc".utf8), expected)
        XCTAssertEqual(SHA1.digest(Array("xabcx".utf8)[1..<4]), expected)
        XCTAssertEqual(SHA1.digest([UInt8]("cba".utf8).reversed()), expected)
        XCTAssertEqual(SHA1.digest(Array("abc".utf8)).count, 20)
    }

    /// Every length around the one- and two-block padding boundaries, against a reference
    /// computed the slow way (Python's hashlib values for "a" × n).
    func testPaddingBoundaries() {
        let expected: [Int: String] = [
            55: "c1c8bbdc22796e28c0e15163d20899b65621d65a",
            56: "c2db330f6083854c99d4b5bfb6e8f29f201be699",
            63: "03f09f5b158a7a8cdad920bddc29b81c18a551f5",
            64: "0098ba824b5c16427bd7a1122a5a442a25ec644d",
            65: "11655326c708d70319be2610e8a57d9a5b959d3b",
            119: "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56",
            120: "f34c1488385346a55709ba056ddd08280dd4c6d6",
        ]
        for (n, hexDigest) in expected {
            let digest = SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: n))
            XCTAssertEqual(hex(digest), hexDigest, "length \(n)")
        }
    }
}
