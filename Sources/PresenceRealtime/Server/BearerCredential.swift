/// A configured bearer token (CONSOLE_ADMIN_TOKEN, SERVER_API_TOKEN) and the check of an
/// `Authorization` header against it, in constant time: every byte of the longer of the two is
/// looked at, whatever differs first. The token itself is never shown.
struct BearerCredential: Sendable {
    private let token: [UInt8]

    init(_ token: String) { self.token = Array(token.utf8) }

    /// Whether `authorization` is `Bearer <the token>` (the scheme in any case).
    func accepts(authorization: String?) -> Bool {
        guard let authorization, authorization.utf8.count > 7, authorization.prefix(7).lowercased() == "bearer " else { return false }
        return Self.constantTimeEquals(Array(authorization.utf8.dropFirst(7)), token)
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt64(a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= UInt64((i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0))
        }
        return difference == 0
    }
}
