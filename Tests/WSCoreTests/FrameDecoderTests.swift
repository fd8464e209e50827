import TestSupport
import XCTest

@testable import WSCore

/// Test support shared by the frame codec tests (namespaced to stay clear of other test files).
enum FrameTesting {
    /// A decoder event with its payload copied out (payload pointers die at the next call).
    enum Event: Equatable, CustomStringConvertible {
        case text([UInt8])
        case binary([UInt8])
        case ping([UInt8])
        case pong([UInt8])
        case close(UInt16?, [UInt8])
        case failure(UInt16)

        var description: String {
            switch self {
            case .text(let p): return "text(\(p.count))"
            case .binary(let p): return "binary(\(p.count))"
            case .ping(let p): return "ping(\(p.count))"
            case .pong(let p): return "pong(\(p.count))"
            case .close(let code, let reason): return "close(\(code.map(String.init) ?? "nil"), \(reason.count))"
            case .failure(let code): return "failure(\(code))"
            }
        }
    }

    static let maskKey: UInt32 = 0x37FA_213D

    /// Any frame, valid or not, built independently of `FrameEncoder`. `declaredLength` overrides the
    /// length field; `lengthBytes` forces 0, 2 or 8 extended length bytes.
    static func frame(
        opcode: UInt8, payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
        mask: UInt32? = maskKey, declaredLength: UInt64? = nil, lengthBytes: Int? = nil
    ) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
        let length = declaredLength ?? UInt64(payload.count)
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        let extended = lengthBytes ?? (length < 126 ? 0 : (length <= 0xFFFF ? 2 : 8))
        switch extended {
        case 0: out.append(maskBit | UInt8(length))
        case 2:
            out.append(maskBit | 126)
            out += [UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        default:
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(length >> UInt64(shift) & 0xFF)) }
        }
        if let mask {
            let key = [UInt8(mask >> 24), UInt8(mask >> 16 & 0xFF), UInt8(mask >> 8 & 0xFF), UInt8(mask & 0xFF)]
            out += key
            for (i, byte) in payload.enumerated() { out.append(byte ^ key[i % 4]) }
        } else {
            out += payload
        }
        return out
    }

    static func closePayload(_ code: UInt16, _ reason: [UInt8] = []) -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF)] + reason
    }

    /// Feeds `chunks` in order, each through its own buffer (as separate receive calls), collecting events
    /// until the input runs out or a failure. Also returns, for a failure, the index of the chunk that
    /// produced it.
    static func decode(
        _ chunks: [[UInt8]], _ decoder: inout FrameDecoder, file: StaticString = #filePath, line: UInt = #line
    ) -> (events: [Event], failedChunk: Int?) {
        var events: [Event] = []
        for (index, chunk) in chunks.enumerated() {
            var buffer = chunk
            let failed = buffer.withUnsafeMutableBytes { raw -> Bool in
                var consumed = 0
                while true {
                    switch decoder.next(raw, consumed: &consumed) {
                    case .needMoreData:
                        XCTAssertEqual(consumed, raw.count, "needMoreData before all input was taken", file: file, line: line)
                        return false
                    case .text(let p): events.append(.text(Array(p)))
                    case .binary(let p): events.append(.binary(Array(p)))
                    case .ping(let p): events.append(.ping(Array(p)))
                    case .pong(let p): events.append(.pong(Array(p)))
                    case .close(let code, let reason): events.append(.close(code, Array(reason)))
                    case .failure(let code):
                        events.append(.failure(code.rawValue))
                        return true
                    }
                }
            }
            if failed { return (events, index) }
        }
        return (events, nil)
    }

    static func decode(_ bytes: [UInt8], role: FrameDecoder.Role = .server, maxMessageSize: Int = 65536) -> [Event] {
        var decoder = FrameDecoder(role: role, maxMessageSize: maxMessageSize)
        return decode([bytes], &decoder).events
    }

    /// Splits at random points: mostly small chunks, sometimes large ones, never empty.
    static func randomSplit(_ bytes: [UInt8], _ rng: inout SplitMix) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var start = 0
        while start < bytes.count {
            let limit: Int
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: limit = 1
            case 1: limit = 8
            case 2: limit = 40
            default: limit = 2000
            }
            let size = min(Int.random(in: 1...limit, using: &rng), bytes.count - start)
            chunks.append(Array(bytes[start..<start + size]))
            start += size
        }
        return chunks
    }

    static func byteAtATime(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.map { [$0] }
    }

    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
}

final class FrameDecoderTests: XCTestCase {
    typealias Event = FrameTesting.Event
    let frame = FrameTesting.frame

    private func events(_ bytes: [UInt8], role: FrameDecoder.Role = .server, max: Int = 65536) -> [Event] {
        FrameTesting.decode(bytes, role: role, maxMessageSize: max)
    }

    private func assertFailure(
        _ bytes: [UInt8], _ code: CloseCode, role: FrameDecoder.Role = .server, max: Int = 65536,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let got = events(bytes, role: role, max: max)
        XCTAssertEqual(got.last, .failure(code.rawValue), "events: \(got)", file: file, line: line)
        assertSplitsAgree(bytes, role: role, max: max, file: file, line: line)
    }

    /// Decodes `bytes` whole, byte at a time and at random split points; the events (and the byte at which
    /// a failure is detected) must not depend on the split.
    private func assertSplitsAgree(
        _ bytes: [UInt8], role: FrameDecoder.Role = .server, max: Int = 65536, seeds: Range<UInt64> = 0..<40,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var whole = FrameDecoder(role: role, maxMessageSize: max)
        let expected = FrameTesting.decode([bytes], &whole).events
        var single = FrameDecoder(role: role, maxMessageSize: max)
        let (byteEvents, failedByte) = FrameTesting.decode(FrameTesting.byteAtATime(bytes), &single)
        XCTAssertEqual(byteEvents, expected, "byte at a time", file: file, line: line)
        for seed in seeds {
            var rng = SplitMix(seed: seed &* 0x1234_5678 &+ UInt64(bytes.count))
            let chunks = FrameTesting.randomSplit(bytes, &rng)
            var decoder = FrameDecoder(role: role, maxMessageSize: max)
            let (got, failedChunk) = FrameTesting.decode(chunks, &decoder)
            XCTAssertEqual(got, expected, "seed \(seed)", file: file, line: line)
            if let failedByte, let failedChunk {
                // Fail fast: the failure comes with the chunk that holds the offending byte.
                let before = chunks[..<failedChunk].reduce(0) { $0 + $1.count }
                XCTAssert(
                    before <= failedByte && failedByte < before + chunks[failedChunk].count,
                    "seed \(seed): failure at byte \(failedByte) reported in chunk \(before)..<\(before + chunks[failedChunk].count)",
                    file: file, line: line)
            }
        }
    }

    // MARK: Size

    func testDecoderIsSmall() {
        let size = MemoryLayout<FrameDecoder>.size
        print("MemoryLayout<FrameDecoder>.size = \(size), stride = \(MemoryLayout<FrameDecoder>.stride)")
        XCTAssertLessThanOrEqual(size, 46)  // every upgraded connection carries one (issue 19)
    }

    // MARK: Round trips

    static let roundTripLengths = [0, 1, 125, 126, 127, 65535, 65536, 100_000]

    func testClientFramesRoundTripThroughServerDecoder() {
        for length in Self.roundTripLengths {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let text = [UInt8](repeating: UInt8(ascii: "a"), count: length)
            let bytes =
                FrameEncoder.clientFrame(.binary, payload: payload, maskKey: 0xA1B2_C3D4)
                + FrameEncoder.clientFrame(.text, payload: text, maskKey: 0x0102_0304)
            XCTAssertEqual(events(bytes, max: 100_000), [.binary(payload), .text(text)], "length \(length)")
            assertSplitsAgree(bytes, max: 100_000, seeds: 0..<(length > 1000 ? 4 : 20))
        }
    }

    func testServerFramesRoundTripThroughClientDecoder() {
        for length in Self.roundTripLengths {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            let frame = payload.withUnsafeBytes { FrameEncoder.serverFrame(.binary, payload: $0) }
            let bytes = frame.withBytes { Array($0) }
            XCTAssertEqual(events(bytes, role: .client, max: 100_000), [.binary(payload)], "length \(length)")
            assertSplitsAgree(bytes, role: .client, max: 100_000, seeds: 0..<(length > 1000 ? 4 : 20))
        }
    }

    func testZeroCopyPathReturnsPointerIntoInputWithoutStorage() {
        var bytes = FrameEncoder.clientFrame(.text, payload: FrameTesting.ascii("Hello"), maskKey: FrameTesting.maskKey)
        var decoder = FrameDecoder()
        bytes.withUnsafeMutableBytes { raw in
            var consumed = 0
            guard case .text(let payload) = decoder.next(raw, consumed: &consumed) else { return XCTFail("no text") }
            XCTAssertEqual(payload.baseAddress, UnsafeRawPointer(raw.baseAddress! + 6), "payload must point into the input")
            XCTAssertEqual(Array(payload), FrameTesting.ascii("Hello"))
            XCTAssertEqual(Array(raw[6...]), FrameTesting.ascii("Hello"), "unmasked in place")
            XCTAssertEqual(consumed, raw.count)
            XCTAssertEqual(decoder.bufferedBytes, 0)
            guard case .needMoreData = decoder.next(raw, consumed: &consumed) else { return XCTFail("expected needMoreData") }
        }
        XCTAssertFalse(decoder.hasPartialData)
    }

    func testSeveralFramesInOneBufferAndEmptyInput() {
        let bytes =
            frame(0x1, FrameTesting.ascii("a"), true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x2, [1, 2], true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x9, [], true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0xA, [9], true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x1, [], true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(events(bytes), [.text([0x61]), .binary([1, 2]), .ping([]), .pong([9]), .text([])])
        var decoder = FrameDecoder()
        XCTAssertEqual(FrameTesting.decode([[]], &decoder).events, [])
        var consumed = 0
        guard case .needMoreData = decoder.next(UnsafeMutableRawBufferPointer(start: nil, count: 0), consumed: &consumed) else {
            return XCTFail("expected needMoreData")
        }
    }

    func testNonMinimalLengthEncodingIsAccepted() {
        let bytes =
            frame(0x2, [1, 2, 3], true, 0, FrameTesting.maskKey, nil, 2)
            + frame(0x2, [4], true, 0, FrameTesting.maskKey, nil, 8)
        XCTAssertEqual(events(bytes), [.binary([1, 2, 3]), .binary([4])])
        assertSplitsAgree(bytes)
    }

    // MARK: Masking rules

    func testServerRejectsUnmaskedFrame() {
        assertFailure(frame(0x1, FrameTesting.ascii("hi"), true, 0, nil, nil, nil), .protocolError)
        assertFailure(frame(0x9, [], true, 0, nil, nil, nil), .protocolError)
    }

    func testClientRejectsMaskedFrame() {
        assertFailure(frame(0x2, [1], true, 0, FrameTesting.maskKey, nil, nil), .protocolError, role: .client)
        XCTAssertEqual(events(frame(0x2, [1], true, 0, nil, nil, nil), role: .client), [.binary([1])])
    }

    // MARK: Header rules

    func testAnyRSVBitFails() {
        for rsv: UInt8 in 1...7 {
            assertFailure(frame(0x1, FrameTesting.ascii("x"), true, rsv, FrameTesting.maskKey, nil, nil), .protocolError)
            assertFailure(frame(0x9, [], true, rsv, FrameTesting.maskKey, nil, nil), .protocolError)
        }
    }

    func testReservedOpcodesFail() {
        for opcode: UInt8 in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assertFailure(frame(opcode, [], true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
            // Also in the middle of a fragmented message.
            assertFailure(
                frame(0x1, [0x61], false, 0, FrameTesting.maskKey, nil, nil)
                    + frame(opcode, [1, 2], true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        }
    }

    func testSixtyFourBitLengthWithMostSignificantBitFails() {
        let header = frame(0x2, [], true, 0, FrameTesting.maskKey, 0x8000_0000_0000_0000, 8)
        assertFailure(header, .protocolError, max: Int.max)
        assertFailure(frame(0x2, [], true, 0, FrameTesting.maskKey, UInt64.max, 8), .protocolError, max: Int.max)
    }

    func testControlFramePayloadOver125Fails() {
        for opcode: UInt8 in [0x8, 0x9, 0xA] {
            assertFailure(frame(opcode, [UInt8](repeating: 0, count: 126), true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
            // 125 with a 16-bit length field is still ≤ 125 bytes, but the 7-bit field says 126: fail.
            assertFailure(frame(opcode, [UInt8](repeating: 0, count: 125), true, 0, FrameTesting.maskKey, nil, 2), .protocolError)
        }
        XCTAssertEqual(
            events(frame(0x9, [UInt8](repeating: 7, count: 125), true, 0, FrameTesting.maskKey, nil, nil)),
            [.ping([UInt8](repeating: 7, count: 125))])
    }

    func testFragmentedControlFrameFails() {
        for opcode: UInt8 in [0x8, 0x9, 0xA] {
            assertFailure(frame(opcode, [], false, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        }
    }

    func testContinuationWithoutMessageFails() {
        assertFailure(frame(0x0, FrameTesting.ascii("x"), true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        assertFailure(frame(0x0, [], false, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        // After a complete message, too.
        assertFailure(
            frame(0x1, FrameTesting.ascii("a"), true, 0, FrameTesting.maskKey, nil, nil)
                + frame(0x0, FrameTesting.ascii("b"), true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
    }

    func testNewDataFrameDuringFragmentedMessageFails() {
        for opcode: UInt8 in [0x1, 0x2] {
            let start = frame(0x2, [1, 2], false, 0, FrameTesting.maskKey, nil, nil)
            assertFailure(start + frame(opcode, [3], true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
            assertFailure(start + frame(opcode, [3], false, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        }
    }

    // MARK: Message size

    func testMessageTooBigFailsFromTheHeaderAlone() {
        // Only the header of a 70000-byte frame: must fail before any payload arrives.
        let header = Array(frame(0x2, [UInt8](repeating: 0, count: 70_000), true, 0, FrameTesting.maskKey, nil, nil).prefix(14))
        assertFailure(header, .messageTooBig)
        // Byte by byte, the 64-bit length decides before the masking key has arrived.
        var decoder = FrameDecoder()
        let (got, failedChunk) = FrameTesting.decode(FrameTesting.byteAtATime(header), &decoder)
        XCTAssertEqual(got, [.failure(1009)])
        XCTAssertEqual(failedChunk, 9)
        // 7-bit lengths against a small limit.
        assertFailure(
            frame(0x1, FrameTesting.ascii("hello"), true, 0, FrameTesting.maskKey, nil, nil).prefix(2).map { $0 }, .messageTooBig, max: 4)
        XCTAssertEqual(
            events(frame(0x1, FrameTesting.ascii("hell"), true, 0, FrameTesting.maskKey, nil, nil), max: 4),
            [.text(FrameTesting.ascii("hell"))])
    }

    func testMessageTooBigAcrossFragments() {
        let first = frame(0x2, [UInt8](repeating: 1, count: 60), false, 0, FrameTesting.maskKey, nil, nil)
        let second = frame(0x0, [UInt8](repeating: 2, count: 40), false, 0, FrameTesting.maskKey, nil, nil)
        let third = frame(0x0, [UInt8](repeating: 3, count: 1), true, 0, FrameTesting.maskKey, nil, nil)
        // Exactly at the limit: fine. Control frames do not count.
        let ping = frame(0x9, [UInt8](repeating: 9, count: 100), true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(
            events(first + ping + second + frame(0x0, [], true, 0, FrameTesting.maskKey, nil, nil), max: 100),
            [.ping([UInt8](repeating: 9, count: 100)), .binary([UInt8](repeating: 1, count: 60) + [UInt8](repeating: 2, count: 40))])
        // One byte over: fails on the third header.
        assertFailure(first + second + Array(third.prefix(2)), .messageTooBig, max: 100)
    }

    func testLargeMaxMessageSize() {
        let payload = [UInt8](repeating: 0x42, count: 300_000)
        let bytes =
            FrameEncoder.clientFrame(.binary, payload: Array(payload[..<100_000]), maskKey: 1, fin: false)
            + FrameEncoder.clientFrame(.continuation, payload: Array(payload[100_000...]), maskKey: 2)
        XCTAssertEqual(events(bytes, max: 300_000), [.binary(payload)])
        assertSplitsAgree(bytes, max: 300_000, seeds: 0..<2)
    }

    // MARK: Fragmentation

    func testFragmentedTextWithInterleavedControlFrames() {
        let bytes =
            frame(0x1, FrameTesting.ascii("Hel"), false, 0, 0x0101_0101, nil, nil)
            + frame(0x9, FrameTesting.ascii("ping!"), true, 0, 0xDEAD_BEEF, nil, nil)
            + frame(0x0, FrameTesting.ascii("lo, "), false, 0, 0x1234_5678, nil, nil)
            + frame(0xA, FrameTesting.ascii("pong"), true, 0, 0x9ABC_DEF0, nil, nil)
            + frame(0x0, [], false, 0, 0x1111_1111, nil, nil)
            + frame(0x0, FrameTesting.ascii("world"), true, 0, 0x2222_2222, nil, nil)
            + frame(0x2, [0xFF], true, 0, 0x3333_3333, nil, nil)
        XCTAssertEqual(
            events(bytes),
            [
                .ping(FrameTesting.ascii("ping!")), .pong(FrameTesting.ascii("pong")),
                .text(FrameTesting.ascii("Hello, world")), .binary([0xFF]),
            ])
        assertSplitsAgree(bytes, seeds: 0..<200)
    }

    func testCloseInTheMiddleOfAFragmentedMessage() {
        let bytes =
            frame(0x2, [1, 2, 3], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x8, FrameTesting.closePayload(1000, FrameTesting.ascii("bye")), true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(events(bytes), [.close(1000, FrameTesting.ascii("bye"))])
        assertSplitsAgree(bytes)
    }

    func testLargeFragmentedBinaryWithLargeInterleavedPings() {
        var rng = SplitMix(seed: 7)
        var message: [UInt8] = []
        var bytes: [UInt8] = []
        var expected: [Event] = []
        for index in 0..<20 {
            let fragment = (0..<Int.random(in: 0...3000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            message += fragment
            bytes += frame(index == 0 ? 0x2 : 0x0, fragment, index == 19, 0, UInt32.random(in: 0...UInt32.max, using: &rng), nil, nil)
            if index % 3 == 1, index < 19 {
                let ping = (0..<Int.random(in: 0...125, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                bytes += frame(0x9, ping, true, 0, UInt32.random(in: 0...UInt32.max, using: &rng), nil, nil)
                expected.append(.ping(ping))
            }
        }
        expected.append(.binary(message))
        XCTAssertEqual(events(bytes, max: 100_000), expected)
        assertSplitsAgree(bytes, max: 100_000, seeds: 0..<30)
    }

    // MARK: UTF-8

    func testInvalidUTF8TextFails() {
        assertFailure(frame(0x1, [0x61, 0xC0, 0x80], true, 0, FrameTesting.maskKey, nil, nil), .invalidPayload)
        assertFailure(frame(0x1, [0xED, 0xA0, 0x80], true, 0, FrameTesting.maskKey, nil, nil), .invalidPayload)
        assertFailure(frame(0x1, [0xF4, 0x90, 0x80, 0x80], true, 0, FrameTesting.maskKey, nil, nil), .invalidPayload)
        // Binary is not validated.
        XCTAssertEqual(events(frame(0x2, [0xC0, 0x80], true, 0, FrameTesting.maskKey, nil, nil)), [.binary([0xC0, 0x80])])
    }

    func testInvalidUTF8FailsBeforeTheFrameIsComplete() {
        // A 100-byte text frame whose 10th byte is invalid; only 12 payload bytes ever arrive.
        var payload = [UInt8](repeating: 0x61, count: 100)
        payload[9] = 0xFF
        let partial = Array(frame(0x1, payload, true, 0, FrameTesting.maskKey, nil, nil).prefix(6 + 12))
        assertFailure(partial, .invalidPayload)
        var decoder = FrameDecoder()
        let (got, failedChunk) = FrameTesting.decode(FrameTesting.byteAtATime(partial), &decoder)
        XCTAssertEqual(got, [.failure(1007)])
        XCTAssertEqual(failedChunk, 6 + 9, "fails on the invalid byte itself")
    }

    func testInvalidUTF8FailsInAnUnfinishedFragmentedMessage() {
        // "κόσμε" then a surrogate, split over fragments; the message never finishes.
        let bytes =
            frame(0x1, [0xCE, 0xBA, 0xE1], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x0, [0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x0, [0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64], false, 0, FrameTesting.maskKey, nil, nil)
        assertFailure(bytes, .invalidPayload)
    }

    func testCodePointSplitAcrossFragmentsIsValid() {
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        let bytes =
            frame(0x1, [euro[0]], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x0, [euro[1]], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x9, [], true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x0, [euro[2]], true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(events(bytes), [.ping([]), .text(euro)])
        assertSplitsAgree(bytes)
    }

    func testIncompleteCodePointAtEndOfMessageFails() {
        assertFailure(frame(0x1, [0x61, 0xE2, 0x82], true, 0, FrameTesting.maskKey, nil, nil), .invalidPayload)
        assertFailure(
            frame(0x1, [0x61, 0xE2], false, 0, FrameTesting.maskKey, nil, nil)
                + frame(0x0, [0x82], true, 0, FrameTesting.maskKey, nil, nil), .invalidPayload)
        // The frame ends on an incomplete code point, but the message is not over: fine so far.
        XCTAssertEqual(events(frame(0x1, [0xF0, 0x9F], false, 0, FrameTesting.maskKey, nil, nil)), [])
    }

    func testTextValidationRestartsForEachMessage() {
        let bytes =
            frame(0x1, [0xE2], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x0, [0x82, 0xAC], true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x1, [0x41], true, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x1, [0x42], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x0, [0x43], true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(events(bytes), [.text([0xE2, 0x82, 0xAC]), .text([0x41]), .text([0x42, 0x43])])
        assertSplitsAgree(bytes)
    }

    // MARK: Close frames

    func testCloseFrames() {
        XCTAssertEqual(events(frame(0x8, [], true, 0, FrameTesting.maskKey, nil, nil)), [.close(nil, [])])
        XCTAssertEqual(events(frame(0x8, FrameTesting.closePayload(1000), true, 0, FrameTesting.maskKey, nil, nil)), [.close(1000, [])])
        let reason = Array("Tschüß 👋".utf8)
        let bytes = frame(0x8, FrameTesting.closePayload(4999, reason), true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(events(bytes), [.close(4999, reason)])
        assertSplitsAgree(bytes)
    }

    func testCloseWithOneBytePayloadFails() {
        assertFailure(frame(0x8, [0x03], true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        // Detected from the header alone.
        assertFailure(Array(frame(0x8, [0x03], true, 0, FrameTesting.maskKey, nil, nil).prefix(2)), .protocolError)
    }

    func testCloseCodesOnTheWire() {
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            XCTAssertEqual(
                events(frame(0x8, FrameTesting.closePayload(code), true, 0, FrameTesting.maskKey, nil, nil)), [.close(code, [])], "\(code)")
        }
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assertFailure(frame(0x8, FrameTesting.closePayload(code), true, 0, FrameTesting.maskKey, nil, nil), .protocolError)
        }
    }

    func testCloseReasonMustBeUTF8() {
        assertFailure(
            frame(0x8, FrameTesting.closePayload(1000, [0x61, 0xCE, 0xBA, 0xED, 0xA0, 0x80]), true, 0, FrameTesting.maskKey, nil, nil),
            .invalidPayload)
        assertFailure(frame(0x8, FrameTesting.closePayload(1000, [0xCE]), true, 0, FrameTesting.maskKey, nil, nil), .invalidPayload)
        // A close interleaved in a text message does not disturb the message's validator and vice versa.
        let bytes =
            frame(0x1, [0xCE], false, 0, FrameTesting.maskKey, nil, nil)
            + frame(0x8, FrameTesting.closePayload(1000, [0xCE, 0xBA]), true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(events(bytes), [.close(1000, [0xCE, 0xBA])])
    }

    // MARK: State and memory

    func testFailureIsSticky() {
        var decoder = FrameDecoder()
        let bad = frame(0x3, [], true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(FrameTesting.decode([bad], &decoder).events, [.failure(1002)])
        let good = FrameEncoder.clientFrame(.text, payload: FrameTesting.ascii("ok"), maskKey: 5)
        XCTAssertEqual(FrameTesting.decode([good], &decoder).events, [.failure(1002)])
        var consumed = 0
        guard case .failure(.protocolError) = decoder.next(UnsafeMutableRawBufferPointer(start: nil, count: 0), consumed: &consumed) else {
            return XCTFail("expected the same failure")
        }
        XCTAssertEqual(decoder.bufferedBytes, 0)
        decoder.reset()
        XCTAssertEqual(FrameTesting.decode([good], &decoder).events, [.text(FrameTesting.ascii("ok"))])
    }

    func testStorageIsReleasedWhenIdle() {
        var decoder = FrameDecoder()
        let whole = FrameEncoder.clientFrame(.binary, payload: [UInt8](repeating: 1, count: 1000), maskKey: 9)
        // Split: the first half is buffered.
        XCTAssertEqual(FrameTesting.decode([Array(whole[..<500])], &decoder).events, [])
        XCTAssertTrue(decoder.hasPartialData)
        XCTAssertGreaterThan(decoder.bufferedBytes, 0)
        XCTAssertLessThanOrEqual(decoder.bufferedBytes, 1000)
        XCTAssertEqual(FrameTesting.decode([Array(whole[500...])], &decoder).events, [.binary([UInt8](repeating: 1, count: 1000))])
        XCTAssertFalse(decoder.hasPartialData)
        XCTAssertEqual(decoder.bufferedBytes, 0, "storage released by the needMoreData that ends the call sequence")

        // Partial header only: partial data but no heap.
        XCTAssertEqual(FrameTesting.decode([Array(whole[..<3])], &decoder).events, [])
        XCTAssertTrue(decoder.hasPartialData)
        XCTAssertEqual(decoder.bufferedBytes, 0)
        XCTAssertEqual(FrameTesting.decode([Array(whole[3...])], &decoder).events, [.binary([UInt8](repeating: 1, count: 1000))])

        // A fragmented message in progress holds storage; a split ping alone is released afterwards.
        let fragment = frame(0x2, [1, 2, 3], false, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(FrameTesting.decode([fragment], &decoder).events, [])
        XCTAssertTrue(decoder.hasPartialData)
        XCTAssertGreaterThan(decoder.bufferedBytes, 0)
        XCTAssertEqual(
            FrameTesting.decode([frame(0x0, [4], true, 0, FrameTesting.maskKey, nil, nil)], &decoder).events, [.binary([1, 2, 3, 4])])
        XCTAssertEqual(decoder.bufferedBytes, 0)
        let ping = frame(0x9, [7, 7, 7], true, 0, FrameTesting.maskKey, nil, nil)
        XCTAssertEqual(FrameTesting.decode([Array(ping[..<7]), Array(ping[7...])], &decoder).events, [.ping([7, 7, 7])])
        XCTAssertEqual(decoder.bufferedBytes, 0)
        XCTAssertFalse(decoder.hasPartialData)
    }

    func testManySmallFragmentsGrowStorageGeometrically() {
        var decoder = FrameDecoder(maxMessageSize: 1 << 20)
        var capacities: Set<Int> = []
        var expected: [UInt8] = []
        for index in 0..<20_000 {
            let byte = UInt8(truncatingIfNeeded: index)
            expected.append(byte)
            let bytes = frame(index == 0 ? 0x2 : 0x0, [byte], index == 19_999, 0, UInt32(index), nil, nil)
            let got = FrameTesting.decode([bytes], &decoder).events
            if index < 19_999 {
                XCTAssertEqual(got, [])
                capacities.insert(decoder.bufferedBytes)
                XCTAssertLessThanOrEqual(decoder.bufferedBytes, max(256, 2 * (index + 1)))
            } else {
                XCTAssertEqual(got, [.binary(expected)])
            }
        }
        XCTAssertLessThanOrEqual(capacities.count, 8, "reallocations: \(capacities.sorted())")
        XCTAssertEqual(decoder.bufferedBytes, 0)
    }

    func testSingleSplitFrameStorageIsBoundedByTheFrame() {
        var decoder = FrameDecoder(maxMessageSize: 1 << 20)
        let whole = FrameEncoder.clientFrame(.binary, payload: [UInt8](repeating: 3, count: 5000), maskKey: 1)
        var chunks: [[UInt8]] = []
        var start = 0
        while start < whole.count {
            chunks.append(Array(whole[start..<min(whole.count, start + 700)]))
            start += 700
        }
        var peak = 0
        for (index, chunk) in chunks.enumerated() {
            let got = FrameTesting.decode([chunk], &decoder).events
            if index < chunks.count - 1 {
                XCTAssertEqual(got, [])
                peak = max(peak, decoder.bufferedBytes)
            } else {
                XCTAssertEqual(got, [.binary([UInt8](repeating: 3, count: 5000))])
            }
        }
        XCTAssertLessThanOrEqual(peak, 5000, "never more than the frame needs")
    }

    func testCopiedDecoderDoesNotShareStorage() {
        var original = FrameDecoder()
        XCTAssertEqual(FrameTesting.decode([frame(0x2, [1, 2], false, 0, FrameTesting.maskKey, nil, nil)], &original).events, [])
        var copy = original
        XCTAssertEqual(FrameTesting.decode([frame(0x0, [3], true, 0, FrameTesting.maskKey, nil, nil)], &copy).events, [.binary([1, 2, 3])])
        XCTAssertEqual(
            FrameTesting.decode([frame(0x0, [9, 9], true, 0, FrameTesting.maskKey, nil, nil)], &original).events, [.binary([1, 2, 9, 9])])
    }

    func testClientRoleDecodesServerFramesIncludingClose() {
        var bytes: [UInt8] = []
        for shared in [
            Array("héllo".utf8).withUnsafeBytes { FrameEncoder.serverFrame(.text, payload: $0) },
            FrameEncoder.closeFrame(.goingAway, reason: "restart"),
        ] {
            bytes += shared.withBytes { Array($0) }
        }
        XCTAssertEqual(events(bytes, role: .client), [.text(Array("héllo".utf8)), .close(1001, FrameTesting.ascii("restart"))])
        assertSplitsAgree(bytes, role: .client)
    }

    // MARK: Randomized corpus

    /// Valid and invalid streams, each decoded whole, byte at a time and split at random points.
    func testRandomizedSplitsOfMixedStreams() {
        let k = FrameTesting.maskKey
        let f = FrameTesting.frame
        let streams: [(bytes: [UInt8], last: Event)] = [
            (f(0x1, FrameTesting.ascii("abc"), true, 0, k, nil, nil), .text(FrameTesting.ascii("abc"))),
            (
                f(0x1, FrameTesting.ascii("a"), false, 0, k, nil, nil) + f(0xA, [1], true, 0, k, nil, nil)
                    + f(0x0, [0xC3, 0xA9], true, 0, k, nil, nil),
                .text([0x61, 0xC3, 0xA9])
            ),
            (f(0x2, [UInt8](repeating: 5, count: 300), true, 0, k, nil, nil), .binary([UInt8](repeating: 5, count: 300))),
            (
                f(0x2, [UInt8](repeating: 5, count: 300), true, 0, k, nil, nil) + f(0x1, [0xE0, 0x80, 0x80], true, 0, k, nil, nil),
                .failure(1007)
            ),
            (
                f(0x1, [UInt8](repeating: 0x61, count: 200) + [0xF5] + [UInt8](repeating: 0x61, count: 200), true, 0, k, nil, nil),
                .failure(1007)
            ),
            (
                f(0x1, [UInt8](repeating: 0x61, count: 200), false, 0, k, nil, nil) + f(0x9, [1, 2], true, 0, k, nil, nil)
                    + f(0x0, [0xC2], true, 0, k, nil, nil), .failure(1007)
            ),
            (f(0x9, [], false, 0, k, nil, nil), .failure(1002)),
            (f(0x2, [1], true, 2, k, nil, nil), .failure(1002)),
            (f(0x2, [1], true, 0, nil, nil, nil), .failure(1002)),
            (f(0x0, [1], true, 0, k, nil, nil), .failure(1002)),
            (f(0x2, [1], false, 0, k, nil, nil) + f(0x1, [1], true, 0, k, nil, nil), .failure(1002)),
            (f(0x2, [], true, 0, k, 1 << 63, 8), .failure(1002)),
            (f(0x2, [], true, 0, k, 65537, 8), .failure(1009)),
            (f(0x2, [], true, 0, k, 70_000, 8).prefix(10).map { $0 }, .failure(1009)),
            (f(0x8, [3], true, 0, k, nil, nil), .failure(1002)),
            (f(0x8, FrameTesting.closePayload(1005), true, 0, k, nil, nil), .failure(1002)),
            (f(0x8, FrameTesting.closePayload(1000, [0xFF]), true, 0, k, nil, nil), .failure(1007)),
            (
                f(0x8, FrameTesting.closePayload(3000, FrameTesting.ascii("done")), true, 0, k, nil, nil),
                .close(3000, FrameTesting.ascii("done"))
            ),
            (f(0xA, [UInt8](repeating: 1, count: 126), true, 0, k, nil, nil), .failure(1002)),
            (f(0xB, [], true, 0, k, nil, nil), .failure(1002)),
        ]
        for (index, stream) in streams.enumerated() {
            // Prefix each stream with some traffic so failures happen mid-buffer.
            let bytes = f(0x2, [UInt8](repeating: 0xAB, count: 130), true, 0, 0x0BAD_F00D, nil, nil) + stream.bytes
            let got = events(bytes)
            XCTAssertEqual(got.first, .binary([UInt8](repeating: 0xAB, count: 130)), "stream \(index)")
            XCTAssertEqual(got.last, stream.last, "stream \(index): \(got)")
            assertSplitsAgree(bytes, seeds: 0..<100)
        }
    }
}
