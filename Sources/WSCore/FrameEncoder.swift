/// Frame encoding. Server frames are unmasked; client frames are masked.
///
/// Mask keys are `UInt32` in network byte order: the key's most significant byte is the first key byte
/// on the wire.
public enum FrameEncoder {
    /// Bytes of the frame header for a payload of this length.
    public static func headerSize(payloadLength: Int, masked: Bool) -> Int {
        precondition(payloadLength >= 0, "FrameEncoder: negative payload length")
        let lengthBytes = payloadLength < 126 ? 0 : (payloadLength <= 0xFFFF ? 2 : 8)
        return 2 + lengthBytes + (masked ? 4 : 0)
    }

    /// Writes a frame header at `into`; returns bytes written (`headerSize(payloadLength:masked:)`).
    /// RSV bits are zero. With a `maskKey` the mask bit is set and the key follows the length.
    public static func writeHeader(
        opcode: WebSocketOpcode, fin: Bool, payloadLength: Int, maskKey: UInt32?, into: UnsafeMutableRawPointer
    ) -> Int {
        precondition(payloadLength >= 0, "FrameEncoder: negative payload length")
        into.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var offset: Int
        if payloadLength < 126 {
            into.storeBytes(of: maskBit | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            offset = 2
        } else if payloadLength <= 0xFFFF {
            into.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            into.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            offset = 4
        } else {
            into.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            into.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
            offset = 10
        }
        if let maskKey {
            into.storeBytes(of: maskKey.bigEndian, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }
        return offset
    }

    /// One unmasked server frame (FIN set) in one allocation, ready to be shared by many connections.
    public static func serverFrame(_ opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) -> SharedBytes {
        serverFrame(opcode, payloadLength: payload.count) { destination in
            if let source = payload.baseAddress, payload.count > 0 {
                destination.baseAddress!.copyMemory(from: source, byteCount: payload.count)
            }
        }
    }

    /// Same, but the payload is serialized straight into the frame (payloadLength exactly known up front):
    /// `writePayload` must fill the whole buffer it is given.
    public static func serverFrame(
        _ opcode: WebSocketOpcode, payloadLength: Int, writePayload: (UnsafeMutableRawBufferPointer) -> Void
    ) -> SharedBytes {
        let header = headerSize(payloadLength: payloadLength, masked: false)
        return SharedBytes.make(count: header + payloadLength) { frame in
            let base = frame.baseAddress!
            _ = writeHeader(opcode: opcode, fin: true, payloadLength: payloadLength, maskKey: nil, into: base)
            writePayload(UnsafeMutableRawBufferPointer(start: base + header, count: payloadLength))
        }
    }

    /// A close frame with code and UTF-8 reason (reason truncated to fit 125 bytes on a character boundary).
    /// Codes that may not be sent (`CloseCode.isValidOnWire` false, e.g. 1005 and 1006) give an empty close frame.
    public static func closeFrame(_ code: CloseCode, reason: String = "") -> SharedBytes {
        guard CloseCode.isValidOnWire(code.rawValue) else {
            return serverFrame(.close, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        var reason = reason
        let kept = truncatedUTF8Count(reason, limit: 123)
        return reason.withUTF8 { utf8 in
            serverFrame(.close, payloadLength: 2 + kept) { payload in
                payload.storeBytes(of: code.rawValue.bigEndian, as: UInt16.self)
                if kept > 0 {
                    (payload.baseAddress! + 2).copyMemory(from: utf8.baseAddress!, byteCount: kept)
                }
            }
        }
    }

    /// A masked client frame (for tests and the benchmark client).
    public static func clientFrame(_ opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, maskKey: UInt32, fin: Bool = true) -> [UInt8]
    {
        let header = headerSize(payloadLength: payload.count, masked: true)
        return [UInt8](unsafeUninitializedCapacity: header + payload.count) { frame, initialized in
            let base = UnsafeMutableRawPointer(frame.baseAddress!)
            _ = writeHeader(opcode: opcode, fin: fin, payloadLength: payload.count, maskKey: maskKey, into: base)
            if let source = payload.baseAddress, payload.count > 0 {
                Masking.apply(key: Masking.key(networkOrder: maskKey), offset: 0, from: source, to: base + header, count: payload.count)
            }
            initialized = header + payload.count
        }
    }

    /// A masked client frame from an array payload.
    public static func clientFrame(_ opcode: WebSocketOpcode, payload: [UInt8], maskKey: UInt32, fin: Bool = true) -> [UInt8] {
        payload.withUnsafeBytes { clientFrame(opcode, payload: $0, maskKey: maskKey, fin: fin) }
    }

    /// UTF-8 byte count of the longest prefix of `text` made of whole characters that fits in `limit` bytes.
    private static func truncatedUTF8Count(_ text: String, limit: Int) -> Int {
        let utf8 = text.utf8
        if utf8.count <= limit { return utf8.count }
        var kept = 0
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(after: index)
            let end = utf8.distance(from: utf8.startIndex, to: next)
            if end > limit { break }
            kept = end
            index = next
        }
        return kept
    }
}
