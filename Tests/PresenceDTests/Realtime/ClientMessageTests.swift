import Foundation
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// Client message parsing: every rule and error code of docs/protocol.md, "Client messages",
/// limits, and seeded fuzzing.
final class ClientMessageTests: XCTestCase {
    private func parse(_ text: String) -> Result<ClientMessage, ProtocolError> {
        ClientMessage.parse(text)
    }

    private func parse(bytes: [UInt8]) -> Result<ClientMessage, ProtocolError> {
        bytes.withUnsafeBytes { ClientMessage.parse($0) }
    }

    private func assertMessage(_ text: String, _ expected: ClientMessage, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(parse(text), .success(expected), "payload: \(text)", file: file, line: line)
    }

    /// Asserts a refusal with `code` whose message contains `fragment`.
    private func assertError(
        _ text: String, _ code: ProtocolErrorCode, _ fragment: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        assertError(bytes: Array(text.utf8), code, fragment, file: file, line: line)
    }

    private func assertError(
        bytes: [UInt8], _ code: ProtocolErrorCode, _ fragment: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        switch parse(bytes: bytes) {
        case .success(let message):
            XCTFail("accepted \(message) from \(String(decoding: bytes, as: UTF8.self).debugDescription)", file: file, line: line)
        case .failure(let error):
            XCTAssertEqual(
                error.code, code, "\(error.message) for \(String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription)",
                file: file, line: line)
            if !fragment.isEmpty {
                XCTAssertTrue(error.message.contains(fragment), "message '\(error.message)' lacks '\(fragment)'", file: file, line: line)
            }
        }
    }

    // MARK: Accepted

    func testEveryType() {
        assertMessage(#"{"type":"join","channel":"room-1"}"#, .join(channel: "room-1"))
        assertMessage(#"{"type":"leave","channel":"a.b:c_d-9"}"#, .leave(channel: "a.b:c_d-9"))
        assertMessage(#"{"type":"message","channel":"general","content":"hello"}"#, .message(channel: "general", content: "hello"))
        assertMessage(#"{"type":"typing","channel":"general","typing":true}"#, .typing(channel: "general", typing: true))
        assertMessage(#"{"type":"typing","channel":"general","typing":false}"#, .typing(channel: "general", typing: false))
        assertMessage(#"{"type":"ping"}"#, .ping)
    }

    func testKeysInAnyOrderAndWhitespace() {
        assertMessage(#"{"channel":"c","type":"join"}"#, .join(channel: "c"))
        assertMessage(#"{"content":"x","channel":"c","type":"message"}"#, .message(channel: "c", content: "x"))
        assertMessage(#"{"channel":"c","content":"x","type":"message"}"#, .message(channel: "c", content: "x"))
        assertMessage(#"{"typing":true,"type":"typing","channel":"c"}"#, .typing(channel: "c", typing: true))
        assertMessage(" \r\n\t{ \"type\" : \"ping\" \n} \n", .ping)
        assertMessage("{\n  \"type\": \"message\",\n  \"channel\": \"c\",\n  \"content\": \"hi\"\n}", .message(channel: "c", content: "hi"))
    }

    func testUnicodeAndEscapesInContent() {
        assertMessage(
            #"{"type":"message","channel":"c","content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n\t"}"#,
            .message(channel: "c", content: "café 😀 \"q\" \\ / \n\t"))
        assertMessage(#"{"type":"message","channel":"c","content":"héllo 👋🏽 世界"}"#, .message(channel: "c", content: "héllo 👋🏽 世界"))
        assertMessage(#"{"type":"message","channel":"c","content":"\u0000"}"#, .message(channel: "c", content: "\u{0}"))
        assertMessage(#"{"type":"message","channel":"c","content":"   "}"#, .message(channel: "c", content: "   "))
    }

    func testEscapedNamesAndValuesAreDecoded() {
        assertMessage(#"{"\u0074ype":"\u006aoin","ch\u0061nnel":"\u0061bc"}"#, .join(channel: "abc"))
        assertMessage(#"{"type":"typ\u0069ng","channel":"c","typin\u0067":true}"#, .typing(channel: "c", typing: true))
        assertError(#"{"type":"join","channel":"a\u0020b"}"#, .invalidChannel)
        assertError(#"{"type":"join","channel":"\u00e9"}"#, .invalidChannel)
    }

    // MARK: bad_json: not one well-formed object

    func testMalformedJSON() {
        let cases = [
            "", " ", "{", "}", "[]", "null", "\"join\"", "42", "true", #"["type","ping"]"#,
            #"{"type":"ping"} {}"#, #"{"type":"ping"}{"type":"ping"}"#,
            #"{"type":"ping",}"#, #"{"type":"ping" "x":1}"#, #"{type:"ping"}"#, #"{'type':'ping'}"#,
            #"{"type":"ping"]"#, #"{"type":"join","channel":"c"#, #"{"type":"message","channel":"c","content":"a\x"}"#,
            "{\"type\":\"message\",\"channel\":\"c\",\"content\":\"a\u{1}b\"}",
            "{\"type\":\"message\",\"channel\":\"c\",\"content\":\"line\nbreak\"}",
            #"{"type":"message","channel":"c","content":"\ud800"}"#, #"{"type":"message","channel":"c","content":"\udc00x"}"#,
            #"{"type":"message","channel":"c","content":"\ud83d\u0041"}"#, #"{"type":"message","channel":"c","content":"\u12"}"#,
            #"{"type":"typing","channel":"c","typing":tru}"#, #"{"type":"ping","x":01}"#, #"{"type":"ping","x":NaN}"#,
            #"{"type":"ping"}//"#, "\u{FEFF}{\"type\":\"ping\"}",
        ]
        for text in cases {
            assertError(text, .badJSON)
        }
        assertError("[]", .badJSON, "expected a JSON object")
        assertError(#"{"type":"ping",}"#, .badJSON, "at byte 15")
    }

    func testInvalidUTF8() {
        let prefix = Array(#"{"type":"message","channel":"c","content":""#.utf8)
        for bad: [UInt8] in [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80]] {
            assertError(bytes: prefix + bad + Array("\"}".utf8), .badJSON, "UTF-8")
        }
        assertError(bytes: Array(#"{"type":"join","channel":"#.utf8) + [0xFF] + Array("}".utf8), .badJSON)
    }

    func testDepthLimit() {
        // Depth 8 (the object plus 7 arrays) is well-formed; the field is still unknown.
        assertError(#"{"type":"ping","x":[[[[[[[1]]]]]]]}"#, .badJSON, "unknown field 'x'")
        assertError(#"{"type":"ping","x":[[[[[[[[1]]]]]]]]}"#, .badJSON, "nesting deeper than 8")
        let deep = #"{"type":"ping","x":"# + String(repeating: "[", count: 1_000) + String(repeating: "]", count: 1_000) + "}"
        assertError(deep, .badJSON, "nesting")
        let open = #"{"type":"ping","x":"# + String(repeating: "[", count: 100_000)
        assertError(open, .badJSON, "nesting")
    }

    func testDuplicateFields() {
        assertError(#"{"type":"join","channel":"a","channel":"b"}"#, .badJSON, "duplicate field 'channel'")
        assertError(#"{"type":"ping","type":"ping"}"#, .badJSON, "duplicate field 'type'")
        assertError(#"{"type":"join","channel":"a","\u0063hannel":"a"}"#, .badJSON, "duplicate")
        assertError(#"{"type":"typing","channel":"a","typing":true,"typing":false}"#, .badJSON, "duplicate field 'typing'")
        assertError(#"{"type":"message","channel":"a","content":"x","content":1}"#, .badJSON, "duplicate field 'content'")
    }

    // MARK: bad_json: schema

    func testTypeField() {
        assertError(#"{}"#, .badJSON, "missing field 'type'")
        assertError(#"{"channel":"c"}"#, .badJSON, "missing field 'type'")
        assertError(#"{"type":1}"#, .badJSON, "'type' must be a string")
        assertError(#"{"type":null}"#, .badJSON, "'type' must be a string")
        assertError(#"{"type":true}"#, .badJSON, "'type' must be a string")
        assertError(#"{"type":["ping"]}"#, .badJSON, "'type' must be a string")
        assertError(#"{"type":{"ping":1}}"#, .badJSON, "'type' must be a string")
        assertError(#"{"type":"pong"}"#, .unknownType, "unknown type 'pong'")
        assertError(#"{"type":"JOIN","channel":"c"}"#, .unknownType)
        assertError(#"{"type":"join ","channel":"c"}"#, .unknownType)
        assertError(#"{"type":""}"#, .unknownType)
        assertError(#"{"type":"presence","user_id":"u"}"#, .unknownType)
    }

    func testUnknownAndUnexpectedFields() {
        assertError(#"{"type":"ping","extra":1}"#, .badJSON, "unknown field 'extra'")
        assertError(#"{"type":"join","channel":"c","Channel":"c"}"#, .badJSON, "unknown field 'Channel'")
        assertError(#"{"type":"ping","channel":"c"}"#, .badJSON, "unexpected field 'channel' for type 'ping'")
        assertError(#"{"type":"join","channel":"c","content":"x"}"#, .badJSON, "unexpected field 'content'")
        assertError(#"{"type":"leave","channel":"c","typing":true}"#, .badJSON, "unexpected field 'typing'")
        assertError(#"{"type":"message","channel":"c","content":"x","typing":true}"#, .badJSON, "unexpected field 'typing'")
        assertError(#"{"type":"typing","channel":"c","typing":true,"content":"x"}"#, .badJSON, "unexpected field 'content'")
        assertError(#"{"type":"ping","":1}"#, .badJSON, "unknown field ''")
        assertError(#"{"type":"ping","x":1e999999}"#, .badJSON, "unknown field 'x'")
    }

    /// docs/protocol.md, "Client messages": `join` may carry `since`, `message` a `nonce`; anything
    /// malformed in them is bad_json, and a message's later errors carry its nonce.
    func testSinceAndNonce() {
        assertMessage(
            #"{"type":"join","channel":"c","since":{"offset":41,"epoch":"a1b2-c3"}}"#,
            .join(channel: "c", since: StreamPosition(offset: 41, epoch: "a1b2-c3")))
        assertMessage(
            #"{"since":{"epoch":"e","offset":0},"channel":"c","type":"join"}"#,
            .join(channel: "c", since: StreamPosition(offset: 0, epoch: "e")))
        assertMessage(
            #"{"type":"message","channel":"c","content":"x","nonce":"n_1-A"}"#, .message(channel: "c", content: "x", nonce: "n_1-A"))
        for bad in [
            #"{"offset":1}"#, #"{"epoch":"e"}"#, #"{"offset":-1,"epoch":"e"}"#, #"{"offset":1.5,"epoch":"e"}"#,
            #"{"offset":"1","epoch":"e"}"#, #"{"offset":1,"epoch":""}"#, #"{"offset":1,"epoch":"a b"}"#,
            #"{"offset":1,"epoch":"e","x":1}"#, #"{"offset":1,"offset":2,"epoch":"e"}"#, "[1]", "null", "1",
        ] {
            assertError(#"{"type":"join","channel":"c","since":\#(bad)}"#, .badJSON, "since")
        }
        assertError(
            #"{"type":"join","channel":"c","since":{"offset":1,"epoch":"e"},"since":{"offset":1,"epoch":"e"}}"#, .badJSON, "duplicate")
        for bad in [#""""#, #""a b""#, #""é""#, "1", "null", #""\#(String(repeating: "n", count: 65))""#, #""a\u0062""#] {
            assertError(#"{"type":"message","channel":"c","content":"x","nonce":\#(bad)}"#, .badJSON, "nonce")
        }
        assertError(#"{"type":"leave","channel":"c","since":{"offset":1,"epoch":"e"}}"#, .badJSON, "unexpected field 'since'")
        assertError(#"{"type":"join","channel":"c","nonce":"n"}"#, .badJSON, "unexpected field 'nonce'")
        XCTAssertEqual(
            parse(#"{"type":"message","channel":"c","content":"","nonce":"n7"}"#),
            .failure(ProtocolError(code: .badJSON, message: "content is empty", nonce: "n7")))
        XCTAssertEqual(parse(#"{"type":"message","channel":"bad channel","content":"x","nonce":"n8"}"#).failureNonce, "n8")
        XCTAssertTrue(ClientMessage.isValidNonce(String(repeating: "a", count: 64)))
        XCTAssertFalse(ClientMessage.isValidNonce(String(repeating: "a", count: 65)))
    }

    func testEchoedInputIsCappedAt64Bytes() {
        let longName = String(repeating: "é", count: 100)  // 200 bytes
        guard case .failure(let error) = parse(#"{"type":"ping",""# + longName + #"":1}"#) else { return XCTFail() }
        XCTAssertEqual(error.code, .badJSON)
        let echoed = error.message.replacingOccurrences(of: "unknown field '", with: "").replacingOccurrences(of: "…'", with: "")
        XCTAssertEqual(echoed, String(repeating: "é", count: 32))
        XCTAssertLessThanOrEqual(error.message.utf8.count, 64 + 40)
        guard case .failure(let typeError) = parse(#"{"type":""# + String(repeating: "x", count: 10_000) + #""}"#) else { return XCTFail() }
        XCTAssertEqual(typeError.code, .unknownType)
        XCTAssertLessThanOrEqual(typeError.message.utf8.count, 64 + 40)
    }

    func testMissingFields() {
        assertError(#"{"type":"join"}"#, .badJSON, "missing field 'channel'")
        assertError(#"{"type":"leave"}"#, .badJSON, "missing field 'channel'")
        assertError(#"{"type":"message","channel":"c"}"#, .badJSON, "missing field 'content'")
        assertError(#"{"type":"message","content":"x"}"#, .badJSON, "missing field 'channel'")
        assertError(#"{"type":"typing","channel":"c"}"#, .badJSON, "missing field 'typing'")
        assertError(#"{"type":"typing","typing":true}"#, .badJSON, "missing field 'channel'")
    }

    func testWrongJSONTypes() {
        assertError(#"{"type":"join","channel":1}"#, .badJSON, "'channel' must be a string, not a number")
        assertError(#"{"type":"join","channel":null}"#, .badJSON, "'channel' must be a string, not null")
        assertError(#"{"type":"join","channel":["c"]}"#, .badJSON, "'channel' must be a string, not an array")
        assertError(#"{"type":"join","channel":{"c":1}}"#, .badJSON, "not an object")
        assertError(#"{"type":"join","channel":true}"#, .badJSON, "not a boolean")
        assertError(#"{"type":"message","channel":"c","content":42}"#, .badJSON, "'content' must be a string")
        assertError(#"{"type":"message","channel":"c","content":null}"#, .badJSON, "'content' must be a string")
        assertError(#"{"type":"typing","channel":"c","typing":"true"}"#, .badJSON, "'typing' must be a boolean, not a string")
        assertError(#"{"type":"typing","channel":"c","typing":1}"#, .badJSON, "'typing' must be a boolean")
        assertError(#"{"type":"typing","channel":"c","typing":1e999999}"#, .badJSON, "'typing' must be a boolean")
        assertError(#"{"type":"typing","channel":"c","typing":null}"#, .badJSON, "'typing' must be a boolean")
    }

    func testEmptyContent() {
        assertError(#"{"type":"message","channel":"c","content":""}"#, .badJSON, "content is empty")
    }

    // MARK: invalid_channel

    func testChannelValidation() {
        let longest = String(repeating: "a", count: 128)
        assertMessage(#"{"type":"join","channel":""# + longest + #""}"#, .join(channel: longest))
        assertError(#"{"type":"join","channel":""# + longest + #"b"}"#, .invalidChannel)
        assertError(#"{"type":"join","channel":""}"#, .invalidChannel)
        for bad in ["a b", "a/b", "a#b", "é", "a\\\"b", "a\\nb", "chan!", "a,b", "ä", "😀", "a\\u0000"] {
            assertError(#"{"type":"join","channel":""# + bad + #""}"#, .invalidChannel, "channel")
        }
        let allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
        assertMessage(#"{"type":"leave","channel":""# + allowed + #""}"#, .leave(channel: allowed))
        // Channel is checked before content size.
        assertError(#"{"type":"message","channel":"a b","content":""# + String(repeating: "x", count: 5000) + #""}"#, .invalidChannel)
    }

    func testIsValidChannel() {
        XCTAssertTrue(ClientMessage.isValidChannel("a"))
        XCTAssertTrue(ClientMessage.isValidChannel("team:42.room_7-x"))
        XCTAssertTrue(ClientMessage.isValidChannel(String(repeating: "Z", count: 128)))
        XCTAssertFalse(ClientMessage.isValidChannel(String(repeating: "Z", count: 129)))
        XCTAssertFalse(ClientMessage.isValidChannel(""))
        for byte in 0..<256 {
            let c = UInt8(byte)
            let expected =
                (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == 0x5F || c == 0x2E || c == 0x3A || c == 0x2D
            let valid = [c].withUnsafeBytes { ClientMessage.isValidChannel($0) }
            XCTAssertEqual(valid, expected, "byte \(byte)")
        }
    }

    // MARK: too_large

    func testContentSizeLimitCountsUTF8Bytes() {
        func message(_ content: String) -> String { #"{"type":"message","channel":"c","content":""# + content + #""}"# }
        let ascii4096 = String(repeating: "a", count: 4096)
        assertMessage(message(ascii4096), .message(channel: "c", content: ascii4096))
        assertError(message(ascii4096 + "a"), .tooLarge)
        // 1365 × "€" (3 bytes) + "a" = 4096 bytes, from 1366 characters.
        let euros = String(repeating: "€", count: 1365) + "a"
        XCTAssertEqual(euros.utf8.count, 4096)
        assertMessage(message(euros), .message(channel: "c", content: euros))
        assertError(message(euros + "a"), .tooLarge)
        // 1024 × 4-byte emoji = 4096 bytes; one more emoji goes over.
        let emoji = String(repeating: "😀", count: 1024)
        assertMessage(message(emoji), .message(channel: "c", content: emoji))
        assertError(message(emoji + "😀"), .tooLarge, "4096")
        // Escaped input: counted after unescaping (6 source bytes → 3 UTF-8 bytes each).
        let escaped = String(repeating: "\\u20ac", count: 1365) + "a"
        assertMessage(message(escaped), .message(channel: "c", content: euros))
        assertError(message(escaped + "\\n"), .tooLarge)
        // Surrogate pairs: 12 source bytes → 4 UTF-8 bytes.
        let pairs = String(repeating: "\\ud83d\\ude00", count: 1024)
        assertMessage(message(pairs), .message(channel: "c", content: emoji))
        assertError(message(pairs + "x"), .tooLarge)
    }

    // MARK: Robustness

    func testSeededMutationsNeverCrashAndAgreeWithTheDOM() {
        let seeds = [
            #"{"type":"join","channel":"room-1"}"#,
            #"{"type":"leave","channel":"room-1"}"#,
            #"{"type":"message","channel":"general","content":"hello \"world\" \u00e9 \ud83d\ude00 ok"}"#,
            #"{"type":"typing","channel":"general","typing":true}"#,
            #"{"type":"ping"}"#,
            #"{ "content" : "x" , "type" : "message" , "channel" : "c" }"#,
            #"{"type":"ping","x":[1,{"a":[true,null,-1.5e3]}]}"#,
        ].map { Array($0.utf8) }
        let interesting = Array(#"{}[]",:\ tfn0123456789-+.eEu"#.utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xBF, 0xC3, 0xED, 0xF0, 0xFF]
        var rng = SplitMix(seed: 0x5EED_1234)
        var counts: [String: Int] = [:]
        for iteration in 0..<10_000 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0...(rng.next() % 4) {
                let position = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 6 {
                case 0 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.insert(interesting[Int(rng.next() % UInt64(interesting.count))], at: position)
                case 2 where !bytes.isEmpty: bytes.remove(at: position)
                case 3 where !bytes.isEmpty: bytes.removeSubrange(position...)
                case 4 where !bytes.isEmpty:
                    let end = min(bytes.count, position + Int(rng.next() % 16))
                    bytes.insert(contentsOf: bytes[position..<end], at: position)
                default:
                    if !bytes.isEmpty { bytes[position] = interesting[Int(rng.next() % UInt64(interesting.count))] }
                }
            }
            let result = parse(bytes: bytes)
            let dom = try? JSONValue.parse(bytes: bytes, maxDepth: 8)
            switch result {
            case .success(let message):
                counts["ok", default: 0] += 1
                // Accepted messages are valid JSON carrying exactly these fields.
                guard let dom else {
                    XCTFail("accepted non-JSON at iteration \(iteration): \(bytes)")
                    continue
                }
                XCTAssertEqual(Self.message(from: dom), message, "iteration \(iteration)")
            case .failure(let error):
                counts[error.code.rawValue, default: 0] += 1
                XCTAssertFalse(error.message.isEmpty)
                if dom == nil, error.code != .badJSON, error.code != .unknownType {
                    XCTFail("malformed JSON gave \(error.code) at iteration \(iteration)")
                }
                if error.message.hasPrefix("invalid JSON") { XCTAssertNil(dom, "iteration \(iteration)") }
            }
        }
        XCTAssertGreaterThan(counts["ok", default: 0], 100)
        XCTAssertGreaterThan(counts["bad_json", default: 0], 1_000)
    }

    func testRandomBytesNeverCrash() {
        var rng = SplitMix(seed: 42)
        for _ in 0..<2_000 {
            let count = Int(rng.next() % 64)
            var bytes = [UInt8](repeating: 0, count: count)
            for i in 0..<count { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
            if case .success = parse(bytes: [0x7B] + bytes) {
                // Possible only for a real message; the DOM must agree.
                XCTAssertNotNil(try? JSONValue.parse(bytes: [0x7B] + bytes, maxDepth: 8))
            }
        }
    }

    /// The message a DOM describes, following the same schema (for differential checks).
    private static func message(from dom: JSONValue) -> ClientMessage? {
        guard case .object(let fields) = dom, let type = fields["type"]?.stringValue else { return nil }
        let channel = fields["channel"]?.stringValue
        switch type {
        case "join" where fields.count == 2: return channel.map { .join(channel: $0) }
        case "leave" where fields.count == 2: return channel.map { .leave(channel: $0) }
        case "ping" where fields.count == 1: return .ping
        case "message" where fields.count == 3:
            guard let channel, let content = fields["content"]?.stringValue else { return nil }
            return .message(channel: channel, content: content)
        case "typing" where fields.count == 3:
            guard let channel, let typing = fields["typing"]?.boolValue else { return nil }
            return .typing(channel: channel, typing: typing)
        default: return nil
        }
    }
}

private extension Result where Success == ClientMessage, Failure == ProtocolError {
    var failureNonce: String? { if case .failure(let e) = self { return e.nonce } else { return nil } }
}
