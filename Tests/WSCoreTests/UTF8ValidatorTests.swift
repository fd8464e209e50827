import TestSupport
import WSCore
import XCTest

final class UTF8ValidatorTests: XCTestCase {
    private func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { UTF8Validator.isValid($0) }
    }

    /// Feeds one byte at a time; returns the index of the byte that made the prefix invalid, or nil.
    private func failingIndex(_ bytes: [UInt8]) -> Int? {
        var validator = UTF8Validator()
        for (index, byte) in bytes.enumerated() {
            if ![byte].withUnsafeBytes({ validator.feed($0) }) { return index }
        }
        return nil
    }

    private func feed(_ validator: inout UTF8Validator, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { validator.feed($0) }
    }

    func testValidText() {
        let samples: [[UInt8]] = [
            [],
            Array("Hello-µ@ßöäüàá-UTF-8!!".utf8),
            [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5],  // κόσμε
            [0x00], [0x7F],  // U+0000, U+007F
            [0xC2, 0x80], [0xDF, 0xBF],  // U+0080, U+07FF
            [0xE0, 0xA0, 0x80], [0xEF, 0xBF, 0xBF],  // U+0800, U+FFFF
            [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],  // U+D7FF, U+E000
            [0xEF, 0xBF, 0xBD],  // U+FFFD
            [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],  // U+10000, U+10FFFF
            [0xF1, 0x80, 0x80, 0x80], [0xF3, 0xBF, 0xBF, 0xBF],
            Array(String(repeating: "plain ascii ", count: 50).utf8),
            Array("日本語のテキスト 👋🏽 emoji, Ελληνικά, עברית".utf8),
        ]
        for sample in samples {
            XCTAssertTrue(isValid(sample), "\(sample)")
            XCTAssertNil(failingIndex(sample))
        }
    }

    /// Each invalid class of Unicode Table 3-7, with the index of the byte that must be rejected.
    func testInvalidClassesFailOnTheOffendingByte() {
        let cases: [(String, [UInt8], Int)] = [
            ("lone continuation 80", [0x61, 0x80], 1),
            ("lone continuation BF", [0xBF], 0),
            ("overlong 2-byte C0", [0xC0, 0x80], 0),
            ("overlong 2-byte C1", [0xC1, 0xBF], 0),
            ("overlong 3-byte E0 80", [0xE0, 0x80, 0x80], 1),
            ("overlong 3-byte E0 9F", [0xE0, 0x9F, 0xBF], 1),
            ("overlong 4-byte F0 80", [0xF0, 0x80, 0x80, 0x80], 1),
            ("overlong 4-byte F0 8F", [0xF0, 0x8F, 0xBF, 0xBF], 1),
            ("surrogate ED A0", [0xED, 0xA0, 0x80], 1),
            ("surrogate ED BF", [0xED, 0xBF, 0xBF], 1),
            ("surrogate pair", [0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80], 1),
            ("above U+10FFFF F4 90", [0xF4, 0x90, 0x80, 0x80], 1),
            ("above U+10FFFF F5", [0xF5, 0x80, 0x80, 0x80], 0),
            ("F8", [0xF8], 0),
            ("FE", [0xFE], 0),
            ("FF", [0xFF], 0),
            ("lead then ASCII", [0xC2, 0x41], 1),
            ("3-byte cut by ASCII", [0xE2, 0x82, 0x41], 2),
            ("4-byte cut by lead", [0xF0, 0x9F, 0x91, 0xF0], 3),
            ("too many continuations", [0xC3, 0xA9, 0xA9], 2),
            (
                "Autobahn 6.3.1",
                [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64], 12
            ),
            ("after ASCII words", Array(repeating: 0x61, count: 37) + [0xFF] + Array(repeating: 0x61, count: 20), 37),
        ]
        for (name, bytes, index) in cases {
            XCTAssertFalse(isValid(bytes), name)
            XCTAssertEqual(failingIndex(bytes), index, name)
            // Whole-buffer feed agrees, and so does every two-way split.
            for split in 0...bytes.count {
                var validator = UTF8Validator()
                let first = feed(&validator, Array(bytes[..<split]))
                XCTAssertEqual(first, split <= index, "\(name) split \(split)")
                XCTAssertFalse(feed(&validator, Array(bytes[split...])), "\(name) split \(split)")
            }
        }
    }

    func testIncompleteSequences() {
        for bytes: [UInt8] in [[0xC2], [0xE0, 0xA0], [0xE2, 0x82], [0xF0, 0x9F], [0xF0, 0x9F, 0x91], [0x61, 0xF4, 0x8F, 0xBF]] {
            var validator = UTF8Validator()
            XCTAssertTrue(feed(&validator, bytes), "a prefix of valid UTF-8: \(bytes)")
            XCTAssertFalse(validator.isComplete, "\(bytes)")
            XCTAssertFalse(isValid(bytes))
        }
    }

    func testCodePointsSplitAcrossChunks() {
        let text = Array("a€b😀c".utf8)
        for split in 0...text.count {
            var validator = UTF8Validator()
            XCTAssertTrue(feed(&validator, Array(text[..<split])))
            XCTAssertTrue(feed(&validator, Array(text[split...])))
            XCTAssertTrue(validator.isComplete)
        }
        var validator = UTF8Validator()
        for byte in text { XCTAssertTrue(feed(&validator, [byte])) }
        XCTAssertTrue(validator.isComplete)
    }

    func testFailureIsStickyAndResetClearsIt() {
        var validator = UTF8Validator()
        XCTAssertFalse(feed(&validator, [0xFF]))
        XCTAssertFalse(feed(&validator, [0x61]))
        XCTAssertFalse(feed(&validator, []))
        XCTAssertFalse(validator.isComplete)
        validator.reset()
        XCTAssertTrue(validator.isComplete)
        XCTAssertTrue(feed(&validator, [0x61]))
        XCTAssertTrue(validator.isComplete)
    }

    func testInvalidByteAtEveryPositionOfLongASCII() {
        for length in [1, 7, 8, 9, 16, 31, 64, 100] {
            for position in 0..<length {
                var bytes = [UInt8](repeating: 0x7A, count: length)
                bytes[position] = 0x80
                XCTAssertEqual(failingIndex(bytes), position)
                XCTAssertFalse(isValid(bytes), "\(length) \(position)")
            }
        }
    }

    /// Random mixes of valid sequences, mutated at random, against the standard library's validator, fed
    /// whole and in random chunks.
    func testAgreesWithStandardLibraryOnRandomInput() {
        var rng = SplitMix(seed: 2024)
        let scalars: [UInt32] = [0x41, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
        for _ in 0..<3000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                let scalar = Unicode.Scalar(scalars.randomElement(using: &rng)!)!
                bytes += Array(String(Character(scalar)).utf8)
            }
            for _ in 0..<Int.random(in: 0...2, using: &rng) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: index)
                default: bytes.insert(UInt8.random(in: 0x80...0xFF, using: &rng), at: index)
                }
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            XCTAssertEqual(isValid(bytes), expected, "\(bytes)")
            var validator = UTF8Validator()
            var start = 0
            var ok = true
            while start < bytes.count {
                let size = Int.random(in: 1...5, using: &rng)
                let end = min(bytes.count, start + size)
                ok = feed(&validator, Array(bytes[start..<end])) && ok
                start = end
            }
            XCTAssertEqual(ok && validator.isComplete, expected, "\(bytes) chunked")
        }
    }

    func testAllTwoByteSequencesAgreeWithStandardLibrary() {
        for first in 0...255 {
            for second in 0...255 {
                let bytes = [UInt8(first), UInt8(second)]
                XCTAssertEqual(isValid(bytes), String(validating: bytes, as: UTF8.self) != nil, "\(bytes)")
            }
        }
    }
}
