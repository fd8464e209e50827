/// The `ALLOWED_ORIGINS` allow-list (CONTRACT §2): exact origins, `scheme://*.domain` for any
/// subdomain with that scheme, or `*` for all. A request without Origin is not a browser and passes;
/// a same-origin request (the Origin's host and port are the request's `Host`) passes too.
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

    /// `allows(origin)`, or a same-origin request: the page was served by this very host and
    /// port (the console at `/`). A cross-site page cannot pass this — its browser sends its own
    /// origin and the Host of the target — so it does not open cross-site WebSocket hijacking.
    func allows(_ origin: String?, host: String?) -> Bool {
        if allows(origin) { return true }
        guard let origin, let host else { return false }
        return OriginPolicy.isSameOrigin(origin, host: host)
    }

    /// Whether `origin` is `http://` or `https://` followed by exactly the authority in `host`
    /// (case-insensitive; a missing port is the scheme's default).
    static func isSameOrigin(_ origin: String, host: String) -> Bool {
        let o = origin.lowercased(), h = host.lowercased()
        let scheme: String, defaultPort: String
        if o.hasPrefix("http://") { scheme = "http://"; defaultPort = "80" }
        else if o.hasPrefix("https://") { scheme = "https://"; defaultPort = "443" }
        else { return false }
        let authority = String(o.dropFirst(scheme.count))
        func normalized(_ a: String) -> String? {
            guard !a.isEmpty, a.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "@")
                                                   && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }) else { return nil }
            // A port follows the last ":" after any IPv6 literal's "]".
            let tail = a.hasPrefix("[") ? (a.split(separator: "]", maxSplits: 1).dropFirst().first.map(String.init) ?? "") : a
            return tail.contains(":") ? a : a + ":" + defaultPort
        }
        guard let left = normalized(authority), let right = normalized(h) else { return false }
        return left == right
    }
}
