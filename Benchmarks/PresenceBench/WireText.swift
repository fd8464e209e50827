import Glibc

/// Just enough JSON reading for the server's messages (docs/protocol.md, "Server messages"),
/// without allocating: the server writes compact objects with string values free of escapes for
/// everything the bench looks at, so a value is found by its `"key":` and read up to the closing
/// quote.
enum WireText {
    /// What kind of server message a payload is.
    enum Kind {
        case message, presence, error, pong, typing, other
    }

    private static let typePrefix: [UInt8] = Array(#"{"type":""#.utf8)

    /// The message's `type`, from the fast path (the server puts `type` first) or a search.
    @inline(__always)
    static func kind(_ p: UnsafeRawBufferPointer) -> Kind {
        var start = -1
        if p.count > 12, memcmp(p.baseAddress!, typePrefix, 9) == 0 {
            start = 9
        } else if let r = stringValue(p, key: "type") {
            start = r.lowerBound
        }
        guard start >= 0, start + 4 <= p.count else { return .other }
        switch p[start] {
        case UInt8(ascii: "m"): return p[start + 1] == UInt8(ascii: "e") ? .message : .other
        case UInt8(ascii: "p"): return p[start + 1] == UInt8(ascii: "r") ? .presence : (p[start + 1] == UInt8(ascii: "o") ? .pong : .other)
        case UInt8(ascii: "e"): return .error
        case UInt8(ascii: "t"): return .typing
        default: return .other
        }
    }

    /// Byte range of the string value of `key` (without quotes), or nil.
    static func stringValue(_ p: UnsafeRawBufferPointer, key: StaticString, from: Int = 0) -> Range<Int>? {
        guard let v = valueStart(p, key: key, from: from), v < p.count, p[v] == UInt8(ascii: "\"") else { return nil }
        var i = v + 1
        while i < p.count {
            let c = p[i]
            if c == UInt8(ascii: "\\") {
                i += 2
                continue
            }
            if c == UInt8(ascii: "\"") { return (v + 1)..<i }
            i += 1
        }
        return nil
    }

    /// Whether `key`'s value is the literal `true`.
    static func isTrue(_ p: UnsafeRawBufferPointer, key: StaticString, from: Int = 0) -> Bool {
        guard let v = valueStart(p, key: key, from: from), v + 4 <= p.count else { return false }
        return p[v] == UInt8(ascii: "t") && p[v + 1] == UInt8(ascii: "r") && p[v + 2] == UInt8(ascii: "u") && p[v + 3] == UInt8(ascii: "e")
    }

    /// Index of the first byte of `key`'s value: after `"key":` (and any spaces).
    static func valueStart(_ p: UnsafeRawBufferPointer, key: StaticString, from: Int = 0) -> Int? {
        guard let base = p.baseAddress else { return nil }
        let keyLength = key.utf8CodeUnitCount
        let keyStart = key.utf8Start
        var i = from
        while i + keyLength + 3 <= p.count {
            guard let q = memchr(base + i, Int32(UInt8(ascii: "\"")), p.count - i) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(q))
            if at + keyLength + 3 <= p.count,
                memcmp(base + at + 1, keyStart, keyLength) == 0,
                p[at + 1 + keyLength] == UInt8(ascii: "\"")
            {
                var v = at + keyLength + 2
                while v < p.count, p[v] == UInt8(ascii: " ") { v += 1 }
                if v < p.count, p[v] == UInt8(ascii: ":") {
                    v += 1
                    while v < p.count, p[v] == UInt8(ascii: " ") { v += 1 }
                    return v
                }
            }
            i = at + 1
        }
        return nil
    }

    /// Whether the bytes in `range` of `p` equal `bytes`.
    @inline(__always)
    static func equals(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, _ bytes: [UInt8]) -> Bool {
        guard range.count == bytes.count else { return false }
        return bytes.withUnsafeBytes { memcmp(p.baseAddress! + range.lowerBound, $0.baseAddress!, range.count) == 0 }
    }

    /// Whether `range` of `p` is `prefix` followed by the decimal `number`.
    @inline(__always)
    static func isID(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, prefix: [UInt8], number: Int) -> Bool {
        guard range.count > prefix.count else { return false }
        for (k, b) in prefix.enumerated() where p[range.lowerBound + k] != b { return false }
        var value = 0
        for i in (range.lowerBound + prefix.count)..<range.upperBound {
            let d = p[i] &- UInt8(ascii: "0")
            guard d < 10 else { return false }
            value = value &* 10 &+ Int(d)
        }
        return value == number
    }

    /// The text of `range`.
    static func string(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: p[range]), as: UTF8.self)
    }
}

/// Appends bytes into a fixed raw buffer (client JSON messages; content is at most 4096 bytes).
struct ByteCursor {
    let base: UnsafeMutableRawPointer
    var count = 0

    init(_ base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always)
    mutating func raw(_ s: StaticString) {
        (base + count).copyMemory(from: s.utf8Start, byteCount: s.utf8CodeUnitCount)
        count += s.utf8CodeUnitCount
    }

    @inline(__always)
    mutating func bytes(_ b: [UInt8]) {
        b.withUnsafeBytes { (base + count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        count += b.count
    }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// A non-negative decimal number.
    @inline(__always)
    mutating func decimal(_ value: Int64) {
        var v = UInt64(max(0, value))
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, 20 digits at most
        let n = withUnsafeMutableBytes(of: &digits) { d -> Int in
            var n = 0
            repeat {
                d[n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            return n
        }
        withUnsafeBytes(of: &digits) { d in
            for k in 0..<n { base.storeBytes(of: d[n - 1 - k], toByteOffset: count + k, as: UInt8.self) }
        }
        count += n
    }
}
