import Foundation
import TestSupport
import XCTest

@testable import WSCore

final class Base64Tests: XCTestCase {
    // RFC 4648 §10.
    private let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    func testRFC4648Vectors() {
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.encode(plain.utf8), encoded, "any collection")
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8))
        }
    }

    func testFullAlphabet() {
        let bytes: [UInt8] = [
            0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8B, 0x30, 0xD3, 0x8F,
            0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9B, 0x71, 0xD7, 0x9F,
            0x82, 0x18, 0xA3, 0x92, 0x59, 0xA7, 0xA2, 0x9A, 0xAB, 0xB2, 0xDB, 0xAF,
            0xC3, 0x1C, 0xB3, 0xD3, 0x5D, 0xB7, 0xE3, 0x9E, 0xBB, 0xF3, 0xDF, 0xBF,
        ]
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        XCTAssertEqual(Base64.encode(bytes), alphabet)
        XCTAssertEqual(Base64.decode(alphabet), bytes)
    }

    func testMatchesFoundationOnRandomInput() {
        var rng = SplitMix(seed: 42)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let encoded = Base64.encode(bytes)
            XCTAssertEqual(encoded, Data(bytes).base64EncodedString())
            XCTAssertEqual(Base64.decode(encoded), bytes)
        }
    }

    func testStrictDecoding() {
        let invalid = [
            "Zg", "Zg=", "Zm9", "Z", "Zm9vY",  // not a multiple of 4
            "Zg===", "Z===", "====", "=Zg=",  // bad padding
            "Zg==Zg==", "Zm8=Zm9v",  // padding before the end
            "Zh==", "Zm9=",  // non-zero unused bits
            "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v\r\n",  // whitespace
            "Zm-_", "Zm9*", "Zm9\u{e9}",  // outside the alphabet
            "Z=9v", "Zm=v",  // '=' inside a quantum
        ]
        for text in invalid {
            XCTAssertNil(Base64.decode(text), text.debugDescription)
        }
        XCTAssertEqual(Base64.decode(""), [])
    }

    func testURLAlphabetAndPaddingChoices() {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF, 0x66]
        XCTAssertEqual(Base64.encode(bytes), "+/+/Zg==")
        XCTAssertEqual(Base64.encode(bytes, alphabet: .url), "-_-_Zg==")
        XCTAssertEqual(Base64.encode(bytes, alphabet: .url, padding: false), "-_-_Zg")
        XCTAssertEqual(Base64.encode(bytes, padding: false), "+/+/Zg")
        XCTAssertEqual(Base64.decode("-_-_Zg==", alphabet: .url), bytes)
        XCTAssertEqual(Base64.decode("-_-_Zg", alphabet: .url, padding: false), bytes)
        XCTAssertEqual(Base64.decode("+/+/Zg", padding: false), bytes)
        for (text, alphabet, padding) in [
            ("+/+/Zg==", Base64.Alphabet.url, true), ("-_-_Zg==", .standard, true),
            ("-_-_Zg==", .url, false), ("-_-_Zg", .url, true), ("-_-_Z", .url, false),
            ("-_-_Zh", .url, false), ("-_-_Zm9", .url, false), ("-_-_Zg\n", .url, false),
        ] {
            XCTAssertNil(Base64.decode(text, alphabet: alphabet, padding: padding), "\(text) \(alphabet) \(padding)")
        }
        XCTAssertEqual(Base64.decode("", alphabet: .url, padding: false), [])
    }
}
