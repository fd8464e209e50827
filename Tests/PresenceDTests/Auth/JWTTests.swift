import Dispatch
import Synchronization
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// HS256 signing, the structural split and the constant-time signature check.
final class JWTTests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func testHMACSHA256MatchesRFC4231() {
        // Test case 2.
        XCTAssertEqual(
            hex(JWT.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Test case 6: a key longer than the block size.
        XCTAssertEqual(
            hex(
                JWT.hmacSHA256(
                    key: [UInt8](repeating: 0xAA, count: 131),
                    message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    func testHMACSHA256OfNothingAndFromManyThreads() {
        XCTAssertEqual(
            hex(JWT.hmacSHA256(key: [], message: [])),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
        // One prepared key shared by threads (as by the loops): each tag is right.
        let key = HMACSHA256Key([UInt8](repeating: UInt8(ascii: "k"), count: 64))
        let message = [UInt8](repeating: UInt8(ascii: "x"), count: 200)
        let expected = key.tag(message)
        XCTAssertEqual(hex(expected), "3c469482eb841790ea999241b8c6238f7a2df12b5bf79eb6d7ab592729ed9954")
        let wrong = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<500 where key.tag(message) != expected {
                wrong.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(wrong.load(ordering: .relaxed), 0)
    }

    /// RFC 7515 appendix A.1: the HS256 example, verified and re-signed byte for byte.
    func testRFC7515AppendixA1() throws {
        let key = try XCTUnwrap(
            Base64URL.decode(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"))
        let token =
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
            + ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
            + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        let parts = try XCTUnwrap(JWT.split(token))
        XCTAssertEqual(String(decoding: parts.header, as: UTF8.self), "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}")
        XCTAssertTrue(JWT.signatureMatches(parts.signature, signingInput: parts.signingInput, secret: key))
        XCTAssertEqual(
            JWT.sign(
                header: String(decoding: parts.header, as: UTF8.self),
                payload: String(decoding: parts.payload, as: UTF8.self), secret: key), token)
    }

    func testSignThenSplitRoundTrips() throws {
        let secret = Array("0123456789abcdef0123456789abcdef".utf8)
        let token = JWT.sign(header: JWT.standardHeader, payload: #"{"sub":"a"}"#, secret: secret)
        XCTAssertFalse(token.contains("="))
        let parts = try XCTUnwrap(JWT.split(token))
        XCTAssertEqual(parts.header, Array(JWT.standardHeader.utf8))
        XCTAssertEqual(parts.payload, Array(#"{"sub":"a"}"#.utf8))
        XCTAssertEqual(parts.signature.count, 32)
        XCTAssertEqual(parts.signingInput, Array(token.split(separator: ".").prefix(2).joined(separator: ".").utf8))
        XCTAssertTrue(JWT.signatureMatches(parts.signature, signingInput: parts.signingInput, secret: secret))
    }

    func testSignatureMismatches() throws {
        let secret = Array("0123456789abcdef0123456789abcdef".utf8)
        let parts = try XCTUnwrap(JWT.split(JWT.sign(header: JWT.standardHeader, payload: "{}", secret: secret)))
        XCTAssertFalse(
            JWT.signatureMatches(
                parts.signature, signingInput: parts.signingInput,
                secret: Array("0123456789abcdef0123456789abcdeF".utf8)))
        for index in [0, 15, 31] {
            var flipped = parts.signature
            flipped[index] ^= 0x01
            XCTAssertFalse(JWT.signatureMatches(flipped, signingInput: parts.signingInput, secret: secret))
        }
        XCTAssertFalse(JWT.signatureMatches(Array(parts.signature.dropLast()), signingInput: parts.signingInput, secret: secret))
        XCTAssertFalse(JWT.signatureMatches(parts.signature + [0], signingInput: parts.signingInput, secret: secret))
        XCTAssertFalse(JWT.signatureMatches([], signingInput: parts.signingInput, secret: secret))
        XCTAssertFalse(JWT.signatureMatches(parts.signature, signingInput: parts.signingInput + [0x20], secret: secret))
    }

    func testSplitRefusesBadStructure() {
        let h = Base64URL.encode(Array(JWT.standardHeader.utf8)), p = Base64URL.encode(Array("{}".utf8))
        XCTAssertNotNil(JWT.split("\(h).\(p).AAAA"))
        XCTAssertNotNil(JWT.split("\(h).\(p)."), "an empty signature is structurally fine (alg none)")
        for bad in [
            "", "abc", "\(h).\(p)", "\(h).\(p).AAAA.AAAA", ".\(p).AAAA", "\(h)..AAAA", "..", "\(h).\(p).AA==",
            "\(h)=.\(p).AAAA", "\(h).\(p).AA+A", "\(h).\(p).AA/A", " \(h).\(p).AAAA", "\(h).\(p).AAAA\n",
            "\(h).\(p).A",
        ] {
            XCTAssertNil(JWT.split(bad), bad)
        }
    }

    func testSplitRefusesTokensLongerThan4096Bytes() {
        let secret = Array("0123456789abcdef0123456789abcdef".utf8)
        func token(payloadBytes: Int) -> String {
            JWT.sign(header: JWT.standardHeader, payload: String(repeating: " ", count: payloadBytes) + "{}", secret: secret)
        }
        var size = 2900
        while token(payloadBytes: size).utf8.count < JWT.maxTokenBytes { size += 1 }
        let atLimit = token(payloadBytes: size - 1), over = token(payloadBytes: size + 2)
        XCTAssertLessThanOrEqual(atLimit.utf8.count, JWT.maxTokenBytes)
        XCTAssertGreaterThan(over.utf8.count, JWT.maxTokenBytes)
        XCTAssertNotNil(JWT.split(atLimit))
        XCTAssertNil(JWT.split(over))
    }
}
