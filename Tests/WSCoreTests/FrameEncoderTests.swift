import TestSupport
import XCTest

@testable import WSCore

final class FrameEncoderTests: XCTestCase {
    private func bytes(_ shared: SharedBytes) -> [UInt8] {
        shared.withBytes { Array($0) }
    }

    private func serverFrame(_ opcode: WebSocketOpcode, _ payload: [UInt8]) -> [UInt8] {
        bytes(payload.withUnsafeBytes { FrameEncoder.serverFrame(opcode, payload: $0) })
    }

    func testHeaderSize() {
        let cases: [(Int, Int, Int)] = [(0, 2, 6), (125, 2, 6), (126, 4, 8), (65535, 4, 8), (65536, 10, 14), (1 << 40, 10, 14)]
        for (length, unmasked, masked) in cases {
            XCTAssertEqual(FrameEncoder.headerSize(payloadLength: length, masked: false), unmasked, "\(length)")
            XCTAssertEqual(FrameEncoder.headerSize(payloadLength: length, masked: true), masked, "\(length)")
        }
    }

    func testWriteHeader() {
        func header(_ opcode: WebSocketOpcode, fin: Bool, length: Int, key: UInt32?) -> [UInt8] {
            var out = [UInt8](repeating: 0xEE, count: 16)
            let written = out.withUnsafeMutableBytes {
                FrameEncoder.writeHeader(opcode: opcode, fin: fin, payloadLength: length, maskKey: key, into: $0.baseAddress!)
            }
            XCTAssertEqual(written, FrameEncoder.headerSize(payloadLength: length, masked: key != nil))
            return Array(out[..<written])
        }
        XCTAssertEqual(header(.text, fin: true, length: 5, key: nil), [0x81, 0x05])
        XCTAssertEqual(header(.continuation, fin: false, length: 0, key: nil), [0x00, 0x00])
        XCTAssertEqual(header(.binary, fin: true, length: 125, key: nil), [0x82, 125])
        XCTAssertEqual(header(.binary, fin: true, length: 126, key: nil), [0x82, 126, 0x00, 126])
        XCTAssertEqual(header(.binary, fin: true, length: 256, key: 0x37FA_213D), [0x82, 0xFE, 0x01, 0x00, 0x37, 0xFA, 0x21, 0x3D])
        XCTAssertEqual(header(.binary, fin: true, length: 65535, key: nil), [0x82, 126, 0xFF, 0xFF])
        XCTAssertEqual(header(.binary, fin: true, length: 65536, key: nil), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])
        XCTAssertEqual(header(.ping, fin: true, length: 0, key: 0x0102_0304), [0x89, 0x80, 1, 2, 3, 4])
    }

    /// RFC 6455 §5.7 examples.
    func testRFCExamples() {
        XCTAssertEqual(serverFrame(.text, Array("Hello".utf8)), [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        XCTAssertEqual(
            FrameEncoder.clientFrame(.text, payload: Array("Hello".utf8), maskKey: 0x37FA_213D),
            [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        XCTAssertEqual(FrameEncoder.clientFrame(.text, payload: Array("Hel".utf8), maskKey: 0x37FA_213D, fin: false)[0], 0x01)
        XCTAssertEqual(serverFrame(.ping, Array("Hello".utf8)), [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        let large = serverFrame(.binary, [UInt8](repeating: 0, count: 256))
        XCTAssertEqual(Array(large[..<4]), [0x82, 0x7E, 0x01, 0x00])
        XCTAssertEqual(large.count, 260)
        let huge = serverFrame(.binary, [UInt8](repeating: 0, count: 65536))
        XCTAssertEqual(Array(huge[..<10]), [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    }

    func testServerFrameWithWriterMatchesCopyingVersion() {
        for length in [0, 1, 125, 126, 65535, 65536, 100_000] {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let written = FrameEncoder.serverFrame(.binary, payloadLength: length) { destination in
                XCTAssertEqual(destination.count, length)
                for i in 0..<length { destination[i] = UInt8(truncatingIfNeeded: i &* 7) }
            }
            XCTAssertEqual(bytes(written), serverFrame(.binary, payload), "\(length)")
            XCTAssertEqual(written.count, FrameEncoder.headerSize(payloadLength: length, masked: false) + length)
        }
    }

    func testCloseFrame() {
        XCTAssertEqual(bytes(FrameEncoder.closeFrame(.normal)), [0x88, 0x02, 0x03, 0xE8])
        XCTAssertEqual(bytes(FrameEncoder.closeFrame(.slowConsumer, reason: "slow")), [0x88, 0x06, 0x0F, 0xA8] + Array("slow".utf8))
        XCTAssertEqual(bytes(FrameEncoder.closeFrame(.noStatusReceived)), [0x88, 0x00])
        XCTAssertEqual(bytes(FrameEncoder.closeFrame(.abnormalClosure, reason: "x")), [0x88, 0x00])
    }

    func testCloseReasonIsTruncatedOnACharacterBoundary() {
        let cases: [(String, Int)] = [
            (String(repeating: "a", count: 200), 123),
            (String(repeating: "a", count: 123), 123),
            (String(repeating: "é", count: 100), 122),  // 2 bytes each
            (String(repeating: "€", count: 50), 123),  // 3 bytes each: 41 fit
            ("a" + String(repeating: "€", count: 50), 121),  // 1 + 40 × 3
            (String(repeating: "👍🏽", count: 30), 120),  // 8-byte grapheme clusters: 15 fit
            ("e" + String(repeating: "\u{301}", count: 100), 0),  // one 201-byte character: nothing fits
        ]
        for (reason, expected) in cases {
            let frame = bytes(FrameEncoder.closeFrame(.policyViolation, reason: reason))
            XCTAssertEqual(Int(frame[1]), 2 + expected, "\(reason.prefix(3))…")
            XCTAssertLessThanOrEqual(frame.count - 2, 125)
            let kept = Array(frame[4...])
            XCTAssertTrue(kept.withUnsafeBytes { UTF8Validator.isValid($0) })
            XCTAssertTrue(reason.utf8.starts(with: kept))
            if expected > 0 {
                XCTAssertTrue(reason.hasPrefix(String(decoding: kept, as: UTF8.self)), "whole characters only")
            }
            XCTAssertEqual(FrameTesting.decode(frame, role: .client), [.close(1008, kept)])
        }
    }

    func testClientFramesDecodeForEveryLengthAndKey() {
        var rng = SplitMix(seed: 42)
        for length in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 125, 126, 127, 1000, 65535, 65536, 100_000] {
            let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let key = UInt32.random(in: 0...UInt32.max, using: &rng)
            let frame = FrameEncoder.clientFrame(.binary, payload: payload, maskKey: key)
            XCTAssertEqual(frame.count, FrameEncoder.headerSize(payloadLength: length, masked: true) + length)
            XCTAssertEqual(FrameTesting.frame(opcode: 0x2, payload: payload, mask: key), frame, "independent encoding, length \(length)")
            XCTAssertEqual(FrameTesting.decode(frame, role: .server, maxMessageSize: 100_000), [.binary(payload)], "length \(length)")
            let server = serverFrame(.binary, payload)
            XCTAssertEqual(FrameTesting.decode(server, role: .client, maxMessageSize: 100_000), [.binary(payload)], "length \(length)")
        }
    }

    func testMaskingMatchesNaiveXORAtEveryOffset() {
        var rng = SplitMix(seed: 3)
        for _ in 0..<20 {
            let wireKey = UInt32.random(in: 0...UInt32.max, using: &rng)
            let keyBytes = [UInt8(wireKey >> 24), UInt8(wireKey >> 16 & 0xFF), UInt8(wireKey >> 8 & 0xFF), UInt8(wireKey & 0xFF)]
            let key = Masking.key(networkOrder: wireKey)
            XCTAssertEqual(keyBytes.withUnsafeBytes { Masking.key(wireBytesAt: $0.baseAddress!) }, key)
            for count in 0..<80 {
                for offset in 0..<4 {
                    let input = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    let expected = input.enumerated().map { $0.element ^ keyBytes[($0.offset + offset) % 4] }
                    // Out of place, at an odd (unaligned) destination.
                    var output = [UInt8](repeating: 0, count: count + 1)
                    let next = input.withUnsafeBytes { source in
                        output.withUnsafeMutableBytes { destination in
                            Masking.apply(
                                key: key, offset: offset, from: source.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!,
                                to: destination.baseAddress! + 1, count: count)
                        }
                    }
                    XCTAssertEqual(Array(output[1...]), expected, "count \(count) offset \(offset)")
                    XCTAssertEqual(next, (offset + count) % 4)
                    // In place.
                    var inPlace = input
                    if count > 0 {
                        _ = inPlace.withUnsafeMutableBytes {
                            Masking.apply(key: key, offset: offset, from: $0.baseAddress!, to: $0.baseAddress!, count: count)
                        }
                    }
                    XCTAssertEqual(inPlace, expected)
                }
            }
        }
    }

    func testOpcodes() {
        XCTAssertFalse(WebSocketOpcode.continuation.isControl)
        XCTAssertFalse(WebSocketOpcode.text.isControl)
        XCTAssertFalse(WebSocketOpcode.binary.isControl)
        XCTAssertTrue(WebSocketOpcode.close.isControl)
        XCTAssertTrue(WebSocketOpcode.ping.isControl)
        XCTAssertTrue(WebSocketOpcode.pong.isControl)
        for raw: UInt8 in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] { XCTAssertNil(WebSocketOpcode(rawValue: raw)) }
    }
}
