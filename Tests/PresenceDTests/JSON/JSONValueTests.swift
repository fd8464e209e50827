import XCTest

@testable import PresenceJSON
@testable import PresenceRealtime

/// JSONValue.parse against RFC 8259 / JSONTestSuite-style accepted and refused documents, depth, numbers, round trips.
final class JSONValueTests: XCTestCase {
    // MARK: Accepted documents (JSONTestSuite y_ style)

    func testAcceptsValidDocuments() throws {
        let cases: [(String, JSONValue)] = [
            ("[]", .array([])),
            ("{}", .object([:])),
            ("[[]   ]", .array([.array([])])),
            ("[\"\"]", .array([.string("")])),
            ("[null, 1, \"1\", {}]", .array([.null, .number(1), .string("1"), .object([:])])),
            ("[1\n]", .array([.number(1)])),
            (" [1]", .array([.number(1)])),
            ("[2] ", .array([.number(2)])),
            ("\t\r\n [ 4 ] \n\r\t", .array([.number(4)])),
            ("[1,null,null,null,2]", .array([.number(1), .null, .null, .null, .number(2)])),
            ("[123e65]", .array([.number(123e65)])),
            ("[0e+1]", .array([.number(0)])),
            ("[0e1]", .array([.number(0)])),
            ("[20e1]", .array([.number(200)])),
            ("[-0]", .array([.number(-0.0)])),
            ("[-123]", .array([.number(-123)])),
            ("[1E22]", .array([.number(1e22)])),
            ("[1E-2]", .array([.number(0.01)])),
            ("[1E+2]", .array([.number(100)])),
            ("[123.456e78]", .array([.number(123.456e78)])),
            ("[123.456789]", .array([.number(123.456789)])),
            (
                "[-0.000000000000000000000000000000000000000000000000000000000000000000000000000001]",
                .array([.number(-1e-78)])
            ),
            ("[1e-999]", .array([.number(0)])),
            ("[12345678901234567890]", .array([.number(Double("12345678901234567890")!)])),
            ("[-9007199254740993]", .array([.number(-9007199254740992)])),
            ("{\"asd\":\"sdf\", \"dfg\":\"fgh\"}", .object(["asd": .string("sdf"), "dfg": .string("fgh")])),
            ("{\"a\":[]}", .object(["a": .array([])])),
            ("{\"\":0}", .object(["": .number(0)])),
            ("{\"foo\\u0000bar\": 42}", .object(["foo\u{0}bar": .number(42)])),
            ("{ \"min\": -1.0e+28, \"max\": 1.0e+28 }", .object(["min": .number(-1e28), "max": .number(1e28)])),
            ("[\"\\u0060\\u012a\\u12AB\"]", .array([.string("\u{60}\u{12A}\u{12AB}")])),
            ("[\"\\uD801\\udc37\"]", .array([.string("\u{10437}")])),
            ("[\"\\ud83d\\ude39\\ud83d\\udc8d\"]", .array([.string("😹💍")])),
            ("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", .array([.string("\"\\/\u{8}\u{C}\n\r\t")])),
            ("[\"\\\\u0000\"]", .array([.string("\\u0000")])),
            ("[\"a/*b*/c/*d//e\"]", .array([.string("a/*b*/c/*d//e")])),
            ("[\"\\uFFFF\"]", .array([.string("\u{FFFF}")])),
            ("[\"\\uDBFF\\uDFFF\"]", .array([.string("\u{10FFFF}")])),
            ("[\"\\u0000\"]", .array([.string("\u{0}")])),
            ("[\"π\"]", .array([.string("π")])),
            ("[\"𛿿\"]", .array([.string("𛿿")])),
            ("[\"\\u0821\"]", .array([.string("\u{821}")])),
            ("[\"\\u0061\\u30af\\u30EA\\u30b9\"]", .array([.string("aクリス")])),
            ("[\"\\u2028\\u2029\"]", .array([.string("\u{2028}\u{2029}")])),
            ("[\"\\u00e9\\u20AC\"]", .array([.string("é€")])),
            ("[\"\u{7F}\"]", .array([.string("\u{7F}")])),
            ("\"asd\"", .string("asd")),
            ("\" \"", .string(" ")),
            ("false", .bool(false)),
            ("true", .bool(true)),
            ("null", .null),
            ("42", .number(42)),
            ("-0.1", .number(-0.1)),
            ("0", .number(0)),
            ("[true, false]", .array([.bool(true), .bool(false)])),
            (
                "{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}",
                .object(["a": .object(["b": .object(["c": .array([.number(1), .object(["d": .null])])])])])
            ),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try JSONValue.parse(text), expected, "document: \(text)")
        }
    }

    // MARK: Refused documents (JSONTestSuite n_ style)

    func testRejectsInvalidDocuments() {
        let cases: [String] = [
            "", " ", "\n", "[", "]", "{", "}", "[1 true]", "[\"\": 1]", "[\"\"],", "[,1]", "[1,,2]", "[\"x\",,]",
            "[\"x\"]]", "[\"\",]", "[\"x\"", "[x", "[3[4]]", "[1:2]", "[,]", "[-]", "[   , \"\"]",
            "[\"a\",\n4\n,1,", "[1,]", "[1,,]", "[*]", "[\"\"", "[1,", "[{}", "[fals]", "[nul]", "[tru]",
            "[++1234]", "[+1]", "[+Inf]", "[-01]", "[-1.0.]", "[-2.]", "[-NaN]", "[.-1]", "[.2e-3]", "[0.1.2]",
            "[0.3e+]", "[0.3e]", "[0.e1]", "[0E+]", "[0E]", "[0e+]", "[0e]", "[1.0e+]", "[1.0e-]", "[1.0e]",
            "[1 000.0]", "[1eE2]", "[2.e+3]", "[2.e-3]", "[2.e3]", "[9.e+]", "[Inf]", "[NaN]", "[\u{FF11}]",
            "[-foo]", "[- 1]", "[-012]", "[-.123]", "[-1x]", "[1ea]", "[1.]", "[.123]", "[1.2a-3]", "[012]",
            "[00]", "01", "[0x1]", "[0x42]", "[Infinity]", "[-Infinity]", "[1e999999]", "[-1e400]",
            "{\"a\" b}", "{key: 'value'}", "{\"a\":\"a\" 123}", "{\"a\" \"b\"}", "{:\"b\"}", "{1:1}",
            "{null:null,null:null}", "{\"id\":0,,,,,}", "{'a':0}", "{\"id\":0,}", "{\"a\":\"b\"}/**/",
            "{\"a\":\"b\"}//", "{\"a\":\"b\"}#", "{\"a\":/*comment*/\"b\"}", "{\"a\":\"a\"", "{\"a\"", "{\"a\":",
            "{\"a\" 1}", "{\"a\":1,}", "{\"a\":\"b\",,\"c\":\"d\"}", "{\"a\":\"b\"}}", "{,}", "{\"a\":1 \"b\":2}",
            "[\"\u{0}\"]", "[\"\t\"]", "[\"\n\"]", "[\"\u{1F}\"]", "\"\\uD800\"", "\"\\uDC00\"", "\"\\uD800\\u0041\"",
            "\"\\uD800\\uD800\"", "\"\\uD800x\"", "\"\\uDBFF\"", "[\"\\u00A\"]", "[\"\\u\"]", "[\"\\x\"]",
            "[\"\\a\"]", "[\"\\\"]", "[\"\\'\"]", "[\"\\uqqqq\"]", "[\"\\U0041\"]", "\"", "''", "\"abc",
            "<.>", "[<null>]", "[1]x", "[]]", "[][]", "2@", "{}}", "a", "{\"a\":true} \"x\"", "nul", "tru",
            "True", "NULL", "[\u{A0}]", "[\u{C}]", "\u{FEFF}{}", "[1]\u{0}", "123\u{0}", "[\"a\"\u{0}]",
            "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":1}}", "{\"a\":1,\"\\u0061\":2}", "/* */[]", "[] /",
        ]
        for text in cases {
            XCTAssertThrowsError(try JSONValue.parse(text), "document: \(text.debugDescription)")
        }
    }

    func testRejectsInvalidUTF8() {
        let cases: [[UInt8]] = [
            [0x5B, 0x22, 0xFF, 0x22, 0x5D],  // ["\xFF"]
            [0x22, 0xC0, 0xAF, 0x22],  // overlong '/'
            [0x22, 0xE0, 0x80, 0xAF, 0x22],  // overlong 3-byte
            [0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22],  // overlong 4-byte
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // encoded surrogate U+D800
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
            [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22],
            [0x22, 0xE6, 0x97, 0x22],  // truncated sequence
            [0x22, 0x81, 0x22],  // stray continuation byte
            [0x22, 0xC3, 0x22],  // missing continuation at the quote
            [0x22, 0xC3],  // truncated at end of input
            [0x5B, 0x61, 0xE5, 0x5D],  // [a\xE5]
            [0x5B, 0xFF, 0x5D],  // [\xFF]
            [0xEF, 0xBB, 0xBF, 0x7B, 0x7D],  // UTF-8 BOM then {}
            [0x22, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0xFE, 0x22],  // after a fast-path word
        ]
        for bytes in cases {
            XCTAssertThrowsError(try JSONValue.parse(bytes: bytes), "bytes: \(bytes)")
        }
        // Valid multi-byte sequences at every boundary of the table.
        let valid: [[UInt8]] = [
            [0x22, 0xC2, 0x80, 0x22], [0x22, 0xDF, 0xBF, 0x22], [0x22, 0xE0, 0xA0, 0x80, 0x22],
            [0x22, 0xED, 0x9F, 0xBF, 0x22], [0x22, 0xEE, 0x80, 0x80, 0x22], [0x22, 0xF0, 0x90, 0x80, 0x80, 0x22],
            [0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22],
        ]
        for bytes in valid {
            let expected = String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)
            XCTAssertEqual(try JSONValue.parse(bytes: bytes), .string(expected), "bytes: \(bytes)")
        }
    }

    func testErrorsCarryTheOffset() {
        XCTAssertThrowsError(try JSONValue.parse("[1,]")) { error in
            XCTAssertEqual((error as? JSONError)?.offset, 3)
        }
        XCTAssertThrowsError(try JSONValue.parse("{\"a\":1,\"a\":2}")) { error in
            XCTAssertEqual(error as? JSONError, JSONError(message: "duplicate key", offset: 7))
        }
        XCTAssertThrowsError(try JSONValue.parse("[\"ab\u{1}\"]")) { error in
            XCTAssertEqual((error as? JSONError)?.offset, 4)
        }
        XCTAssertThrowsError(try JSONValue.parse("[1] x")) { error in
            XCTAssertEqual((error as? JSONError)?.offset, 4)
        }
    }

    // MARK: Depth

    func testDepthLimit() throws {
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        XCTAssertNoThrow(try JSONValue.parse(ok))
        let tooDeep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        XCTAssertThrowsError(try JSONValue.parse(tooDeep))
        let objects = String(repeating: "{\"a\":", count: 33) + "1" + String(repeating: "}", count: 33)
        XCTAssertThrowsError(try JSONValue.parse(objects))
        XCTAssertNoThrow(try JSONValue.parse(objects, maxDepth: 33))
        XCTAssertThrowsError(try JSONValue.parse("[]", maxDepth: 0))
        XCTAssertEqual(try JSONValue.parse("1", maxDepth: 0), .number(1))
    }

    func testTenThousandOpenBracketsFailFast() {
        let text = String(repeating: "[", count: 10_000)
        XCTAssertThrowsError(try JSONValue.parse(text)) { error in
            XCTAssertEqual((error as? JSONError)?.offset, 32)
        }
        // Even with no practical limit, the parser is iterative: no stack overflow.
        XCTAssertThrowsError(try JSONValue.parse(text, maxDepth: .max))
        let deep = String(repeating: "[{\"k\":", count: 50_000) + "0" + String(repeating: "}]", count: 50_000)
        var value = try? JSONValue.parse(deep, maxDepth: .max)
        XCTAssertNotNil(value)
        // Tear the deep value down iteratively so the test's own deinit does not recurse 100k deep.
        var peeled = 0
        while let current = value {
            switch current {
            case .array(let elements): value = elements.first
            case .object(let members): value = members["k"]
            default: value = nil
            }
            peeled += 1
        }
        XCTAssertEqual(peeled, 100_001)
    }

    // MARK: Numbers and accessors

    func testHugeNumbersAreBounded() {
        XCTAssertThrowsError(try JSONValue.parse("1e999999"))
        XCTAssertThrowsError(try JSONValue.parse("-1e309"))
        XCTAssertEqual(try JSONValue.parse("1e-999999"), .number(0))
        let longDigits = "1" + String(repeating: "0", count: 5_000)
        XCTAssertThrowsError(try JSONValue.parse(longDigits))
        XCTAssertEqual(
            try JSONValue.parse("0." + String(repeating: "1", count: 5_000)).doubleValue ?? 0, 0.1111111111111111, accuracy: 1e-15)
        XCTAssertEqual(try JSONValue.parse("1.7976931348623157e308"), .number(.greatestFiniteMagnitude))
    }

    func testIntegerValue() throws {
        XCTAssertEqual(try JSONValue.parse("42").integerValue, 42)
        XCTAssertEqual(try JSONValue.parse("-42").integerValue, -42)
        XCTAssertEqual(try JSONValue.parse("1e2").integerValue, 100)
        XCTAssertEqual(try JSONValue.parse("1.0").integerValue, 1)
        XCTAssertEqual(try JSONValue.parse("1.5e1").integerValue, 15)
        XCTAssertEqual(try JSONValue.parse("9007199254740992").integerValue, 9_007_199_254_740_992)
        XCTAssertEqual(try JSONValue.parse("-9007199254740992").integerValue, -9_007_199_254_740_992)
        XCTAssertEqual(try JSONValue.parse("123456789012345").integerValue, 123_456_789_012_345)
        XCTAssertNil(try JSONValue.parse("9007199254740994").integerValue)
        XCTAssertNil(try JSONValue.parse("1.5").integerValue)
        XCTAssertNil(try JSONValue.parse("1e-2").integerValue)
        XCTAssertNil(try JSONValue.parse("1e300").integerValue)
        XCTAssertNil(try JSONValue.parse("\"1\"").integerValue)
        XCTAssertNil(try JSONValue.parse("true").integerValue)
    }

    func testAccessors() throws {
        let value = try JSONValue.parse("{\"s\":\"x\",\"b\":true,\"a\":[1,2],\"n\":null,\"o\":{}}")
        XCTAssertEqual(value["s"]?.stringValue, "x")
        XCTAssertEqual(value["b"]?.boolValue, true)
        XCTAssertEqual(value["a"]?.arrayValue, [.number(1), .number(2)])
        XCTAssertEqual(value["n"], .null)
        XCTAssertEqual(value["o"]?.objectValue, [:])
        XCTAssertNil(value["missing"])
        XCTAssertNil(value["s"]?.boolValue)
        XCTAssertNil(value["b"]?.stringValue)
        XCTAssertNil(value["a"]?["x"])
        XCTAssertNil(JSONValue.string("x")["s"])
        XCTAssertNil(JSONValue.null.arrayValue)
    }

    func testParsesFromRawBuffer() throws {
        let bytes = Array("  {\"k\": [\"v\", -1.5e-3]}  ".utf8)
        XCTAssertEqual(try JSONValue.parse(bytes: bytes), .object(["k": .array([.string("v"), .number(-1.5e-3)])]))
        XCTAssertThrowsError(try JSONValue.parse(bytes: []))
    }

    // MARK: Round trips

    func testRoundTripsThroughJSONWriter() throws {
        var strings = [
            "", "plain", "quote \" and backslash \\", "tab\tnewline\ncr\r", "😀 emoji 👩‍👩‍👧", "é€π",
            "\u{2028}\u{2029}", "\u{7F}\u{80}\u{FFFF}\u{10FFFF}", "/slash/", String(repeating: "long ", count: 300),
        ]
        strings.append(String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }))
        for s in strings {
            let quoted = JSONWriter.quoted(s)
            XCTAssertEqual(try JSONValue.parse(quoted), .string(s), "string: \(s.debugDescription)")
            XCTAssertEqual(try JSONValue.parse("{\(quoted):[\(quoted)]}"), .object([s: .array([.string(s)])]))
        }
    }
}
