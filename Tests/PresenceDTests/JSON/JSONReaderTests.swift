import XCTest

@testable import PresenceRealtime

/// The pull tokenizer: token sequences, token decoding, skipping, deep nesting, the SWAR byte scan.
final class JSONReaderTests: XCTestCase {
    /// All tokens of a document, or the error.
    private func tokens(_ text: String, maxDepth: Int = 32) -> Result<[JSONReader.Token], JSONError> {
        var text = text
        return text.withUTF8 { utf8 in
            var reader = JSONReader(UnsafeRawBufferPointer(utf8), maxDepth: maxDepth)
            var out: [JSONReader.Token] = []
            do throws(JSONError) {
                while true {
                    let token = try reader.next()
                    out.append(token)
                    if token == .end { return .success(out) }
                }
            } catch {
                return .failure(error)
            }
        }
    }

    func testTokenSequence() throws {
        XCTAssertEqual(
            try tokens(" {\"a\": [1, true, false, null], \"b\": \"x\"} ").get(),
            [.objectStart, .key, .arrayStart, .number, .true, .false, .null, .arrayEnd, .key, .string, .objectEnd, .end])
        var text = "{\"a\": 12.5}"
        try text.withUTF8 { utf8 in
            var reader = JSONReader(UnsafeRawBufferPointer(utf8))
            XCTAssertEqual(try reader.next(), .objectStart)
            XCTAssertEqual(try reader.next(), .key)
            XCTAssertEqual(reader.stringToken, JSONReader.StringToken(start: 2, end: 3, decodedCount: 1))
            XCTAssertEqual(try reader.next(), .number)
            XCTAssertEqual(reader.numberToken, JSONReader.NumberToken(start: 6, end: 10, isPlainInteger: false))
            XCTAssertEqual(try reader.double(reader.numberToken), 12.5)
        }
    }

    func testEndIsRepeatedAndTrailingDataRefused() throws {
        var text = "[] "
        try text.withUTF8 { utf8 in
            var reader = JSONReader(UnsafeRawBufferPointer(utf8))
            XCTAssertEqual(try reader.next(), .arrayStart)
            XCTAssertEqual(try reader.next(), .arrayEnd)
            XCTAssertEqual(try reader.next(), .end)
            XCTAssertEqual(try reader.next(), .end)
        }
        guard case .failure(let error) = tokens("[] []") else { return XCTFail("expected failure") }
        XCTAssertEqual(error.offset, 3)
    }

    func testTokenDecoding() throws {
        var text = "[\"plain\", \"t\\u0079pe\", \"\\ud83d\\ude00!\\n\", 12, -0.5e1, \"\", \"abcdefghijk\", \"abc\"]"
        try text.withUTF8 { utf8 in
            var reader = JSONReader(UnsafeRawBufferPointer(utf8))
            XCTAssertEqual(try reader.next(), .arrayStart)
            XCTAssertEqual(try reader.next(), .string)
            let plain = reader.stringToken
            XCTAssertFalse(plain.hasEscapes)
            XCTAssertEqual(reader.string(plain), "plain")
            XCTAssertTrue(reader.equals(plain, "plain"))
            XCTAssertFalse(reader.equals(plain, "plaid"))
            XCTAssertFalse(reader.equals(plain, "qlain"))
            XCTAssertFalse(reader.equals(plain, "plai"))
            XCTAssertEqual(try reader.next(), .string)
            let type = reader.stringToken
            XCTAssertTrue(type.hasEscapes)
            XCTAssertEqual(type.decodedCount, 4)
            XCTAssertTrue(reader.equals(type, "type"))
            XCTAssertFalse(reader.equals(type, "typo"))
            XCTAssertEqual(reader.string(type), "type")
            XCTAssertEqual(try reader.next(), .string)
            let emoji = reader.stringToken
            XCTAssertEqual(emoji.decodedCount, 6)
            XCTAssertEqual(reader.string(emoji), "😀!\n")
            XCTAssertEqual(try reader.next(), .number)
            XCTAssertEqual(try reader.double(reader.numberToken), 12)
            XCTAssertEqual(try reader.next(), .number)
            XCTAssertFalse(reader.numberToken.isPlainInteger)
            XCTAssertEqual(try reader.double(reader.numberToken), -5)
            XCTAssertEqual(try reader.next(), .string)
            XCTAssertEqual(reader.string(reader.stringToken), "")
            XCTAssertTrue(reader.equals(reader.stringToken, ""))
            XCTAssertEqual(try reader.next(), .string)
            XCTAssertTrue(reader.equals(reader.stringToken, "abcdefghijk"))
            XCTAssertFalse(reader.equals(reader.stringToken, "abcdefghijj"))
            XCTAssertEqual(try reader.next(), .string)
            XCTAssertTrue(reader.equals(reader.stringToken, "abc"))
            XCTAssertFalse(reader.equals(reader.stringToken, "abd"))
            XCTAssertEqual(try reader.next(), .arrayEnd)
            XCTAssertEqual(try reader.next(), .end)
        }
    }

    func testEqualsComparesEveryByteForFourToEightBytes() throws {
        for length in 4...8 {
            let word = String("abcdefgh".prefix(length))
            var text = "\"" + word + "\""
            try text.withUTF8 { utf8 in
                var reader = JSONReader(UnsafeRawBufferPointer(utf8))
                XCTAssertEqual(try reader.next(), .string)
                let token = reader.stringToken
                // Literals must be StaticStrings: check a table of near misses by position.
                let table: [StaticString] = [
                    "abcd", "xbcd", "abcx", "abcde", "xbcde", "abxde", "abcdx", "abcdef", "abcxef", "abcdex",
                    "abcdefg", "abcxefg", "abcdefx", "abcdefgh", "abcdexgh", "abcdefgx", "xbcdefgh",
                ]
                for literal in table {
                    let expected = literal.description == word
                    XCTAssertEqual(reader.equals(token, literal), expected, "\(word) vs \(literal)")
                }
            }
        }
    }

    func testDecodedCountOfEveryEscapeWidth() throws {
        // \u007f → 1 byte, \u0080 → 2, \u0800 → 3, \uffff → 3, pair → 4, \n → 1
        var text = "\"\\u007f\\u0080\\u0800\\uffff\\ud800\\udc00\\n\""
        text.withUTF8 { utf8 in
            var reader = JSONReader(UnsafeRawBufferPointer(utf8))
            guard (try? reader.next()) == .string else { return XCTFail() }
            let token = reader.stringToken
            XCTAssertEqual(token.decodedCount, 1 + 2 + 3 + 3 + 4 + 1)
            let s = reader.string(token)
            XCTAssertEqual(s, "\u{7F}\u{80}\u{800}\u{FFFF}\u{10000}\n")
            XCTAssertEqual(s.utf8.count, token.decodedCount)
        }
    }

    func testSkipValue() throws {
        var text = "{\"skip\": [1, {\"x\": [[], {}]}, \"]\"], \"keep\": 7}"
        try text.withUTF8 { utf8 in
            var reader = JSONReader(UnsafeRawBufferPointer(utf8), maxDepth: 8)
            XCTAssertEqual(try reader.next(), .objectStart)
            XCTAssertEqual(try reader.next(), .key)
            let start = try reader.next()
            XCTAssertEqual(start, .arrayStart)
            try reader.skipValue(startedBy: start)
            XCTAssertEqual(reader.depth, 1)
            XCTAssertEqual(try reader.next(), .key)
            XCTAssertTrue(reader.equals(reader.stringToken, "keep"))
            let seven = try reader.next()
            try reader.skipValue(startedBy: seven)  // scalars: nothing to skip
            XCTAssertEqual(try reader.next(), .objectEnd)
            XCTAssertEqual(try reader.next(), .end)
        }
    }

    func testDepthBeyondSixtyFourLevels() throws {
        let text = String(repeating: "[{\"a\":", count: 300) + "1" + String(repeating: "}]", count: 300)
        let result = try tokens(text, maxDepth: 600).get()
        XCTAssertEqual(result.count, 300 * 5 + 2)
        XCTAssertEqual(Array(result.suffix(4)), [.arrayEnd, .objectEnd, .arrayEnd, .end])
        guard case .failure(let error) = tokens(text, maxDepth: 599) else { return XCTFail("expected failure") }
        XCTAssertEqual(error.offset, 299 * 6 + 1)
        // Mismatched closers deep down are still caught.
        let mismatched = String(repeating: "[", count: 100) + "{" + String(repeating: "]", count: 101)
        XCTAssertThrowsError(try tokens(mismatched, maxDepth: 200).get())
    }

    func testSpecialByteMaskFindsTheFirstSpecialByte() {
        func word(_ bytes: [UInt8]) -> UInt64 {
            UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        }
        for position in 0..<8 {
            for special: UInt8 in [0x00, 0x1F, 0x22, 0x5C, 0x80, 0xFF] {
                for later: UInt8 in [0x61, 0x00, 0x22, 0x5C, 0xC3, 0x21, 0x23, 0x5B, 0x5D] {
                    var bytes = Array("abcdefgh".utf8)
                    bytes[position] = special
                    if position < 7 { bytes[7] = later }
                    XCTAssertEqual(
                        JSONReader.specialBytes(word(bytes)).trailingZeroBitCount / 8, position,
                        "byte \(special) at \(position), later \(later)")
                }
            }
        }
    }

    func testSpecialByteDetection() {
        func word(_ bytes: [UInt8]) -> UInt64 {
            bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        }
        XCTAssertFalse(JSONReader.hasSpecialByte(word(Array("abcdefgh".utf8))))
        XCTAssertFalse(JSONReader.hasSpecialByte(word(Array(" !#[]~}\u{7F}".utf8))))
        for position in 0..<8 {
            for special: UInt8 in [0x00, 0x1F, 0x22, 0x5C, 0x80, 0xFF] {
                var bytes = Array("abcdefgh".utf8)
                bytes[position] = special
                XCTAssertTrue(JSONReader.hasSpecialByte(word(bytes)), "byte \(special) at \(position)")
            }
        }
    }
}
