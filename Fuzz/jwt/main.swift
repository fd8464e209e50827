/// libFuzzer entry for `TokenVerifier.verify` (Sources/PresenceRealtime/Auth/TokenVerifier.swift, JWT.swift,
/// Base64URL.swift).
///
/// Byte 0 picks the mode. Even: the rest is a token as is (random tokens). Odd: structure-aware — the
/// rest splits at 0xFF into a header JSON, a claims JSON and a list of (position, byte) edits; an empty
/// header or claims part means a valid one (claims built from `now`); the pieces are signed with the
/// verifier's secret, then the edits are applied to the token text.
/// Invariants: an unedited token with default header and claims verifies to exactly those claims; an
/// accepted token is three canonical base64url segments (re-encoding gives the same text), its
/// signature is the HMAC of its signing input, its header says HS256, and its claims obey every rule
/// (audience, lifetime, clock with leeway, channel ids, jti length; a role is a `TokenRole` by type);
/// a verifier with another secret refuses it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJWT(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let token: String
    var expected: TokenClaims?
    if data[0] & 1 == 0 {
        token = String(decoding: rest, as: UTF8.self)
    } else {
        let parts = rest.split(separator: 0xFF, maxSplits: 2, omittingEmptySubsequences: false)
        let header = parts.count > 0 && !parts[0].isEmpty ? Array(parts[0]) : Array(JWT.standardHeader.utf8)
        let defaultClaims =
            #"{"sub":"u1","aud":"presenced","iat":\#(now - 10),"exp":\#(now + 50),"jti":"j-1","role":"member","channels":["c1","fam:2"]}"#
        let claims = parts.count > 1 && !parts[1].isEmpty ? Array(parts[1]) : Array(defaultClaims.utf8)
        let signingInput = Base64URL.encode(header) + "." + Base64URL.encode(claims)
        var text = Array((signingInput + "." + Base64URL.encode(JWT.hmacSHA256(key: secret, message: Array(signingInput.utf8)))).utf8)
        let edits = parts.count > 2 ? Array(parts[2]) : []
        var i = 0
        while i + 1 < edits.count, !text.isEmpty {
            text[Int(edits[i]) % text.count] = edits[i + 1]
            i += 2
        }
        token = String(decoding: text, as: UTF8.self)
        if edits.count < 2 && (parts.count < 1 || parts[0].isEmpty) && (parts.count < 2 || parts[1].isEmpty) {
            expected = TokenClaims(
                userID: "u1", jti: "j-1", issuedAt: now - 10, expiresAt: now + 50, notBefore: nil,
                sessionID: nil, role: .member, name: nil, channels: ["c1", "fam:2"],
                keyID: TokenVerifier.keyID(of: secret))
        }
    }

    let result = verifier.verify(token, now: now)
    if let expected {
        invariant(result == .success(expected), "valid token refused: \(result)")
    }
    guard case .success(let claims) = result else { return 0 }

    guard let parts = JWT.split(token) else {
        invariant(false, "accepted token does not split")
        return 0
    }
    let canonical = Base64URL.encode(parts.header) + "." + Base64URL.encode(parts.payload) + "." + Base64URL.encode(parts.signature)
    invariant(canonical == token, "accepted token is not canonical base64url")
    invariant(parts.signature == JWT.hmacSHA256(key: secret, message: parts.signingInput), "accepted signature is not the HMAC")
    guard case .object(let header)? = try? parts.header.withUnsafeBytes({ try JSONValue.parse($0) }), header["alg"] == .string("HS256")
    else {
        invariant(false, "accepted header without alg HS256")
        return 0
    }
    invariant(
        !claims.userID.isEmpty && !claims.jti.isEmpty && claims.jti.utf8.count <= TokenVerifier.maxJTIBytes, "bad sub or jti accepted")
    let lifetime = claims.expiresAt - claims.issuedAt
    invariant(lifetime > 0 && lifetime <= verifier.maxLifetime, "lifetime \(lifetime) accepted")
    invariant(claims.issuedAt <= now + verifier.leeway && claims.expiresAt >= now - verifier.leeway, "clock checks broken")
    if let nbf = claims.notBefore { invariant(nbf <= now + verifier.leeway, "nbf in the future accepted") }
    for id in claims.channels ?? [] { invariant(TokenVerifier.isValidChannelID(id), "channel id \(id) accepted") }
    guard case .object(let payload)? = try? parts.payload.withUnsafeBytes({ try JSONValue.parse($0) }) else {
        invariant(false, "accepted claims that are not an object")
        return 0
    }
    switch payload["aud"] {
    case .string("presenced")?: break
    case .array(let list)? where list.contains(.string("presenced")): break
    default: invariant(false, "audience \(String(describing: payload["aud"])) accepted")
    }
    invariant(otherVerifier.verify(token, now: now) == .failure(.signature), "a verifier with another secret accepted the token")
    return 0
}

private let now: Int64 = 1_800_000_000
private let secret = Array("fuzz-secret-current".utf8)
private let verifier = TokenVerifier(secrets: ["fuzz-secret-current", "fuzz-secret-previous"], audience: "presenced")
private let otherVerifier = TokenVerifier(secrets: ["another-secret"], audience: "presenced")

private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("Invariant violated: \(message())") }
}
