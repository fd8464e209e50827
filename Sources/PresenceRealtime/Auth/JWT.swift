import CSystem

/// HS256 JSON Web Tokens in JWS compact serialization (RFC 7515 / 7519): signing, the structural
/// split of `header.payload.signature`, and the constant-time signature check. No JSON here:
/// `TokenVerifier` and `TokenMinter` build and read the header and claims.
enum JWT {
    /// The longest token accepted, in bytes (docs/protocol.md, "Token format", and a bound on work
    /// per upgrade).
    static let maxTokenBytes = 4096
    /// Bytes in an HMAC-SHA256 tag.
    static let signatureBytes = 32

    /// A token split at its two dots, each segment base64url-decoded.
    struct Parts: Sendable {
        /// The decoded header (JSON text, not yet parsed).
        var header: [UInt8]
        /// The decoded payload (JSON text, not yet parsed; read it only after the signature matched).
        var payload: [UInt8]
        /// The decoded signature (any length; a wrong length simply never matches).
        var signature: [UInt8]
        /// The bytes the signature covers: `base64url(header) "." base64url(payload)`.
        var signingInput: [UInt8]
    }

    /// Splits `token` into its three segments, or nil when it is not exactly three canonical
    /// unpadded base64url segments (header and payload non-empty) of at most `maxTokenBytes` in total.
    static func split(_ token: String) -> Parts? {
        guard token.utf8.count <= maxTokenBytes else { return nil }
        var token = token
        return token.withUTF8 { utf8 -> Parts? in
            let bytes = UnsafeRawBufferPointer(utf8)
            guard let first = bytes.firstIndex(of: UInt8(ascii: ".")) else { return nil }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[(first + 1)...])
            guard let secondInRest = rest.firstIndex(of: UInt8(ascii: ".")) else { return nil }
            let second = first + 1 + secondInRest
            let tail = UnsafeRawBufferPointer(rebasing: bytes[(second + 1)...])
            guard !tail.contains(UInt8(ascii: ".")), first > 0, second > first + 1,
                let header = Base64URL.decode(UnsafeRawBufferPointer(rebasing: bytes[..<first])),
                let payload = Base64URL.decode(UnsafeRawBufferPointer(rebasing: bytes[(first + 1)..<second])),
                let signature = Base64URL.decode(tail)
            else { return nil }
            return Parts(
                header: header, payload: payload, signature: signature,
                signingInput: Array(bytes[..<second]))
        }
    }

    /// HMAC-SHA256 of `message` under `key`.
    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        HMACSHA256Key(key).tag(message)
    }

    /// Whether `signature` is the HS256 tag of `signingInput` under `key`, compared in constant
    /// time (`CRYPTO_memcmp`; only the length, which is public, short-circuits).
    static func signatureMatches(_ signature: [UInt8], signingInput: [UInt8], key: HMACSHA256Key) -> Bool {
        guard signature.count == signatureBytes else { return false }
        let expected = key.tag(signingInput)
        return signature.withUnsafeBytes { a in
            expected.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, signatureBytes) == 0 }
        }
    }

    /// Same, with the secret's bytes.
    static func signatureMatches(_ signature: [UInt8], signingInput: [UInt8], secret: [UInt8]) -> Bool {
        signatureMatches(signature, signingInput: signingInput, key: HMACSHA256Key(secret))
    }

    /// The compact HS256 token for the JSON texts `header` and `payload` (encoded as given).
    static func sign(header: String, payload: String, key: HMACSHA256Key) -> String {
        let signingInput = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        return signingInput + "." + Base64URL.encode(key.tag(Array(signingInput.utf8)))
    }

    /// Same, with the secret's bytes.
    static func sign(header: String, payload: String, secret: [UInt8]) -> String {
        sign(header: header, payload: payload, key: HMACSHA256Key(secret))
    }

    /// The header presenced writes on every token it mints.
    static let standardHeader = #"{"alg":"HS256","typ":"JWT"}"#
}
