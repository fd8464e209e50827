import Glibc

/// Verified claims of an ephemeral token.
struct TokenClaims: Sendable, Equatable {
    /// `sub`: the user id.
    var userID: String
    /// `jti`: the token's unique id (single use on `/ws`).
    var jti: String
    /// `iat`, unix seconds.
    var issuedAt: Int64
    /// `exp`, unix seconds.
    var expiresAt: Int64
    /// `nbf`, unix seconds.
    var notBefore: Int64?
    /// `sid`: the better-auth session the token was minted for.
    var sessionID: String?
    /// `role`: `admin`, `member` or `child`, read once here.
    var role: TokenRole?
    /// `name`: display name.
    var name: String?
    /// `channels`: when present, the only channels this token may join or read.
    var channels: [String]?
    /// Which secret signed it (`TokenVerifier.keyID(of:)`): a connection whose secret is retired
    /// by a reload is closed with 4401 (0 when not from `verify`).
    var keyID: UInt64 = 0
}

/// Why a token was refused (the raw value is the metrics/log label).
enum TokenRejection: String, Error, Sendable, CaseIterable {
    /// No token at all (empty).
    case missing
    /// Not three canonical base64url segments, longer than 4096 bytes, a header or payload that is
    /// not a JSON object, a `typ` other than JWT, or a `crit` header.
    case malformed
    /// `alg` is not exactly `HS256` (`none` included) or is missing.
    case algorithm
    /// The signature matches neither the current nor the previous secret.
    case signature
    /// `exp` is more than the leeway in the past.
    case expired
    /// `nbf` is more than the leeway in the future.
    case notYetValid = "not_yet_valid"
    /// `iat` is more than the leeway in the future.
    case issuedInFuture = "issued_in_future"
    /// `exp - iat` exceeds the maximum lifetime, or `exp <= iat`.
    case lifetime
    /// `aud` is missing or does not name this audience.
    case audience
    /// A required claim is missing, or a claim has the wrong type or an invalid value.
    case claims
    /// The `jti` was used before (reported by the caller's `ReplayGuard`, never by `verify`).
    case replayed
}

/// Verifies HS256 tokens against the current secret and, during a rotation, the previous one.
///
/// Order: structure → `alg` → signature → claims; the payload is not parsed before a signature
/// matched. `kid` is ignored: every secret is tried in order (current first). Claims with JSON
/// `null` count as present with the wrong type.
package struct TokenVerifier: Sendable {
    /// The required `aud`.
    let audience: String
    /// Largest `exp - iat` in seconds (no leeway applies).
    let maxLifetime: Int64
    /// Clock leeway in seconds on `exp`, `nbf` and a future `iat`.
    let leeway: Int64
    /// Longest accepted `jti`, in bytes.
    static let maxJTIBytes = 128

    private let keys: [HMACSHA256Key]
    /// `JWT.standardHeader`'s bytes: a header equal to it needs no parsing.
    private static let standardHeader = Array(JWT.standardHeader.utf8)
    /// `keyID(of:)` of each key, in the same order.
    let keyIDs: [UInt64]

    /// `secrets` in order of preference (current, then previous); empty strings are ignored.
    init(secrets: [String], audience: String, maxLifetime: Int64 = 300, leeway: Int64 = 5) {
        let secrets = secrets.filter { !$0.isEmpty }.map { Array($0.utf8) }
        self.keys = secrets.map(HMACSHA256Key.init)
        self.keyIDs = secrets.map(Self.keyID(of:))
        self.audience = audience
        self.maxLifetime = maxLifetime
        self.leeway = leeway
    }

    /// Signature, header and claims; NOT single use (the caller checks `jti` with a `ReplayGuard`).
    func verify(_ token: String, now: Int64) -> Result<TokenClaims, TokenRejection> {
        if token.isEmpty { return .failure(.missing) }
        guard let parts = JWT.split(token) else { return .failure(.malformed) }

        // Header: structure, then the algorithm (the header presenced and most libraries write is
        // taken as it is, without parsing).
        if parts.header != Self.standardHeader {
            let parsedHeader = parts.header.withUnsafeBytes { try? JSONValue.parse($0, maxDepth: 8) }
            guard case .object(let header)? = parsedHeader else { return .failure(.malformed) }
            if let typ = header["typ"] {
                guard let text = typ.stringValue, text.lowercased() == "jwt" else { return .failure(.malformed) }
            }
            // No extensions are understood, so RFC 7515 §4.1.11 requires refusing any `crit`.
            if header["crit"] != nil { return .failure(.malformed) }
            guard header["alg"]?.stringValue == "HS256" else { return .failure(.algorithm) }
        }

        // Signature, in constant time, against each secret in order.
        var matched: Int?
        for (i, key) in keys.enumerated() where JWT.signatureMatches(parts.signature, signingInput: parts.signingInput, key: key) {
            matched = i
            break
        }
        guard let matched else { return .failure(.signature) }

        // Claims, only now.
        let parsedPayload = parts.payload.withUnsafeBytes { try? JSONValue.parse($0) }
        guard case .object(let claims)? = parsedPayload else { return .failure(.malformed) }
        guard let sub = claims["sub"]?.stringValue, !sub.isEmpty,
            let exp = claims["exp"]?.integerValue,
            let iat = claims["iat"]?.integerValue,
            let jti = claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= Self.maxJTIBytes
        else { return .failure(.claims) }
        var notBefore: Int64?
        if let value = claims["nbf"] {
            guard let nbf = value.integerValue else { return .failure(.claims) }
            notBefore = nbf
        }
        var sessionID: String?, role: TokenRole?, name: String?, channels: [String]?
        if let value = claims["sid"] {
            guard let text = value.stringValue else { return .failure(.claims) }
            sessionID = text
        }
        if let value = claims["role"] {
            guard let text = value.stringValue, let named = TokenRole(claim: text) else { return .failure(.claims) }
            role = named
        }
        if let value = claims["name"] {
            guard let text = value.stringValue else { return .failure(.claims) }
            name = text
        }
        if let value = claims["channels"] {
            guard let list = value.arrayValue else { return .failure(.claims) }
            var ids: [String] = []
            ids.reserveCapacity(list.count)
            for item in list {
                guard let id = item.stringValue, Self.isValidChannelID(id) else { return .failure(.claims) }
                ids.append(id)
            }
            channels = ids
        }

        switch claims["aud"] {
        case .string(let aud)? where aud == audience: break
        case .array(let list)? where list.contains(.string(audience)): break
        default: return .failure(.audience)
        }

        // Times: the lifetime (a property of the token), then each clock check.
        let lifetime = exp.subtractingReportingOverflow(iat)
        guard !lifetime.overflow, lifetime.partialValue > 0, lifetime.partialValue <= maxLifetime else {
            return .failure(.lifetime)
        }
        let earliest = Self.saturating(now, minus: leeway), latest = Self.saturating(now, minus: -leeway)
        if iat > latest { return .failure(.issuedInFuture) }
        if let notBefore, notBefore > latest { return .failure(.notYetValid) }
        if exp < earliest { return .failure(.expired) }

        return .success(
            TokenClaims(
                userID: sub, jti: jti, issuedAt: iat, expiresAt: exp, notBefore: notBefore,
                sessionID: sessionID, role: role, name: name, channels: channels, keyID: keyIDs[matched]))
    }

    /// A name for a secret that is not the secret (FNV-1a over its bytes, never logged): which
    /// connections a retired secret opened.
    static func keyID(of key: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash | 1
    }

    /// Whether `id` is a channel id (docs/protocol.md, "Channel ids"): 1–128 bytes of
    /// `[A-Za-z0-9_.:-]`.
    package static func isValidChannelID(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard (1...128).contains(utf8.count) else { return false }
        return utf8.allSatisfy { c in
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: ":"), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
    }

    /// `a - b`, clamped to Int64's range.
    private static func saturating(_ a: Int64, minus b: Int64) -> Int64 {
        let r = a.subtractingReportingOverflow(b)
        guard r.overflow else { return r.partialValue }
        return b > 0 ? .min : .max
    }
}
