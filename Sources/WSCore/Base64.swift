/// Base64 (RFC 4648): the standard alphabet (§4: `A–Z a–z 0–9 + /`) or the URL-safe one
/// (§5: `A–Z a–z 0–9 - _`), with `=` padding or without.
///
/// Decoding is strict, so each byte string has exactly one accepted encoding: characters outside
/// the chosen alphabet (whitespace included) and non-zero unused trailing bits are refused; padded
/// text must be a multiple of 4 characters with `=` only at the end (at most 2), unpadded text must
/// contain no `=` and must not be 4n+1 characters long.
public enum Base64 {
    /// The characters for the 6-bit values 62 and 63.
    public enum Alphabet: Sendable {
        /// RFC 4648 §4: `+` and `/`.
        case standard
        /// RFC 4648 §5 (base64url, as in JWS): `-` and `_`.
        case url
    }

    /// The base64 text of `bytes` (by default standard alphabet, `=`-padded to a multiple of 4).
    public static func encode<C: Collection>(
        _ bytes: C, alphabet: Alphabet = .standard,
        padding: Bool = true
    ) -> String where C.Element == UInt8 {
        if let text = bytes.withContiguousStorageIfAvailable({ encode(UnsafeRawBufferPointer($0), alphabet: alphabet, padding: padding) }) {
            return text
        }
        return Array(bytes).withUnsafeBytes { encode($0, alphabet: alphabet, padding: padding) }
    }

    /// `encode` of contiguous bytes, written straight into the String's storage (the per-byte
    /// appends cost a JWT about 3,000 instructions).
    static func encode(_ bytes: UnsafeRawBufferPointer, alphabet: Alphabet, padding: Bool) -> String {
        let n = bytes.count
        let length = padding ? (n + 2) / 3 * 4 : (n * 4 + 2) / 3
        guard length > 0 else { return "" }
        let symbols = alphabet.symbols
        return String(unsafeUninitializedCapacity: length) { out in
            var i = 0, o = 0
            while i + 3 <= n {
                let b0 = bytes[i], b1 = bytes[i + 1], b2 = bytes[i + 2]
                out[o] = symbols[Int(b0 >> 2)]
                out[o + 1] = symbols[Int((b0 & 0x03) << 4 | b1 >> 4)]
                out[o + 2] = symbols[Int((b1 & 0x0F) << 2 | b2 >> 6)]
                out[o + 3] = symbols[Int(b2 & 0x3F)]
                i += 3
                o += 4
            }
            switch n - i {
            case 1:
                let b0 = bytes[i]
                out[o] = symbols[Int(b0 >> 2)]
                out[o + 1] = symbols[Int((b0 & 0x03) << 4)]
                o += 2
            case 2:
                let b0 = bytes[i], b1 = bytes[i + 1]
                out[o] = symbols[Int(b0 >> 2)]
                out[o + 1] = symbols[Int((b0 & 0x03) << 4 | b1 >> 4)]
                out[o + 2] = symbols[Int((b1 & 0x0F) << 2)]
                o += 3
            default:
                break
            }
            while o < length {
                out[o] = padCharacter
                o += 1
            }
            return length
        }
    }

    /// The bytes encoded by `string`, or nil unless it is canonical base64 in this alphabet and
    /// padding (by default standard, padded: a multiple of 4 characters, `=` padding only at the
    /// end (at most 2), unused bits zero, no whitespace).
    public static func decode(_ string: String, alphabet: Alphabet = .standard, padding: Bool = true) -> [UInt8]? {
        var string = string
        return string.withUTF8 { decode(UnsafeRawBufferPointer($0), alphabet: alphabet, padding: padding) }
    }

    /// The bytes encoded by the ASCII `text`, or nil unless it is canonical base64 in this alphabet
    /// and padding (same rules as `decode(_:alphabet:padding:)` on a `String`).
    ///
    /// A 256-entry table per alphabet and one output allocation: the per-character `switch` and
    /// per-byte appends cost 4,700 instructions per upgrade (the key and the token's three
    /// parts; callgrind, issue 19).
    public static func decode(
        _ text: UnsafeRawBufferPointer, alphabet: Alphabet = .standard,
        padding: Bool = true
    ) -> [UInt8]? {
        var count = text.count
        if padding {
            // Strip at most two trailing `=`; any other `=` is then refused as outside the alphabet.
            guard count % 4 == 0 else { return nil }
            if count > 0 && text[count - 1] == padCharacter { count -= 1 }
            if count > 0 && text[count - 1] == padCharacter { count -= 1 }
        }
        if count % 4 == 1 { return nil }
        let values = alphabet.values
        let whole = count / 4 * 4
        let length = whole / 4 * 3 + max(0, count - whole - 1)
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            var index = 0, o = 0
            while index < whole {
                let v0 = values[Int(text[index])], v1 = values[Int(text[index + 1])]
                let v2 = values[Int(text[index + 2])], v3 = values[Int(text[index + 3])]
                // Values are 0...63; 0xFF marks a character outside the alphabet.
                if (v0 | v1 | v2 | v3) & 0xC0 != 0 {
                    valid = false
                    break
                }
                out[o] = v0 << 2 | v1 >> 4
                out[o + 1] = v1 << 4 | v2 >> 2
                out[o + 2] = v2 << 6 | v3
                index += 4
                o += 3
            }
            if valid {
                switch count - whole {
                case 2:
                    let v0 = values[Int(text[index])], v1 = values[Int(text[index + 1])]
                    if (v0 | v1) & 0xC0 != 0 || v1 & 0x0F != 0 {
                        valid = false
                        break
                    }
                    out[o] = v0 << 2 | v1 >> 4
                    o += 1
                case 3:
                    let v0 = values[Int(text[index])], v1 = values[Int(text[index + 1])], v2 = values[Int(text[index + 2])]
                    if (v0 | v1 | v2) & 0xC0 != 0 || v2 & 0x03 != 0 {
                        valid = false
                        break
                    }
                    out[o] = v0 << 2 | v1 >> 4
                    out[o + 1] = v1 << 4 | v2 >> 2
                    o += 2
                default:
                    break
                }
            }
            initialized = valid ? o : 0
        }
        return valid ? out : nil
    }

    private static let padCharacter = UInt8(ascii: "=")
}

extension Base64.Alphabet {
    /// The characters for the 6-bit values 0...63.
    fileprivate var symbols: UnsafePointer<UInt8> {
        self == .standard ? Base64Tables.standardSymbols : Base64Tables.urlSymbols
    }

    /// The 6-bit value of each byte, 0xFF outside the alphabet (`=` included).
    fileprivate var values: UnsafePointer<UInt8> {
        self == .standard ? Base64Tables.standardValues : Base64Tables.urlValues
    }
}

/// The lookup tables, built once (immutable after that: safe to share between threads).
private enum Base64Tables {
    nonisolated(unsafe) static let standardSymbols = symbols(value62: "+", value63: "/")
    nonisolated(unsafe) static let urlSymbols = symbols(value62: "-", value63: "_")
    nonisolated(unsafe) static let standardValues = values(standardSymbols)
    nonisolated(unsafe) static let urlValues = values(urlSymbols)

    private static func symbols(value62 plus: Unicode.Scalar, value63 slash: Unicode.Scalar) -> UnsafePointer<UInt8> {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        for i in 0..<62 { table[i] = letters[i] }
        table[62] = UInt8(ascii: plus)
        table[63] = UInt8(ascii: slash)
        return UnsafePointer(table)
    }

    private static func values(_ symbols: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        table.initialize(repeating: 0xFF, count: 256)
        for i in 0..<64 { table[Int(symbols[i])] = UInt8(i) }
        return UnsafePointer(table)
    }
}
