/// JSON string escaping straight into bytes, with the exact output length known beforehand.
///
/// Escapes `"`, `\` and control characters (< 0x20: `\b \f \n \r \t`, others `\u00XX`); every other
/// byte (including non-ASCII UTF-8) is copied as is. The input is assumed to be valid UTF-8.
public enum JSONWriter {
    /// Bytes of the quoted, escaped string, quotes included.
    ///
    /// Word at a time: strings of 8+ bytes are covered by whole words plus one overlapping last word,
    /// shorter ones by one padded word; only words holding a byte to escape are looked at bytewise.
    package static func escapedLength(_ utf8: UnsafeRawBufferPointer) -> Int {
        let count = utf8.count
        guard let base = utf8.baseAddress, count > 0 else { return 2 }
        var extra = 0
        if count < 8 {
            if needsEscape(loadPartial(base, count)) { extra = slowExtraBytes(base, 0, count) }
            return 2 &+ count &+ extra
        }
        var i = 0
        while i &+ 8 <= count {
            if needsEscape(base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) {
                extra &+= slowExtraBytes(base, i, i &+ 8)
            }
            i &+= 8
        }
        if i < count, needsEscape(base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)) {
            extra &+= slowExtraBytes(base, i, count)
        }
        return 2 &+ count &+ extra
    }

    /// Writes the quoted, escaped string at `into` (exactly `escapedLength(utf8)` bytes); returns bytes written.
    /// Plain words are stored whole; never writes outside those bytes.
    @discardableResult
    package static func writeString(_ utf8: UnsafeRawBufferPointer, into: UnsafeMutableRawPointer) -> Int {
        into.storeBytes(of: UInt8(ascii: "\""), as: UInt8.self)
        var out = 1
        let count = utf8.count
        if let base = utf8.baseAddress, count > 0 {
            if count < 8 {
                if needsEscape(loadPartial(base, count)) {
                    out = slowWrite(base, 0, count, into, out)
                } else {
                    storePartial(base, count, into + out)
                    out &+= count
                }
            } else {
                var i = 0
                while i &+ 8 <= count {
                    let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    if needsEscape(w) {
                        out = slowWrite(base, i, i &+ 8, into, out)
                    } else {
                        into.storeBytes(of: w, toByteOffset: out, as: UInt64.self)
                        out &+= 8
                    }
                    i &+= 8
                }
                if i < count {
                    let w = base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
                    if needsEscape(w) {
                        out = slowWrite(base, i, count, into, out)
                    } else {
                        // No byte of the last 8 needs escaping, so the ones already written (i - (count-8) of
                        // them) sit verbatim right before `out`: store the whole word over them.
                        into.storeBytes(of: w, toByteOffset: out &- (i &- (count &- 8)), as: UInt64.self)
                        out &+= count &- i
                    }
                }
            }
        }
        into.storeBytes(of: UInt8(ascii: "\""), toByteOffset: out, as: UInt8.self)
        return out &+ 1
    }

    /// The string as a quoted JSON string literal.
    package static func quoted(_ s: String) -> String {
        withUTF8(s) { utf8 in
            let length = escapedLength(utf8)
            return String(unsafeUninitializedCapacity: length) { buffer in
                writeString(utf8, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            }
        }
    }

    /// Calls `body` with the string's contiguous UTF-8 (no copy for native strings).
    /// Public and inlinable because it is on the message path of the modules above (the realtime
    /// code encodes every chat message through it): this toolchain neither inlines nor
    /// specializes a `package` generic in another module, even an inlinable one, and the generic
    /// call cost ~50 instructions per delivery (Benchmarks/callgrind.sh).
    @inlinable @inline(__always)
    public static func withUTF8<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = s.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        var s = s
        return s.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    // MARK: Helpers

    /// Bytes an escape adds over the byte itself: 0 (plain), 1 (two-character escape) or 5 (`\u00XX`).
    @inline(__always)
    private static func extraBytes(_ c: UInt8) -> Int {
        if c >= 0x20 {
            return c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") ? 1 : 0
        }
        switch c {
        case 0x08, 0x09, 0x0A, 0x0C, 0x0D: return 1
        default: return 5
        }
    }

    /// Extra bytes of escapes among base[from..<to].
    @inline(never)
    private static func slowExtraBytes(_ base: UnsafeRawPointer, _ from: Int, _ to: Int) -> Int {
        var extra = 0
        for i in from..<to { extra &+= extraBytes(base.load(fromByteOffset: i, as: UInt8.self)) }
        return extra
    }

    /// Writes base[from..<to] escaped at into+out; returns the new `out`.
    @inline(never)
    private static func slowWrite(_ base: UnsafeRawPointer, _ from: Int, _ to: Int, _ into: UnsafeMutableRawPointer, _ out: Int) -> Int {
        var out = out
        for i in from..<to {
            let c = base.load(fromByteOffset: i, as: UInt8.self)
            if extraBytes(c) == 0 {
                into.storeBytes(of: c, toByteOffset: out, as: UInt8.self)
                out &+= 1
            } else {
                out &+= writeEscape(c, into + out)
            }
        }
        return out
    }

    /// The `n` (< 8) bytes at `p` in some lanes of a word whose other lanes are spaces (not escaped):
    /// good for yes/no byte tests only.
    @inline(__always)
    private static func loadPartial(_ p: UnsafeRawPointer, _ n: Int) -> UInt64 {
        var w: UInt64 = 0x2020_2020_2020_2020
        var j = 0
        if n & 4 != 0 {
            w = w & 0xFFFF_FFFF_0000_0000 | UInt64(p.loadUnaligned(as: UInt32.self))
            j = 4
        }
        if n & 2 != 0 {
            w = w & 0xFFFF_0000_FFFF_FFFF | UInt64(p.loadUnaligned(fromByteOffset: j, as: UInt16.self)) &<< 32
            j &+= 2
        }
        if n & 1 != 0 {
            w = w & 0xFF00_FFFF_FFFF_FFFF | UInt64(p.load(fromByteOffset: j, as: UInt8.self)) &<< 48
        }
        return w
    }

    /// Copies `n` (< 8) bytes without a call.
    @inline(__always)
    private static func storePartial(_ p: UnsafeRawPointer, _ n: Int, _ to: UnsafeMutableRawPointer) {
        var j = 0
        if n & 4 != 0 {
            to.storeBytes(of: p.loadUnaligned(as: UInt32.self), as: UInt32.self)
            j = 4
        }
        if n & 2 != 0 {
            to.storeBytes(of: p.loadUnaligned(fromByteOffset: j, as: UInt16.self), toByteOffset: j, as: UInt16.self)
            j &+= 2
        }
        if n & 1 != 0 {
            to.storeBytes(of: p.load(fromByteOffset: j, as: UInt8.self), toByteOffset: j, as: UInt8.self)
        }
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Writes the escape for `c` (which needs one); returns bytes written.
    @inline(__always)
    private static func writeEscape(_ c: UInt8, _ p: UnsafeMutableRawPointer) -> Int {
        p.storeBytes(of: UInt8(ascii: "\\"), as: UInt8.self)
        let short: UInt8
        switch c {
        case UInt8(ascii: "\""): short = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): short = UInt8(ascii: "\\")
        case 0x08: short = UInt8(ascii: "b")
        case 0x09: short = UInt8(ascii: "t")
        case 0x0A: short = UInt8(ascii: "n")
        case 0x0C: short = UInt8(ascii: "f")
        case 0x0D: short = UInt8(ascii: "r")
        default:
            let hex = hexDigits.utf8Start
            p.storeBytes(of: UInt8(ascii: "u"), toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 2, as: UInt8.self)
            p.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 3, as: UInt8.self)
            p.storeBytes(of: hex[Int(c >> 4)], toByteOffset: 4, as: UInt8.self)
            p.storeBytes(of: hex[Int(c & 0xF)], toByteOffset: 5, as: UInt8.self)
            return 6
        }
        p.storeBytes(of: short, toByteOffset: 1, as: UInt8.self)
        return 2
    }

    /// High bit set in each byte of the word that is < 0x20, '"' or '\\' — the bytes a JSON string
    /// must escape (SWAR). Borrows can mark bytes above such a byte, never below it: the lowest set
    /// bit of a little-endian word is exact, and the result is zero exactly when no byte needs escaping.
    @inline(__always)
    package static func escapeBytes(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22)
        let backslash = w ^ (ones &* 0x5C)
        let control = (w &- ones &* 0x20) & ~w
        let quotes = (quote &- ones) & ~quote
        let backslashes = (backslash &- ones) & ~backslash
        return (control | quotes | backslashes) & highs
    }

    /// Whether any byte of the word is < 0x20, '"' or '\\' (exact as a yes/no answer).
    @inline(__always)
    private static func needsEscape(_ w: UInt64) -> Bool {
        escapeBytes(w) != 0
    }
}
