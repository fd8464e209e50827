/// Unpadded base64url (RFC 4648 §5, as JWS compact serialization uses it: `A–Z a–z 0–9 - _`, no `=`).
///
/// Decoding is strict: padding, whitespace, the standard alphabet's `+` and `/`, an impossible
/// length (4n+1) and non-zero unused trailing bits are all refused, so each byte string has
/// exactly one accepted encoding.
enum Base64URL {
    /// The unpadded base64url text of `bytes`.
    static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next(), b2 = iterator.next()
            out.append(symbol(b0 >> 2))
            out.append(symbol((b0 & 0x03) << 4 | (b1 ?? 0) >> 4))
            guard let b1 else { break }
            out.append(symbol((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6))
            guard let b2 else { break }
            out.append(symbol(b2 & 0x3F))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes encoded by `text`, or nil unless it is canonical unpadded base64url.
    static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }

    /// The bytes encoded by the ASCII `text`, or nil unless it is canonical unpadded base64url.
    static func decode(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        let count = text.count
        if count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(count * 3 / 4)
        var index = 0
        while index + 4 <= count {
            guard let v0 = value(text[index]), let v1 = value(text[index + 1]),
                  let v2 = value(text[index + 2]), let v3 = value(text[index + 3]) else { return nil }
            out.append(v0 << 2 | v1 >> 4)
            out.append(v1 << 4 | v2 >> 2)
            out.append(v2 << 6 | v3)
            index += 4
        }
        switch count - index {
        case 2:
            guard let v0 = value(text[index]), let v1 = value(text[index + 1]), v1 & 0x0F == 0 else { return nil }
            out.append(v0 << 2 | v1 >> 4)
        case 3:
            guard let v0 = value(text[index]), let v1 = value(text[index + 1]),
                  let v2 = value(text[index + 2]), v2 & 0x03 == 0 else { return nil }
            out.append(v0 << 2 | v1 >> 4)
            out.append(v1 << 4 | v2 >> 2)
        default:
            break
        }
        return out
    }

    /// The character for a 6-bit value.
    @inline(__always)
    private static func symbol(_ value: UInt8) -> UInt8 {
        switch value {
        case 0..<26: return UInt8(ascii: "A") + value
        case 26..<52: return UInt8(ascii: "a") + value - 26
        case 52..<62: return UInt8(ascii: "0") + value - 52
        case 62: return UInt8(ascii: "-")
        default: return UInt8(ascii: "_")
        }
    }

    /// The 6-bit value of a character, nil outside the base64url alphabet.
    @inline(__always)
    private static func value(_ symbol: UInt8) -> UInt8? {
        switch symbol {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return symbol - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return symbol - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return symbol - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }
}
