import CSystem

/// Incremental RESP2 reply parser over hiredis' `redisReader` (hiredis is used only as a codec).
/// Feed bytes as they arrive in any split; ``next()`` returns each complete reply in order.
/// After a protocol error the reader stays failed: drop it with the connection.
public struct RESPReader: ~Copyable {
    private let reader: UnsafeMutablePointer<redisReader>

    /// The most elements one array reply may announce. hiredis 0.14 (Debian 12) allocates an
    /// array's element table as soon as it reads the header, so `*1111111112` asked for 8.9 GB
    /// (found by `Fuzz/resp`); a longer array now fails the reader instead. 4 Mi elements is far
    /// above any reply presenced asks for (presence lists and stream reads are bounded by COUNT).
    public static let maxArrayElements = 1 << 22

    /// The most bytes to feed before draining replies: hiredis moves the unread rest of its
    /// buffer to the front after every reply once 1 KiB has been consumed.
    public static let feedSlice = 2048

    /// A reader with an empty buffer that refuses arrays longer than `maxArrayElements`.
    public init(maxArrayElements: Int = RESPReader.maxArrayElements) {
        guard let reader = redisReaderCreate() else { fatalError("redisReaderCreate: out of memory") }
        reader.pointee.fn = boundedReplyFunctions
        // hiredis hands the reader's privdata to every read task: the bound travels there.
        reader.pointee.privdata = UnsafeMutableRawPointer(bitPattern: max(1, maxArrayElements))
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
        if reader.pointee.err == REDIS_ERR_OOM { return "reply too large or out of memory" }
        return withUnsafeBytes(of: &reader.pointee.errstr) { raw in
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

/// hiredis' own reply constructors, taken from a fresh reader.
private let defaultReplyFunctions: redisReplyObjectFunctions = {
    guard let reader = redisReaderCreate() else { fatalError("redisReaderCreate: out of memory") }
    defer { redisReaderFree(reader) }
    return reader.pointee.fn.pointee
}()

/// hiredis' constructors with arrays longer than the reader's bound (its privdata) refused (a nil
/// object is hiredis' out-of-memory error, which fails the reader).
nonisolated(unsafe) private let boundedReplyFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
    var functions = defaultReplyFunctions
    functions.createArray = { task, elements in
        let bound = task.flatMap { Int(bitPattern: $0.pointee.privdata) } ?? RESPReader.maxArrayElements
        guard Int(elements) <= bound else { return nil }
        return defaultReplyFunctions.createArray!(task, elements)
    }
    let table = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    table.initialize(to: functions)
    return table
}()
