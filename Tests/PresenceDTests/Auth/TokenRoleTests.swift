import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// `TokenRole`: the three words of docs/protocol.md, "Token format", and nothing else.
final class TokenRoleTests: XCTestCase {
    func testClaimsRoundTrip() {
        for role in TokenRole.allCases { XCTAssertEqual(TokenRole(claim: role.claim), role) }
        XCTAssertEqual(TokenRole.allCases.map(\.claim), ["admin", "member", "child"])
    }

    func testOtherWordsAreNoRole() {
        for text in ["", "Admin", "owner", "member ", "child\u{0}"] { XCTAssertNil(TokenRole(claim: text), text) }
    }

    func testOneByteInASession() {
        XCTAssertEqual(MemoryLayout<TokenRole?>.size, 1)
    }
}
