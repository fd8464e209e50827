/// A token's `role` claim (docs/protocol.md, "Token format"): one of three words, so a connection
/// keeps it in one byte (as a `String?` it was 16 of every session's bytes, issue 19).
package enum TokenRole: UInt8, CaseIterable, Sendable {
    case admin, member, child

    /// The claim's text.
    package var claim: String {
        switch self {
        case .admin: "admin"
        case .member: "member"
        case .child: "child"
        }
    }

    /// The role a claim names; nil for any other text.
    package init?(claim: String) {
        guard let role = Self.allCases.first(where: { $0.claim == claim }) else { return nil }
        self = role
    }
}
