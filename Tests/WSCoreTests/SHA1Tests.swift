import XCTest
@testable import WSCore

final class SHA1Tests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    func testFIPSVectors() {
        XCTAssertEqual(hex(SHA1.digest(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(hex(SHA1.digest([UInt8]())), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        XCTAssertEqual(hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
                       "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    func testNonContiguousCollections() {
        let expected = SHA1.digest(Array("abc".utf8))
        XCTAssertEqual(SHA1.digest("abc".utf8), expected)
        XCTAssertEqual(SHA1.digest(Array("xabcx".utf8)[1..<4]), expected)
        XCTAssertEqual(SHA1.digest([UInt8]("cba".utf8).reversed()), expected)
        XCTAssertEqual(SHA1.digest(Array("abc".utf8)).count, 20)
    }
}
