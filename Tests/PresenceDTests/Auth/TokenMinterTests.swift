import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Minted tokens verify here and in PyJWT; ttl clamping; random jti.
final class TokenMinterTests: XCTestCase {
    private let secret = "minter-secret-0123456789-abcdefghijk"
    private let now: Int64 = 1_700_000_000

    func testMintedTokenVerifiesWithEveryClaim() throws {
        let minter = TokenMinter(secret: secret, audience: "presenced")
        let minted = minter.mint(
            userID: "u\"1\\ é", ttl: 120, role: "member", name: "Ann \"A\"\n<b>",
            sessionID: "sess-1", channels: ["family:1", "dm.a-b"], now: now)
        XCTAssertEqual(minted.expiresAt, now + 120)
        let claims = try TokenVerifier(secrets: [secret], audience: "presenced").verify(minted.token, now: now).get()
        XCTAssertEqual(claims.userID, "u\"1\\ é")
        XCTAssertEqual(claims.issuedAt, now)
        XCTAssertEqual(claims.expiresAt, now + 120)
        XCTAssertNil(claims.notBefore)
        XCTAssertEqual(claims.role, .member)
        XCTAssertEqual(claims.name, "Ann \"A\"\n<b>")
        XCTAssertEqual(claims.sessionID, "sess-1")
        XCTAssertEqual(claims.channels, ["family:1", "dm.a-b"])
    }

    func testMinimalTokenAndHeader() throws {
        let minted = TokenMinter(secret: secret, audience: "casa").mint(userID: "dev", now: now)
        XCTAssertEqual(minted.expiresAt, now + 60, "default ttl 60 s")
        let parts = try XCTUnwrap(JWT.split(minted.token))
        XCTAssertEqual(String(decoding: parts.header, as: UTF8.self), #"{"alg":"HS256","typ":"JWT"}"#)
        let payload = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(parts.payload)) as? [String: Any])
        XCTAssertEqual(Set(payload.keys), ["sub", "aud", "iat", "exp", "jti"])
        XCTAssertEqual(payload["aud"] as? String, "casa")
        let claims = try TokenVerifier(secrets: [secret], audience: "casa").verify(minted.token, now: now).get()
        XCTAssertEqual(
            claims,
            TokenClaims(
                userID: "dev", jti: claims.jti, issuedAt: now, expiresAt: now + 60,
                keyID: TokenVerifier.keyID(of: Array(secret.utf8))))
    }

    func testTTLIsClampedToTheContractLifetime() {
        let minter = TokenMinter(secret: secret, audience: "presenced")
        let verifier = TokenVerifier(secrets: [secret], audience: "presenced")
        for (ttl, expected) in [(Int64(1000), Int64(300)), (300, 300), (1, 1), (0, 1), (-5, 1)] {
            let minted = minter.mint(userID: "u", ttl: ttl, now: now)
            XCTAssertEqual(minted.expiresAt, now + expected, "ttl \(ttl)")
            XCTAssertEqual(verifier.verify(minted.token, now: now).map(\.expiresAt), .success(now + expected))
        }
    }

    func testJTIsAre128RandomBits() throws {
        let minter = TokenMinter(secret: secret, audience: "presenced")
        let verifier = TokenVerifier(secrets: [secret], audience: "presenced")
        var seen = Set<String>()
        for _ in 0..<2000 {
            let jti = try verifier.verify(minter.mint(userID: "u", now: now).token, now: now).get().jti
            XCTAssertEqual(jti.count, 22)
            XCTAssertEqual(Base64URL.decode(jti)?.count, 16)
            seen.insert(jti)
        }
        XCTAssertEqual(seen.count, 2000)
    }

    func testPresencedTokensVerifyInPyJWT() throws {
        let wallNow = UnixTime.now()
        let minted = TokenMinter(secret: secret, audience: "presenced")
            .mint(userID: "user-7", ttl: 90, role: "child", name: "Zoë", sessionID: "s1", channels: ["family:1"], now: wallNow)
        let decoded = try PyJWT.decode(token: minted.token, secret: secret, audience: "presenced")
        let header = try XCTUnwrap(decoded["header"] as? [String: Any])
        XCTAssertEqual(header["alg"] as? String, "HS256")
        XCTAssertEqual(header["typ"] as? String, "JWT")
        let claims = try XCTUnwrap(decoded["claims"] as? [String: Any])
        XCTAssertEqual(claims["sub"] as? String, "user-7")
        XCTAssertEqual(claims["aud"] as? String, "presenced")
        XCTAssertEqual((claims["iat"] as? NSNumber)?.int64Value, wallNow)
        XCTAssertEqual((claims["exp"] as? NSNumber)?.int64Value, wallNow + 90)
        XCTAssertEqual((claims["jti"] as? String)?.count, 22)
        XCTAssertEqual(claims["role"] as? String, "child")
        XCTAssertEqual(claims["name"] as? String, "Zoë")
        XCTAssertEqual(claims["sid"] as? String, "s1")
        XCTAssertEqual(claims["channels"] as? [String], ["family:1"])

        // PyJWT refuses a presenced token under another secret or audience (the check is real).
        XCTAssertThrowsError(
            try PyJWT.decode(
                token: minted.token, secret: "another-secret-0123456789-abcdefghij",
                audience: "presenced")
        ) { error in
            XCTAssertTrue("\(error)".contains("InvalidSignatureError"), "\(error)")
        }
        XCTAssertThrowsError(try PyJWT.decode(token: minted.token, secret: secret, audience: "other")) { error in
            XCTAssertTrue("\(error)".contains("InvalidAudienceError"), "\(error)")
        }
    }
}
