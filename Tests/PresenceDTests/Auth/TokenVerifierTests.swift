import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// docs/protocol.md, "How a token is checked", rule by rule: each rejection from a crafted token,
/// the leeway boundaries, key rotation, the verification order, and interoperability with PyJWT.
final class TokenVerifierTests: XCTestCase {
    private let secret = "current-secret-0123456789-abcdefghij"
    private let previous = "previous-secret-0123456789-abcdefgh"
    private let now: Int64 = 1_700_000_000
    private var verifier: TokenVerifier { TokenVerifier(secrets: [secret, previous], audience: "presenced") }

    /// JSON claims: a valid set, with `changes` applied (nil removes a claim, NSNull() writes null).
    private func claims(_ changes: [String: Any?] = [:]) -> String {
        var c: [String: Any] = ["sub": "u1", "aud": "presenced", "iat": Int(now), "exp": Int(now) + 60, "jti": "j1"]
        for (key, value) in changes { c[key] = value }
        let data = try! JSONSerialization.data(withJSONObject: c, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    private func token(_ payload: String, header: String = JWT.standardHeader, secret: String? = nil) -> String {
        JWT.sign(header: header, payload: payload, secret: Array((secret ?? self.secret).utf8))
    }

    private func assertRejected(
        _ token: String, _ reason: TokenRejection, at time: Int64? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        switch verifier.verify(token, now: time ?? now) {
        case .success(let claims): XCTFail("accepted, expected \(reason): \(claims)", file: file, line: line)
        case .failure(let got): XCTAssertEqual(got, reason, file: file, line: line)
        }
    }

    private func assertAccepted(
        _ token: String, at time: Int64? = nil, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        if case .failure(let reason) = verifier.verify(token, now: time ?? now) {
            XCTFail("refused: \(reason)", file: file, line: line)
        }
    }

    // MARK: accepted tokens

    func testAcceptsAValidTokenWithEveryClaim() throws {
        let t = token(
            claims([
                "nbf": Int(now) - 1, "sid": "s-9", "role": "child", "name": "Zoë \"Z\"",
                "channels": ["family:1", "a.b_c-D"],
            ]))
        let result = try verifier.verify(t, now: now).get()
        XCTAssertEqual(
            result,
            TokenClaims(
                userID: "u1", jti: "j1", issuedAt: now, expiresAt: now + 60, notBefore: now - 1,
                sessionID: "s-9", role: .child, name: "Zoë \"Z\"",
                channels: ["family:1", "a.b_c-D"], keyID: TokenVerifier.keyID(of: Array(secret.utf8))))
    }

    func testOptionalClaimsMayBeAbsentAndUnknownOnesAreIgnored() throws {
        let result = try verifier.verify(token(claims(["extra": ["nested": [1, 2]], "iss": "family-hub"])), now: now).get()
        XCTAssertNil(result.notBefore)
        XCTAssertNil(result.sessionID)
        XCTAssertNil(result.role)
        XCTAssertNil(result.name)
        XCTAssertNil(result.channels)
        XCTAssertEqual(try verifier.verify(token(claims(["channels": [String]()])), now: now).get().channels, [])
    }

    func testEveryRoleIsAccepted() {
        for role in ["admin", "member", "child"] { assertAccepted(token(claims(["role": role]))) }
    }

    func testHeaderVariantsAccepted() {
        let payload = claims()
        assertAccepted(token(payload, header: #"{"alg":"HS256"}"#))
        assertAccepted(token(payload, header: #"{"typ":"jwt","alg":"HS256"}"#))
        assertAccepted(token(payload, header: #"{"alg":"HS256","typ":"JWT","kid":"2024-rotation"}"#))
        assertAccepted(token(payload, header: #"{"alg":"HS256","kid":"previous"}"#))  // kid does not pick the secret
    }

    func testAudienceAsArray() {
        assertAccepted(token(claims(["aud": ["chat", "presenced"]])))
        assertRejected(token(claims(["aud": ["chat", "other"]])), .audience)
    }

    func testIntegralFloatTimesAreAccepted() {
        assertAccepted(token(#"{"sub":"u","aud":"presenced","jti":"j","iat":1700000000.0,"exp":1.70000006e9}"#))
    }

    // MARK: secrets and rotation

    func testPreviousSecretAcceptedUnknownSecretRefused() {
        assertAccepted(token(claims(), secret: secret))
        assertAccepted(token(claims(), secret: previous))
        assertRejected(token(claims(), secret: "some-other-secret-0123456789-abcdef"), .signature)
        let afterRotation = TokenVerifier(secrets: [secret], audience: "presenced")
        XCTAssertEqual(afterRotation.verify(token(claims(), secret: previous), now: now), .failure(.signature))
        XCTAssertEqual(
            TokenVerifier(secrets: [], audience: "presenced").verify(token(claims()), now: now),
            .failure(.signature))
        XCTAssertEqual(
            TokenVerifier(secrets: [""], audience: "presenced").verify(token(claims(), secret: ""), now: now),
            .failure(.signature), "an empty secret never verifies")
    }

    // MARK: missing and malformed

    func testMissing() {
        assertRejected("", .missing)
    }

    func testMalformedStructure() {
        let good = token(claims())
        let segments = good.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for bad in [
            "abc", "a.b", segments[0] + "." + segments[1], good + ".x", good + "=", good + "==",
            segments[0] + "=." + segments[1] + "." + segments[2], good.replacingOccurrences(of: "-", with: "+"),
            good + " ", "Bearer " + good, "." + segments[1] + "." + segments[2],
            segments[0] + ".." + segments[2],
        ] where bad != good {
            assertRejected(bad, .malformed)
        }
    }

    func testMalformedHeader() {
        let payload = claims()
        for header in [
            "not json", "[]", "\"HS256\"", "{", #"{"alg":"HS256","typ":"JWS"}"#, #"{"alg":"HS256","typ":1}"#,
            #"{"alg":"HS256","crit":["exp"]}"#, #"{"alg":"HS256","alg":"HS256"}"#,
        ] {
            assertRejected(token(payload, header: header), .malformed)
        }
    }

    func testMalformedPayloadAfterAValidSignature() {
        for payload in ["not json", "[1]", "\"claims\"", "{\"sub\":"] {
            assertRejected(token(payload), .malformed)
        }
    }

    func testLongerThan4096BytesIsMalformedEvenWhenSigned() {
        var name = ""
        var t = token(claims())
        while t.utf8.count <= 4096 {
            name += "x"
            t = token(claims(["name": name]))
        }
        assertRejected(t, .malformed)
        assertAccepted(token(claims(["name": String(name.dropLast(3))])))
    }

    // MARK: algorithm

    func testAlgorithmNoneAndOthersRefused() {
        let payload = Base64URL.encode(Array(claims().utf8))
        for header in [#"{"alg":"none","typ":"JWT"}"#, #"{"alg":"None"}"#, #"{"alg":"NONE"}"#, #"{"typ":"JWT"}"#] {
            let unsigned = Base64URL.encode(Array(header.utf8)) + "." + payload + "."
            assertRejected(unsigned, .algorithm)
        }
        for header in [
            #"{"alg":"HS512"}"#, #"{"alg":"hs256"}"#, #"{"alg":"RS256"}"#, #"{"alg":"ES256"}"#,
            #"{"alg":" HS256"}"#, #"{"alg":256}"#, #"{"alg":null}"#, #"{"alg":["HS256"]}"#,
        ] {
            assertRejected(token(claims(), header: header), .algorithm)
        }
    }

    // MARK: signature

    func testSignatureRefused() {
        let good = token(claims())
        var segments = good.split(separator: ".").map(String.init)
        let tampered = Base64URL.encode(Array(claims(["sub": "admin"]).utf8))
        assertRejected(segments[0] + "." + tampered + "." + segments[2], .signature)
        assertRejected(segments[0] + "." + segments[1] + ".", .signature)
        var signature = Base64URL.decode(segments[2])!
        signature[31] ^= 0x80
        segments[2] = Base64URL.encode(signature)
        assertRejected(segments.joined(separator: "."), .signature)
        assertRejected(segments[0] + "." + segments[1] + "." + Base64URL.encode(signature.prefix(31)), .signature)
    }

    // MARK: claims

    func testRequiredClaimsMissingOrWrongType() {
        let cases: [[String: Any?]] = [
            ["sub": nil], ["sub": ""], ["sub": 7], ["sub": NSNull()], ["sub": ["u1"]],
            ["exp": nil], ["exp": "1700000060"], ["exp": 1_700_000_060.5], ["exp": NSNull()], ["exp": true],
            ["iat": nil], ["iat": "now"], ["iat": 1_700_000_000.25],
            ["jti": nil], ["jti": ""], ["jti": 12], ["jti": String(repeating: "j", count: 129)],
        ]
        for change in cases {
            assertRejected(token(claims(change)), .claims)
        }
        assertAccepted(token(claims(["jti": String(repeating: "j", count: 128)])))
        assertRejected(token(claims(["jti": String(repeating: "é", count: 65)])), .claims)  // 130 bytes
    }

    func testOptionalClaimsWithWrongTypesOrValues() {
        let cases: [[String: Any?]] = [
            ["nbf": "soon"], ["nbf": NSNull()], ["nbf": 1.5],
            ["sid": 1], ["sid": NSNull()], ["name": 1], ["name": ["a"]],
            ["role": "owner"], ["role": "Admin"], ["role": ""], ["role": 1], ["role": NSNull()],
            ["channels": "family:1"], ["channels": [1]], ["channels": ["ok", ""]], ["channels": ["has space"]],
            ["channels": ["slash/no"]], ["channels": [String(repeating: "c", count: 129)]], ["channels": NSNull()],
            ["channels": [["nested"]]], ["channels": ["caf\u{00E9}"]],
        ]
        for change in cases {
            assertRejected(token(claims(change)), .claims)
        }
        assertAccepted(token(claims(["channels": [String(repeating: "c", count: 128)]])))
    }

    func testAudience() {
        assertRejected(token(claims(["aud": nil])), .audience)
        assertRejected(token(claims(["aud": "other"])), .audience)
        assertRejected(token(claims(["aud": "Presenced"])), .audience)
        assertRejected(token(claims(["aud": 1])), .audience)
        assertRejected(token(claims(["aud": [String]()])), .audience)
        let custom = TokenVerifier(secrets: [secret], audience: "casa-ws")
        XCTAssertEqual(custom.verify(token(claims(["aud": "casa-ws"])), now: now).map(\.userID), .success("u1"))
        XCTAssertEqual(custom.verify(token(claims()), now: now).map(\.userID), .failure(.audience))
    }

    // MARK: times, leeway boundaries (exactly 5 s)

    func testExpiryLeewayBoundary() {
        let t = token(claims(["iat": Int(now) - 100, "exp": Int(now)]))
        assertAccepted(t, at: now)
        assertAccepted(t, at: now + 5)
        assertRejected(t, .expired, at: now + 6)
        assertRejected(t, .expired, at: now + 10_000)
    }

    func testNotBeforeLeewayBoundary() {
        let t = token(claims(["iat": Int(now), "nbf": Int(now) + 10, "exp": Int(now) + 60]))
        assertRejected(t, .notYetValid, at: now)
        assertRejected(t, .notYetValid, at: now + 4)
        assertAccepted(t, at: now + 5)
        assertAccepted(t, at: now + 10)
    }

    func testIssuedInFutureLeewayBoundary() {
        let t = token(claims(["iat": Int(now) + 10, "exp": Int(now) + 70]))
        assertRejected(t, .issuedInFuture, at: now)
        assertRejected(t, .issuedInFuture, at: now + 4)
        assertAccepted(t, at: now + 5)
    }

    func testLifetimeHasNoLeeway() {
        assertAccepted(token(claims(["exp": Int(now) + 300])))
        assertRejected(token(claims(["exp": Int(now) + 301])), .lifetime)
        assertRejected(token(claims(["exp": Int(now)])), .lifetime)
        assertRejected(token(claims(["exp": Int(now) - 1])), .lifetime)
        assertRejected(token(claims(["exp": 9_007_199_254_740_992, "iat": -9_007_199_254_740_992])), .lifetime)
        let strict = TokenVerifier(secrets: [secret], audience: "presenced", maxLifetime: 60)
        XCTAssertEqual(strict.verify(token(claims(["exp": Int(now) + 61])), now: now).map(\.jti), .failure(.lifetime))
    }

    func testCustomLeeway() {
        let none = TokenVerifier(secrets: [secret], audience: "presenced", leeway: 0)
        let t = token(claims(["iat": Int(now) - 100, "exp": Int(now)]))
        XCTAssertEqual(none.verify(t, now: now).map(\.jti), .success("j1"))
        XCTAssertEqual(none.verify(t, now: now + 1).map(\.jti), .failure(.expired))
    }

    // MARK: order: structure → alg → signature → claims

    func testVerificationOrder() {
        // alg none with a payload that is not even JSON: the algorithm is reported, not the payload.
        let junk = Base64URL.encode(Array("junk".utf8))
        assertRejected(Base64URL.encode(Array(#"{"alg":"none"}"#.utf8)) + "." + junk + ".", .algorithm)
        // A bad signature over invalid claims: the claims are never read.
        assertRejected(token(claims(["sub": nil, "exp": "x"]), secret: "wrong-secret-0123456789-abcdefghijkl"), .signature)
        assertRejected(token("not json", secret: "wrong-secret-0123456789-abcdefghijkl"), .signature)
        // Signed, but invalid claims and expired: claims first.
        assertRejected(token(claims(["sub": nil])), .claims, at: now + 10_000)
        // A bad header type beats a bad algorithm (both structural, typ first).
        assertRejected(token(claims(), header: #"{"alg":"none","typ":"JWS"}"#), .malformed)
    }

    func testRejectionLabels() {
        XCTAssertEqual(
            TokenRejection.allCases.map(\.rawValue),
            [
                "missing", "malformed", "algorithm", "signature", "expired", "not_yet_valid", "issued_in_future",
                "lifetime", "audience", "claims", "replayed",
            ])
        let t = token(claims())
        for reason in TokenRejection.allCases {
            XCTAssertFalse("\(reason)".contains(t))
            XCTAssertFalse(String(reflecting: reason).contains(secret))
        }
    }

    func testUnixTimeIsTheWallClock() {
        XCTAssertEqual(Double(UnixTime.now()), Date().timeIntervalSince1970, accuracy: 2)
    }

    // MARK: PyJWT interoperability

    func testTokensMintedByPyJWTVerify() throws {
        let wallNow = UnixTime.now()
        let payload =
            #"{"sub":"user-42","aud":"presenced","iat":\#(wallNow),"exp":\#(wallNow + 60),"jti":"py-1","#
            + #""nbf":\#(wallNow),"sid":"sess","role":"admin","name":"Zoë","channels":["family:7","dm.1-2"]}"#
        let minted = try PyJWT.encode(claimsJSON: payload, secret: secret)
        let claims = try verifier.verify(minted, now: wallNow).get()
        XCTAssertEqual(
            claims,
            TokenClaims(
                userID: "user-42", jti: "py-1", issuedAt: wallNow, expiresAt: wallNow + 60,
                notBefore: wallNow, sessionID: "sess", role: .admin, name: "Zoë",
                channels: ["family:7", "dm.1-2"], keyID: TokenVerifier.keyID(of: Array(secret.utf8))))

        // With a kid header, an audience list, signed with the previous secret.
        let rotated = try PyJWT.encode(
            claimsJSON: #"{"sub":"u","aud":["x","presenced"],"iat":\#(wallNow),"exp":\#(wallNow + 300),"jti":"py-2"}"#,
            secret: previous, headersJSON: #"{"kid":"old"}"#)
        XCTAssertEqual(verifier.verify(rotated, now: wallNow).map(\.jti), .success("py-2"))
    }

    func testPyJWTTokensThatMustBeRefused() throws {
        let wallNow = UnixTime.now()
        let base = #"{"sub":"u","aud":"presenced","iat":\#(wallNow),"exp":\#(wallNow + 60),"jti":"py"}"#
        XCTAssertEqual(
            verifier.verify(try PyJWT.encode(claimsJSON: base, secret: secret, algorithm: "HS512"), now: wallNow)
                .map(\.jti), .failure(.algorithm))
        XCTAssertEqual(
            verifier.verify(try PyJWT.encode(claimsJSON: base, secret: secret, algorithm: "HS384"), now: wallNow)
                .map(\.jti), .failure(.algorithm))
        XCTAssertEqual(
            verifier.verify(try PyJWT.encode(claimsJSON: base, secret: "", algorithm: "none"), now: wallNow)
                .map(\.jti), .failure(.algorithm))
        XCTAssertEqual(
            verifier.verify(
                try PyJWT.encode(claimsJSON: base, secret: "an-unknown-secret-0123456789abcdef"),
                now: wallNow
            ).map(\.jti), .failure(.signature))
        let long = #"{"sub":"u","aud":"presenced","iat":\#(wallNow),"exp":\#(wallNow + 301),"jti":"py"}"#
        XCTAssertEqual(
            verifier.verify(try PyJWT.encode(claimsJSON: long, secret: secret), now: wallNow).map(\.jti),
            .failure(.lifetime))
    }
}
