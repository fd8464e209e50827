import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// Server frames decoded as a client would: framing, fields, key order and escaping.
final class ServerMessageTests: XCTestCase {
    /// Decodes one complete frame as a client would; returns its text payload.
    private func payload(of frame: SharedBytes, file: StaticString = #filePath, line: UInt = #line) -> [UInt8]? {
        var bytes = frame.withBytes { Array($0) }
        XCTAssertEqual(bytes.first, 0x81, "FIN + text opcode", file: file, line: line)
        XCTAssertEqual(bytes.count > 1 ? bytes[1] & 0x80 : 1, 0, "server frames are unmasked", file: file, line: line)
        var decoder = FrameDecoder(role: .client, maxMessageSize: 1 << 20)
        var consumed = 0
        return bytes.withUnsafeMutableBytes { buffer -> [UInt8]? in
            let output = decoder.next(buffer, consumed: &consumed)
            XCTAssertEqual(consumed, buffer.count, "exactly one frame", file: file, line: line)
            guard case .text(let text) = output else {
                XCTFail("expected a text frame, got \(output)", file: file, line: line)
                return nil
            }
            return Array(text)
        }
    }

    /// The payload's keys in order and the parsed document.
    private func decode(_ frame: SharedBytes, file: StaticString = #filePath, line: UInt = #line) -> (keys: [String], value: JSONValue)? {
        guard let bytes = payload(of: frame, file: file, line: line) else { return nil }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes: bytes)
        } catch {
            XCTFail("payload is not JSON: \(error) \(String(decoding: bytes, as: UTF8.self))", file: file, line: line)
            return nil
        }
        // Top-level keys in wire order, read with the tokenizer.
        var keys: [String] = []
        bytes.withUnsafeBytes { raw in
            var reader = JSONReader(raw)
            while let token = try? reader.next(), token != .end {
                if token == .key, reader.depth == 1 { keys.append(reader.string(reader.stringToken)) }
            }
        }
        return (keys, value)
    }

    func testMessage() {
        let frame = ServerMessage.message(
            id: "01HV5ZK7", sender: "user-1", content: "hello", channel: "general",
            timestamp: "2024-05-01T12:00:00.123Z")
        XCTAssertEqual(
            payload(of: frame).map { String(decoding: $0, as: UTF8.self) },
            #"{"type":"message","id":"01HV5ZK7","sender":"user-1","content":"hello","channel":"general","timestamp":"2024-05-01T12:00:00.123Z"}"#
        )
        guard let (keys, value) = decode(frame) else { return }
        XCTAssertEqual(keys, ["type", "id", "sender", "content", "channel", "timestamp"])
        XCTAssertEqual(value["type"], .string("message"))
        XCTAssertEqual(value["sender"], .string("user-1"))
        XCTAssertEqual(value["timestamp"], .string("2024-05-01T12:00:00.123Z"))
    }

    func testContentEscaping() {
        let contents = [
            "say \"hi\" \\ back", "line\nbreak\ttab\r\u{8}\u{C}", "\u{0}\u{1}\u{1F}\u{7F}", "emoji 😀👩‍👩‍👧 é 世界",
            "</script>\u{2028}\u{2029}", "", String(repeating: "x\"", count: 2_048), String(repeating: "😀", count: 1_024),
            String(repeating: "a", count: 70_000),
        ]
        for content in contents {
            let frame = ServerMessage.message(id: "i\"d", sender: "s\n", content: content, channel: "c", timestamp: "t")
            guard let (keys, value) = decode(frame) else { continue }
            XCTAssertEqual(keys, ["type", "id", "sender", "content", "channel", "timestamp"])
            XCTAssertEqual(value["content"], .string(content))
            XCTAssertEqual(value["id"], .string("i\"d"))
            XCTAssertEqual(value["sender"], .string("s\n"))
        }
        let raw = payload(of: ServerMessage.message(id: "1", sender: "u", content: "a\"\u{1}😀", channel: "c", timestamp: "t"))
        XCTAssertEqual(
            raw.map { String(decoding: $0, as: UTF8.self) },
            #"{"type":"message","id":"1","sender":"u","content":"a\"\u0001😀","channel":"c","timestamp":"t"}"#)
    }

    func testPresence() {
        for online in [true, false] {
            let frame = ServerMessage.presence(userID: "alice", online: online, channel: "room")
            XCTAssertEqual(
                payload(of: frame).map { String(decoding: $0, as: UTF8.self) },
                #"{"type":"presence","user_id":"alice","online":\#(online),"channel":"room"}"#)
            guard let (keys, value) = decode(frame) else { continue }
            XCTAssertEqual(keys, ["type", "user_id", "online", "channel"])
            XCTAssertEqual(value["online"], .bool(online))
        }
        guard let (_, value) = decode(ServerMessage.presence(userID: "bö\"b", online: true, channel: "c")) else { return }
        XCTAssertEqual(value["user_id"], .string("bö\"b"))
    }

    func testTyping() {
        for typing in [true, false] {
            let frame = ServerMessage.typing(userID: "alice", channel: "room", typing: typing)
            XCTAssertEqual(
                payload(of: frame).map { String(decoding: $0, as: UTF8.self) },
                #"{"type":"typing","user_id":"alice","channel":"room","typing":\#(typing)}"#)
            guard let (keys, value) = decode(frame) else { continue }
            XCTAssertEqual(keys, ["type", "user_id", "channel", "typing"])
            XCTAssertEqual(value["typing"], .bool(typing))
        }
    }

    func testPongIsBuiltOnceAndShared() {
        XCTAssertTrue(ServerMessage.pong === ServerMessage.pong)
        XCTAssertEqual(payload(of: ServerMessage.pong).map { String(decoding: $0, as: UTF8.self) }, #"{"type":"pong"}"#)
        XCTAssertEqual(ServerMessage.pong.count, 2 + 15)
    }

    func testErrorForEveryCode() {
        let codes: [ProtocolErrorCode] = [
            .badJSON, .unknownType, .invalidChannel, .notJoined, .forbiddenChannel, .tooLarge,
            .rateLimited, .unavailable,
        ]
        XCTAssertEqual(
            codes.map(\.rawValue),
            [
                "bad_json", "unknown_type", "invalid_channel", "not_joined", "forbidden_channel",
                "too_large", "rate_limited", "unavailable",
            ])
        for code in codes {
            let frame = ServerMessage.error(code, "why \"not\"\n")
            guard let (keys, value) = decode(frame) else { continue }
            XCTAssertEqual(keys, ["type", "code", "message"])
            XCTAssertEqual(value, .object(["type": .string("error"), "code": .string(code.rawValue), "message": .string("why \"not\"\n")]))
        }
        let refused = ProtocolError(code: .tooLarge, message: "content is over 4096 bytes")
        XCTAssertEqual(
            payload(of: ServerMessage.error(refused)).map { String(decoding: $0, as: UTF8.self) },
            #"{"type":"error","code":"too_large","message":"content is over 4096 bytes"}"#)
    }

    func testClientErrorMessagesRoundTrip() {
        // Whatever ClientMessage echoes (control characters, quotes) still yields a valid frame.
        guard case .failure(let error) = ClientMessage.parse("{\"type\":\"\\u0001\\\"\\n\"}") else { return XCTFail() }
        guard let (_, value) = decode(ServerMessage.error(error)) else { return }
        XCTAssertEqual(value["message"], .string(error.message))
        XCTAssertEqual(value["code"], .string("unknown_type"))
    }

    func testHeaderLengthForms() {
        // 7-bit, 16-bit and 64-bit payload lengths.
        for (size, header) in [(10, 2), (200, 4), (70_000, 10)] {
            let frame = ServerMessage.error(.badJSON, String(repeating: "m", count: size))
            let payloadLength = #"{"type":"error","code":"bad_json","message":""}"#.utf8.count + size
            XCTAssertEqual(frame.count, header + payloadLength)
            XCTAssertEqual(payload(of: frame)?.count, payloadLength)
        }
    }
}
