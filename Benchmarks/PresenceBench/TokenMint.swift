import CSystem

/// Mints the single-use HS256 tokens presenced accepts on `/ws` (docs/protocol.md, "Token format"):
/// header `{"alg":"HS256","typ":"JWT"}`, claims `sub aud iat exp jti` with `exp = iat + 300` and a
/// random 128-bit `jti` (base64url) — a fresh one for every connection, since a `jti` is single use.
struct TokenMint: Sendable {
    private let key: [UInt8]
    private let audienceJSON: String
    /// base64url of the fixed header.
    private static let headerSegment = Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
    /// Token lifetime in seconds (the contract's maximum).
    static let lifetime: Int64 = 300

    init(secret: String, audience: String) {
        key = Array(secret.utf8)
        audienceJSON = JSONText.quoted(audience)
    }

    /// A token for `userID`, issued at `now` (unix seconds).
    func mint(userID: String, now: Int64) -> String {
        var payload = #"{"sub":"# + JSONText.quoted(userID)
        payload += #","aud":"# + audienceJSON
        payload += #","iat":\#(now),"exp":\#(now + Self.lifetime),"jti":""# + Self.randomJTI() + #""}"#
        let signingInput = Self.headerSegment + "." + Base64URL.encode(Array(payload.utf8))
        let input = Array(signingInput.utf8)
        var mac = [UInt8](repeating: 0, count: 32)
        var macLength: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            input.withUnsafeBufferPointer { d in
                mac.withUnsafeMutableBufferPointer { m in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, m.baseAddress, &macLength)
                }
            }
        }
        precondition(ok != nil && macLength == 32, "HMAC-SHA256 failed")
        return signingInput + "." + Base64URL.encode(mac)
    }

    /// 128 random bits (OpenSSL's CSPRNG, the system generator if that fails), base64url.
    static func randomJTI() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, 16) } == 1
        if !ok {
            var generator = SystemRandomNumberGenerator()
            for i in bytes.indices { bytes[i] = generator.next() }
        }
        return Base64URL.encode(bytes)
    }
}

/// base64url without padding (RFC 4648 §5), as JWTs use it.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let left = bytes.count - i
        if left == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
        } else if left == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// JSON string quoting for the few strings the bench writes (ids, prefixes, audience).
enum JSONText {
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
