/// The `ALLOWED_ORIGINS` allow-list (CONTRACT §2): exact origins, `scheme://*.domain` for any
/// subdomain with that scheme, or `*` for all. A request without Origin is not a browser and passes.
struct OriginPolicy: Sendable {
    private let allowAll: Bool
    private let exact: Set<String>
    /// (scheme with "://", ".domain") pairs from wildcard entries.
    private let wildcards: [(scheme: String, suffix: String)]

    init(_ entries: [String]) {
        var exact = Set<String>()
        var wildcards: [(String, String)] = []
        var all = false
        for raw in entries {
            let entry = raw.lowercased()
            if entry == "*" { all = true; continue }
            let parts = entry.split(separator: "*", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0].hasSuffix("://"), parts[1].hasPrefix("."), parts[1].count > 1 {
                wildcards.append((String(parts[0]), String(parts[1])))
            } else {
                exact.insert(entry.hasSuffix("/") ? String(entry.dropLast()) : entry)
            }
        }
        self.allowAll = all
        self.exact = exact
        self.wildcards = wildcards
    }

    /// Whether a request with this Origin header (nil = absent) may proceed.
    func allows(_ origin: String?) -> Bool {
        guard let origin else { return true }
        if allowAll { return true }
        let o = origin.lowercased()
        if exact.contains(o) { return true }
        for (scheme, suffix) in wildcards where o.hasPrefix(scheme) {
            let host = o.dropFirst(scheme.count)
            // A subdomain: something before ".domain", no path, and the port (if any) after the domain.
            let hostOnly = host.split(separator: ":", maxSplits: 1).first.map(String.init) ?? String(host)
            if hostOnly.hasSuffix(suffix) && hostOnly.count > suffix.count && !host.contains("/") { return true }
        }
        return false
    }
}
