import CSystem
import PresenceJSON

/// Mints HS256 ephemeral tokens (`presenced token`, `POST /api/v1/ws-token`, dev mode) that
/// `TokenVerifier` accepts: header `{"alg":"HS256","typ":"JWT"}`, claims `sub aud iat exp jti`
/// plus the optional `sid role name channels`; `jti` is 128 random bits (`RAND_bytes`) in base64url.
/// Claim values are written as given; validating them (a known role, valid channel ids) is the caller's job.
package struct TokenMinter: Sendable {
    /// The `aud` written into every token.
    let audience: String
    /// Largest ttl; longer requests are clamped (docs/protocol.md, "How a token is checked":
    /// lifetime at most 300 s).
    package static let maxTTL: Int64 = 300
    private let key: HMACSHA256Key

    package init(secret: String, audience: String) {
        self.key = HMACSHA256Key(Array(secret.utf8))
        self.audience = audience
    }

    /// A token for `userID` valid from `now` for `ttl` seconds (clamped to 1...300), and its `exp`.
    package func mint(
        userID: String, ttl: Int64 = 60, role: String? = nil, name: String? = nil, sessionID: String? = nil,
        channels: [String]? = nil, now: Int64
    ) -> (token: String, expiresAt: Int64) {
        let expiresAt = now + min(max(ttl, 1), Self.maxTTL)
        var payload = "{\"sub\":" + JSONWriter.quoted(userID)
        payload += ",\"aud\":" + JSONWriter.quoted(audience)
        payload += ",\"iat\":\(now),\"exp\":\(expiresAt)"
        payload += ",\"jti\":" + JSONWriter.quoted(Self.randomJTI())
        if let sessionID { payload += ",\"sid\":" + JSONWriter.quoted(sessionID) }
        if let role { payload += ",\"role\":" + JSONWriter.quoted(role) }
        if let name { payload += ",\"name\":" + JSONWriter.quoted(name) }
        if let channels { payload += ",\"channels\":[" + channels.map(JSONWriter.quoted).joined(separator: ",") + "]" }
        payload += "}"
        return (JWT.sign(header: JWT.standardHeader, payload: payload, key: key), expiresAt)
    }

    /// 128 random bits from OpenSSL's CSPRNG, base64url (22 characters). Traps if the CSPRNG
    /// fails: a guessable jti would be worse than a refused request.
    static func randomJTI() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        precondition(ok == 1, "RAND_bytes failed")
        return Base64URL.encode(bytes)
    }
}
