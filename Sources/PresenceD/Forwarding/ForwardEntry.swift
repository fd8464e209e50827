import Glibc

/// One chat message waiting to be forwarded to chat-service (CONTRACT §7): the REST fields of
/// proto `ChatMessage` plus what the forward request carries (`X-Request-ID`, `traceparent`)
/// and how many delivery attempts have failed so far.
struct ForwardEntry: Equatable, Hashable, Sendable {
    /// UUIDv7 message id; also the `Idempotency-Key` (a redelivery is harmless).
    var id: String
    var channel: String
    var sender: String
    var content: String
    /// ISO-8601 UTC with milliseconds (`2026-11-28T10:24:41.123Z`), as sent to clients.
    var createdAt: String
    /// `X-Request-ID` of the forward (the WebSocket upgrade's request id); may be empty.
    var requestID: String
    /// W3C `traceparent` to send; may be empty.
    var traceParent: String
    /// Delivery attempts answered 5xx so far (``ForwardQueue/recordAttempt(_:_:)`` adds one): what
    /// `FORWARD_MAX_ATTEMPTS` counts. Timeouts, connection errors, 408 and 429 are not counted.
    var attempts: Int

    init(id: String, channel: String, sender: String, content: String, createdAt: String,
         requestID: String = "", traceParent: String = "", attempts: Int = 0) {
        self.id = id
        self.channel = channel
        self.sender = sender
        self.content = content
        self.createdAt = createdAt
        self.requestID = requestID
        self.traceParent = traceParent
        self.attempts = attempts
    }

    /// Stands in for an entry no longer kept (its strings released).
    static let removed = ForwardEntry(id: "", channel: "", sender: "", content: "", createdAt: "")
}

/// An entry that will not be retried on its own: chat-service refused it for good (a 4xx other
/// than 408/409/429), or answered 5xx to it `FORWARD_MAX_ATTEMPTS` times. An operator lists
/// these and moves them back (`presenced dead-letters`).
struct DeadLetter: Equatable, Sendable {
    /// The entry as it was when it died (`attempts` included).
    var entry: ForwardEntry
    /// Why (e.g. `chat-service answered 422`).
    var reason: String
    /// When it was moved, Unix milliseconds.
    var atMillis: Int64

    /// `atMillis` as ISO-8601 UTC.
    var at: String { Timestamp.iso8601(seconds: Int(atMillis / 1000), millis: Int(atMillis % 1000)) }
}

/// Why a queue operation failed.
enum ForwardQueueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The configured bound (entries or bytes) is reached: refuse the message (`unavailable`),
    /// never drop it silently.
    case full
    /// The disk refused (ENOSPC, EIO, …) or the data is not a queue; the text says which file.
    case io(String)
    /// Redis cannot be reached right now (not connected, timeout, connection lost).
    case unavailable

    var description: String {
        switch self {
        case .full: return "forward queue full"
        case .io(let message): return "forward queue: \(message)"
        case .unavailable: return "forward queue unavailable (Redis unreachable)"
        }
    }
}

/// Numbers for `/metrics`.
struct ForwardQueueStats: Equatable, Sendable {
    /// Entries waiting (embedded: this queue's; Redis: the whole stream's, every instance's —
    /// report it from one loop only).
    var depth: Int
    /// Bytes on disk of the queue log (embedded); nil in Redis mode.
    var bytes: Int?
    /// `createdAt` of the oldest waiting entry (embedded: oldest in append order; Redis: the
    /// first entry of the stream).
    var oldestCreatedAt: String?
    /// Dead letters kept (embedded: this queue's; Redis: the whole dead-letter stream).
    var deadLetters: Int

    /// Age of the oldest entry in milliseconds at `nowMillis` (Unix), or 0.
    func oldestAgeMillis(nowMillis: Int64) -> Int64 {
        guard let oldest = oldestCreatedAt.flatMap(Timestamp.parseISO8601) else { return 0 }
        return max(0, nowMillis - oldest)
    }
}

/// The durable queue between accepting a chat message and forwarding it, the same for both modes
/// (``FileForwardQueue`` in embedded mode, ``RedisStreamForwardQueue`` in Redis mode), so the
/// forwarder is written once.
///
/// Thread rule: one queue object belongs to one event loop; every call and every completion
/// happens on that loop's thread. Completions of ``FileForwardQueue`` run before the call
/// returns (its batched appends' at ``endTurn()``); those of ``RedisStreamForwardQueue`` later,
/// from the loop.
///
/// Order: ``peek(limit:excluding:oneEntryPerChannel:_:)`` hands out the oldest unacknowledged
/// entries in queue order. Keeping one channel's messages in order is the forwarder's part:
/// at most one entry of a channel in flight (pass busy or backing-off channels in `excluding`).
protocol ForwardQueue: AnyObject {
    /// Stores `entry` durably before it is fanned out: `.full` at the bound (answer the sender
    /// `unavailable`), `.unavailable` when Redis is down, `.io` when the disk fails.
    func append(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// Up to `limit` of the oldest entries not yet acknowledged, in queue order, skipping
    /// entries of `excluding` channels; with `oneEntryPerChannel` only each channel's oldest.
    /// The same entries come back until acknowledged or dead-lettered.
    func peek(limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool,
              _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void)
    /// Delivered (2xx or 409): removes it for good. Unknown ids are ignored.
    func acknowledge(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// One more attempt answered 5xx (persisted: the count toward `FORWARD_MAX_ATTEMPTS` and the
    /// backoff resume after a restart).
    func recordAttempt(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// Refused for good: moves the entry to the dead letters with `reason`.
    func moveToDeadLetters(_ id: String, reason: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// Up to `limit` dead letters, oldest first.
    func deadLetters(limit: Int, _ done: @escaping (Result<[DeadLetter], ForwardQueueError>) -> Void)
    /// Moves dead letter `id` back to the end of the queue with `attempts` 0; false when there is
    /// no such dead letter; `.full` when the queue is at its bound.
    func retryDeadLetter(_ id: String, _ done: @escaping (Result<Bool, ForwardQueueError>) -> Void)
    /// Moves every dead letter back (as many as the bound allows, oldest first); the count moved.
    func retryAllDeadLetters(_ done: @escaping (Result<Int, ForwardQueueError>) -> Void)
    /// Depth, bytes, oldest entry and dead letters, for metrics.
    func stats(_ done: @escaping (Result<ForwardQueueStats, ForwardQueueError>) -> Void)
    /// How often the owner should call ``tick()``.
    var tickIntervalMillis: Int64 { get }
    /// Periodic upkeep from a loop timer: embedded, `fdatasync` of what was written and
    /// compaction; Redis, keeps the entries this consumer holds from being claimed by others
    /// (and renews the reader lease).
    func tick()
    /// Flushes and releases files (embedded) or forgets held entries (Redis). No calls after it.
    func close()
    /// Called by the owning loop at the end of every turn, before its sends are flushed:
    /// appends batched during the turn are written (embedded: one `write(2)`) and completed.
    func endTurn()
    /// Other processes append too (Redis: every instance shares the stream): the reader asks
    /// for new entries this often. Nil when only this object appends.
    var pollIntervalMillis: Int64? { get }
}

extension ForwardQueue {
    func endTurn() {}
    var pollIntervalMillis: Int64? { nil }

    /// ``peek(limit:excluding:oneEntryPerChannel:_:)`` with nothing excluded.
    func peek(limit: Int, _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void) {
        peek(limit: limit, excluding: [], oneEntryPerChannel: false, done)
    }
}

// MARK: - Binary encoding

/// The entry's compact binary form (version 1), used inside queue file records:
/// `u8 version, u32 attempts, then id, channel, sender, content, createdAt, requestID,
/// traceParent each as u32 length + UTF-8 bytes` (integers little-endian).
enum ForwardEntryCodec {
    static let version: UInt8 = 1

    /// Bytes `encode` appends for `entry`.
    static func encodedSize(_ entry: ForwardEntry) -> Int {
        5 + 7 * 4 + entry.id.utf8.count + entry.channel.utf8.count + entry.sender.utf8.count
            + entry.content.utf8.count + entry.createdAt.utf8.count + entry.requestID.utf8.count
            + entry.traceParent.utf8.count
    }

    static func encode(_ entry: ForwardEntry, into out: inout [UInt8]) {
        let size = encodedSize(entry), start = out.count
        out.append(contentsOf: repeatElement(0, count: size))
        out.withUnsafeMutableBytes { write(entry, to: $0.baseAddress! + start) }
    }

    /// Writes the `encodedSize(entry)` bytes of `entry` at `p` (a chat message's hot path: every
    /// field is one copy).
    static func write(_ entry: ForwardEntry, to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: version, as: UInt8.self)
        p.storeBytes(of: UInt32(clamping: max(0, entry.attempts)).littleEndian, toByteOffset: 1, as: UInt32.self)
        var at = 5
        func put(_ field: String) {
            let count = field.utf8.count
            (p + at).storeBytes(of: UInt32(count).littleEndian, as: UInt32.self)
            var field = field
            field.withUTF8 { utf8 in
                if let base = utf8.baseAddress { (p + at + 4).copyMemory(from: base, byteCount: count) }
            }
            at += 4 + count
        }
        put(entry.id)
        put(entry.channel)
        put(entry.sender)
        put(entry.content)
        put(entry.createdAt)
        put(entry.requestID)
        put(entry.traceParent)
    }

    /// Decodes one entry starting at `cursor`; nil when the bytes are not a version-1 entry.
    static func decode(_ cursor: inout ByteCursor) -> ForwardEntry? {
        guard let v = cursor.u8(), v == version, let attempts = cursor.u32(),
              let id = cursor.string(), let channel = cursor.string(), let sender = cursor.string(),
              let content = cursor.string(), let createdAt = cursor.string(),
              let requestID = cursor.string(), let traceParent = cursor.string() else { return nil }
        return ForwardEntry(id: id, channel: channel, sender: sender, content: content, createdAt: createdAt,
                            requestID: requestID, traceParent: traceParent, attempts: Int(attempts))
    }

    /// The encoding as a new array.
    static func encoded(_ entry: ForwardEntry) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedSize(entry))
        encode(entry, into: &out)
        return out
    }

    /// Decodes a whole buffer holding exactly one entry.
    static func decode(_ bytes: [UInt8]) -> ForwardEntry? {
        bytes.withUnsafeBytes { raw in
            var cursor = ByteCursor(raw)
            guard let entry = decode(&cursor), cursor.isAtEnd else { return nil }
            return entry
        }
    }
}

/// Little-endian writers.
enum ByteIO {
    @inline(__always)
    static func putU32(_ out: inout [UInt8], _ v: UInt32) {
        out.append(UInt8(truncatingIfNeeded: v))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 24))
    }

    @inline(__always)
    static func putU64(_ out: inout [UInt8], _ v: UInt64) {
        putU32(&out, UInt32(truncatingIfNeeded: v))
        putU32(&out, UInt32(truncatingIfNeeded: v >> 32))
    }

    /// Length (4 bytes) and UTF-8 bytes, copied in one piece.
    static func putString(_ out: inout [UInt8], _ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            putU32(&out, UInt32(utf8.count))
            out.append(contentsOf: utf8)
        }
    }

    /// Overwrites 4 bytes at `offset`.
    static func setU32(_ out: inout [UInt8], at offset: Int, _ v: UInt32) {
        out[offset] = UInt8(truncatingIfNeeded: v)
        out[offset + 1] = UInt8(truncatingIfNeeded: v >> 8)
        out[offset + 2] = UInt8(truncatingIfNeeded: v >> 16)
        out[offset + 3] = UInt8(truncatingIfNeeded: v >> 24)
    }
}

/// Bounds-checked little-endian reads over borrowed bytes (every read returns nil past the end).
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int
    let end: Int

    init(_ bytes: UnsafeRawBufferPointer, from offset: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.offset = offset
        self.end = end ?? bytes.count
    }

    var isAtEnd: Bool { offset == end }
    var remaining: Int { end - offset }

    mutating func u8() -> UInt8? {
        guard offset < end else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u32() -> UInt32? {
        guard end - offset >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }

    mutating func u64() -> UInt64? {
        guard let low = u32(), let high = u32() else { return nil }
        return UInt64(low) | UInt64(high) << 32
    }

    mutating func string() -> String? {
        guard let n = u32().map(Int.init), n <= end - offset else { return nil }
        defer { offset += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
    }

    /// The rest (up to `end`) as a string.
    mutating func rest() -> String {
        defer { offset = end }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`): guards each queue record against torn and
/// corrupted writes. Slicing-by-4 tables.
enum CRC32 {
    /// Slice-by-8 tables, 8 × 256 entries, made once, never written again and never freed.
    nonisolated(unsafe) private static let table: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return UnsafePointer(t)
    }()

    static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = ~seed
        guard let base = bytes.baseAddress else { return seed }
        let t = table
        var p = base, n = bytes.count
        while n >= 8 {
            let low = crc ^ UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
            let high = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                ^ t[256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
            p += 8
            n -= 8
        }
        while n > 0 {
            crc = t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
            p += 1
            n -= 1
        }
        return ~crc
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
