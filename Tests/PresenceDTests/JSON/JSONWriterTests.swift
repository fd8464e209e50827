import XCTest

@testable import PresenceJSON
@testable import PresenceRealtime

/// String escaping: exact lengths, every byte value, no writes past the computed length.
final class JSONWriterTests: XCTestCase {
    private func written(_ s: String) -> (length: Int, bytes: [UInt8]) {
        var s = s
        return s.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            let length = JSONWriter.escapedLength(raw)
            // Guard bytes after the exact length catch overruns.
            var out = [UInt8](repeating: 0xAA, count: length + 16)
            let n = out.withUnsafeMutableBytes { JSONWriter.writeString(raw, into: $0.baseAddress!) }
            XCTAssertEqual(n, length)
            XCTAssertEqual(out[length...].allSatisfy { $0 == 0xAA }, true)
            return (length, Array(out[..<n]))
        }
    }

    func testEscapes() {
        XCTAssertEqual(JSONWriter.quoted(""), "\"\"")
        XCTAssertEqual(JSONWriter.quoted("abc"), "\"abc\"")
        XCTAssertEqual(JSONWriter.quoted("a\"b\\c"), "\"a\\\"b\\\\c\"")
        XCTAssertEqual(JSONWriter.quoted("\n\r\t\u{8}\u{C}"), "\"\\n\\r\\t\\b\\f\"")
        XCTAssertEqual(JSONWriter.quoted("\u{0}\u{1}\u{1F}\u{7F}"), "\"\\u0000\\u0001\\u001f\u{7F}\"")
        XCTAssertEqual(JSONWriter.quoted("/é😀\u{2028}"), "\"/é😀\u{2028}\"")
        XCTAssertEqual(JSONWriter.quoted("0123456789abcdef\"0123456789"), "\"0123456789abcdef\\\"0123456789\"")
    }

    func testExactLengthMatchesWrittenBytes() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "Z", "0", " ", "\"", "\\", "\n", "\t", "\u{0}", "\u{1B}", "é", "€", "😀", "/", "\u{7F}"]
        for _ in 0..<2_000 {
            let count = Int.random(in: 0...40, using: &generator)
            let s = String((0..<count).map { _ in alphabet.randomElement(using: &generator)! })
            let (length, bytes) = written(s)
            XCTAssertEqual(bytes.count, length)
            XCTAssertEqual(String(decoding: bytes, as: UTF8.self), JSONWriter.quoted(s))
            XCTAssertEqual(try JSONValue.parse(JSONWriter.quoted(s)), .string(s))
        }
    }

    func testEveryByteValue() {
        for b in 0..<0x80 {
            let s = String(Character(Unicode.Scalar(UInt8(b))))
            let expectedLength: Int
            switch b {
            case 0x22, 0x5C, 0x08, 0x09, 0x0A, 0x0C, 0x0D: expectedLength = 4
            case 0..<0x20: expectedLength = 8
            default: expectedLength = 3
            }
            // Place the byte inside a word-sized run and alone, to exercise both paths.
            XCTAssertEqual(written(s).length, expectedLength, "byte \(b)")
            XCTAssertEqual(written("abcdefgh" + s + "ijklmnop").length, expectedLength + 16, "byte \(b)")
            XCTAssertEqual(try JSONValue.parse(JSONWriter.quoted("abcdefgh" + s)), .string("abcdefgh" + s))
        }
    }

    func testCursorWritesLiteralsAndStrings() {
        var out = [UInt8](repeating: 0, count: 64)
        let n = out.withUnsafeMutableBytes { buffer -> Int in
            var cursor = JSONByteCursor(buffer.baseAddress!)
            cursor.raw("{\"k\":")
            JSONWriter.withUTF8("v\"") { cursor.string($0) }
            cursor.raw(",\"b\":")
            cursor.bool(false)
            cursor.raw("}")
            return cursor.count
        }
        XCTAssertEqual(String(decoding: out[..<n], as: UTF8.self), "{\"k\":\"v\\\"\",\"b\":false}")
    }

    func testMeasuringCursorCountsExactlyWhatIsWritten() {
        func document(_ cursor: inout JSONByteCursor) {
            cursor.raw("{\"k\":")
            JSONWriter.withUTF8("v\"\u{1}é") { cursor.string($0) }
            cursor.raw(",\"b\":")
            cursor.bool(true)
            cursor.raw("}")
        }
        var out = [UInt8](repeating: 0, count: 64)
        let n = out.withUnsafeMutableBytes { buffer -> Int in
            var cursor = JSONByteCursor(buffer.baseAddress!)
            document(&cursor)
            return cursor.count
        }
        XCTAssertEqual(String(decoding: out[..<n], as: UTF8.self), "{\"k\":\"v\\\"\\u0001é\",\"b\":true}")
        var measuring = JSONByteCursor.measuring()
        document(&measuring)
        XCTAssertEqual(measuring.count, n)
    }
}
