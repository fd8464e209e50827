/// The entry's compact binary form (version 1), used inside queue file records:
/// `u8 version, u32 attempts, then id, channel, sender, content, createdAt, requestID,
/// traceParent each as u32 length + UTF-8 bytes` (integers little-endian).
enum ForwardEntryCodec {
    package static let version: UInt8 = 1

    /// Bytes `encode` appends for `entry`.
    static func encodedSize(_ entry: ForwardEntry) -> Int {
        5 + 7 * 4 + entry.id.utf8.count + entry.channel.utf8.count + entry.sender.utf8.count
            + entry.content.utf8.count + entry.createdAt.utf8.count + entry.requestID.utf8.count
            + entry.traceParent.utf8.count
    }

    package static func encode(_ entry: ForwardEntry, into out: inout [UInt8]) {
        let size = encodedSize(entry), start = out.count
        out.append(contentsOf: repeatElement(0, count: size))
        out.withUnsafeMutableBytes { write(entry, to: $0.baseAddress! + start) }
    }

    /// Writes the `encodedSize(entry)` bytes of `entry` at `p` (a chat message's hot path: every
    /// field is one copy).
    package static func write(_ entry: ForwardEntry, to p: UnsafeMutableRawPointer) {
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
    package static func decode(_ cursor: inout ByteCursor) -> ForwardEntry? {
        guard let v = cursor.u8(), v == version, let attempts = cursor.u32(),
            let id = cursor.string(), let channel = cursor.string(), let sender = cursor.string(),
            let content = cursor.string(), let createdAt = cursor.string(),
            let requestID = cursor.string(), let traceParent = cursor.string()
        else { return nil }
        return ForwardEntry(
            id: id, channel: channel, sender: sender, content: content, createdAt: createdAt,
            requestID: requestID, traceParent: traceParent, attempts: Int(attempts))
    }

    /// The encoding as a new array.
    package static func encoded(_ entry: ForwardEntry) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedSize(entry))
        encode(entry, into: &out)
        return out
    }

    /// Decodes a whole buffer holding exactly one entry.
    package static func decode(_ bytes: [UInt8]) -> ForwardEntry? {
        bytes.withUnsafeBytes { raw in
            var cursor = ByteCursor(raw)
            guard let entry = decode(&cursor), cursor.isAtEnd else { return nil }
            return entry
        }
    }
}
