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
    public static func encode<C: Collection>(_ bytes: C, alphabet: Alphabet = .standard,
                                             padding: Bool = true) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(padding ? (bytes.count + 2) / 3 * 4 : (bytes.count * 4 + 2) / 3)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next(), b2 = iterator.next()
            out.append(alphabet.symbol(b0 >> 2))
            out.append(alphabet.symbol((b0 & 0x03) << 4 | (b1 ?? 0) >> 4))
            guard let b1 else { break }
            out.append(alphabet.symbol((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6))
            guard let b2 else { break }
            out.append(alphabet.symbol(b2 & 0x3F))
        }
        if padding {
            while out.count % 4 != 0 { out.append(padCharacter) }
        }
        return String(decoding: out, as: UTF8.self)
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
    public static func decode(_ text: UnsafeRawBufferPointer, alphabet: Alphabet = .standard,
                              padding: Bool = true) -> [UInt8]? {
        var count = text.count
        if padding {
            // Strip at most two trailing `=`; any other `=` is then refused as outside the alphabet.
            guard count % 4 == 0 else { return nil }
            if count > 0 && text[count - 1] == padCharacter { count -= 1 }
            if count > 0 && text[count - 1] == padCharacter { count -= 1 }
        }
        if count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(count * 3 / 4)
        var index = 0
        while index + 4 <= count {
            guard let v0 = alphabet.value(text[index]), let v1 = alphabet.value(text[index + 1]),
                  let v2 = alphabet.value(text[index + 2]), let v3 = alphabet.value(text[index + 3]) else { return nil }
            out.append(v0 << 2 | v1 >> 4)
            out.append(v1 << 4 | v2 >> 2)
            out.append(v2 << 6 | v3)
            index += 4
        }
        switch count - index {
        case 2:
            guard let v0 = alphabet.value(text[index]), let v1 = alphabet.value(text[index + 1]),
                  v1 & 0x0F == 0 else { return nil }
            out.append(v0 << 2 | v1 >> 4)
        case 3:
            guard let v0 = alphabet.value(text[index]), let v1 = alphabet.value(text[index + 1]),
                  let v2 = alphabet.value(text[index + 2]), v2 & 0x03 == 0 else { return nil }
            out.append(v0 << 2 | v1 >> 4)
            out.append(v1 << 4 | v2 >> 2)
        default:
            break
        }
        return out
    }

    private static let padCharacter = UInt8(ascii: "=")
}

extension Base64.Alphabet {
    /// The character for a 6-bit value.
    @inline(__always)
    fileprivate func symbol(_ value: UInt8) -> UInt8 {
        switch value {
        case 0..<26: return UInt8(ascii: "A") + value
        case 26..<52: return UInt8(ascii: "a") + value - 26
        case 52..<62: return UInt8(ascii: "0") + value - 52
        case 62: return self == .standard ? UInt8(ascii: "+") : UInt8(ascii: "-")
        default: return self == .standard ? UInt8(ascii: "/") : UInt8(ascii: "_")
        }
    }

    /// The 6-bit value of a character, nil outside the alphabet (`=` included).
    @inline(__always)
    fileprivate func value(_ symbol: UInt8) -> UInt8? {
        switch symbol {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return symbol - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return symbol - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return symbol - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return self == .standard ? 62 : nil
        case UInt8(ascii: "/"): return self == .standard ? 63 : nil
        case UInt8(ascii: "-"): return self == .url ? 62 : nil
        case UInt8(ascii: "_"): return self == .url ? 63 : nil
        default: return nil
        }
    }
}
