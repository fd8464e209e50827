import CSystem

/// Incremental RESP2 reply parser over hiredis' `redisReader` (hiredis is used only as a codec).
/// Feed bytes as they arrive in any split; ``next()`` returns each complete reply in order.
/// After a protocol error the reader stays failed: drop it with the connection.
public struct RESPReader: ~Copyable {
    private let reader: UnsafeMutablePointer<redisReader>

    /// A reader with an empty buffer.
    public init() {
        guard let reader = redisReaderCreate() else { fatalError("redisReaderCreate: out of memory") }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// Appends bytes received from the server (copied into the reader's buffer).
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        // A failure here (reader already failed, or out of memory) surfaces from `next()`.
        _ = redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
    }

    /// Appends bytes received from the server.
    public func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// The next complete reply, or nil when more bytes are needed.
    /// Throws ``RedisError/protocolError(_:)`` on input that is not RESP.
    public func next() throws(RedisError) -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK {
            throw RedisError.protocolError(errorText())
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return Self.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    private func errorText() -> String {
        withUnsafeBytes(of: &reader.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "invalid RESP" : String(decoding: bytes, as: UTF8.self)
        }
    }

    private static func value(of reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulk(bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .simple(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] { elements.append(value(of: element)) } else { elements.append(.null) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func bytes(_ str: UnsafeMutablePointer<CChar>?, _ len: Int) -> [UInt8] {
        guard let str, len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: str, count: len))
    }
}
