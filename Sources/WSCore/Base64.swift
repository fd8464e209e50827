/// Standard base64 (RFC 4648 §4: `A–Z a–z 0–9 + /`, `=` padding).
public enum Base64 {
    /// The padded base64 text of `bytes`.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next(), b2 = iterator.next()
            out.append(symbol(b0 >> 2))
            out.append(symbol((b0 & 0x03) << 4 | (b1 ?? 0) >> 4))
            if let b1 {
                out.append(symbol((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6))
            } else {
                out.append(padding)
            }
            if let b2 {
                out.append(symbol(b2 & 0x3F))
            } else {
                out.append(padding)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes encoded by `string`, or nil unless it is canonical standard base64: a multiple of
    /// 4 characters from the standard alphabet, `=` padding only at the end (at most 2), unused
    /// bits zero, no whitespace.
    public static func decode(_ string: String) -> [UInt8]? {
        var string = string
        return string.withUTF8 { text -> [UInt8]? in
            guard text.count % 4 == 0 else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(text.count / 4 * 3)
            var index = 0
            while index < text.count {
                let isLast = index + 4 == text.count
                guard let v0 = value(text[index]), let v1 = value(text[index + 1]) else { return nil }
                let c2 = text[index + 2], c3 = text[index + 3]
                out.append(v0 << 2 | v1 >> 4)
                if isLast && c2 == padding {
                    guard c3 == padding, v1 & 0x0F == 0 else { return nil }
                    return out
                }
                guard let v2 = value(c2) else { return nil }
                out.append(v1 << 4 | v2 >> 2)
                if isLast && c3 == padding {
                    guard v2 & 0x03 == 0 else { return nil }
                    return out
                }
                guard let v3 = value(c3) else { return nil }
                out.append(v2 << 6 | v3)
                index += 4
            }
            return out
        }
    }

    private static let padding = UInt8(ascii: "=")

    /// The character for a 6-bit value.
    @inline(__always)
    private static func symbol(_ value: UInt8) -> UInt8 {
        switch value {
        case 0..<26: return UInt8(ascii: "A") + value
        case 26..<52: return UInt8(ascii: "a") + value - 26
        case 52..<62: return UInt8(ascii: "0") + value - 52
        case 62: return UInt8(ascii: "+")
        default: return UInt8(ascii: "/")
        }
    }

    /// The 6-bit value of a character, nil outside the alphabet (`=` included).
    @inline(__always)
    private static func value(_ symbol: UInt8) -> UInt8? {
        switch symbol {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return symbol - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return symbol - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return symbol - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
