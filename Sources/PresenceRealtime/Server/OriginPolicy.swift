/// The `ALLOWED_ORIGINS` allow-list (docs/protocol.md, "Origins and CORS"): exact origins,
/// `scheme://*.domain[:port]` for any subdomain with that scheme and port, or `*` for every origin.
/// Ports are compared: an entry without a port matches only the scheme's default port.
/// `Origin: null` (sandboxed frames, `file:` pages, some redirects) is never allowed, `*` included.
/// A request without Origin is not a browser and passes; a same-origin request (the Origin's host
/// and port are the request's `Host`) passes too.
struct OriginPolicy: Sendable {
    /// `scheme://host:port` in lower case, the port always present when the scheme has a default.
    private struct Parsed: Hashable {
        var scheme: String
        var host: String
        var port: Int?

        /// `scheme://host[:port]` (no path, user info, query or fragment; IPv6 literals in
        /// brackets), or nil.
        init?(_ text: String) {
            let lower = text.lowercased()
            guard let (schemePart, rest) = OriginPolicy.splitScheme(lower) else { return nil }
            scheme = schemePart
            var authority = rest
            if authority.hasSuffix("/") { authority = authority.dropLast() }
            guard !scheme.isEmpty, !authority.isEmpty,
                authority.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !"/@?#\\".utf8.contains($0) })
            else { return nil }
            let hostEnd = authority.hasPrefix("[") ? authority.firstIndex(of: "]").map { authority.index(after: $0) } : nil
            let tail = hostEnd.map { authority[$0...] } ?? authority
            if let colon = tail.lastIndex(of: ":") {
                let digits = authority[authority.index(after: colon)...]
                guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let p = Int(digits),
                    (1...65535).contains(p)
                else { return nil }
                host = String(authority[..<colon])
                port = p
            } else {
                host = String(authority)
                port = nil
            }
            guard !host.isEmpty else { return nil }
            if port == nil { port = Parsed.defaultPort(scheme) }
        }

        static func defaultPort(_ scheme: String) -> Int? {
            switch scheme {
            case "http", "ws": return 80
            case "https", "wss": return 443
            default: return nil
            }
        }
    }

    private let allowAll: Bool
    private let exact: Set<Parsed>
    /// Wildcard entries: scheme, ".domain" and port.
    private let wildcards: [(scheme: String, suffix: String, port: Int?)]

    init(_ entries: [String]) {
        var exact = Set<Parsed>()
        var wildcards: [(String, String, Int?)] = []
        var all = false
        for raw in entries {
            let entry = raw.lowercased()
            if entry == "*" {
                all = true
                continue
            }
            if let (scheme, rest) = OriginPolicy.splitScheme(entry), rest.hasPrefix("*.") {
                // Parsed as if the "*" were a label, then the label is dropped from the host.
                if let p = Parsed(scheme + "://x" + rest.dropFirst()) { wildcards.append((p.scheme, String(p.host.dropFirst()), p.port)) }
            } else if let p = Parsed(entry) {
                exact.insert(p)
            }
        }
        self.allowAll = all
        self.exact = exact
        self.wildcards = wildcards
    }

    /// Whether a request with this Origin header (nil = absent: not a browser) may proceed.
    func allows(_ origin: String?) -> Bool {
        guard let origin else { return true }
        return matches(origin) != nil
    }

    /// How `origin` is on the list: nil when it is not (or is `null`); `listed` when it matches an
    /// exact or wildcard entry; `anyOrigin` when only `*` admits it.
    enum Match { case listed, anyOrigin }

    func matches(_ origin: String) -> Match? {
        guard origin.lowercased() != "null", let o = Parsed(origin) else { return nil }
        if exact.contains(o) { return .listed }
        for w in wildcards
        where w.scheme == o.scheme && w.port == o.port
            && o.host.hasSuffix(w.suffix) && o.host.utf8.count > w.suffix.utf8.count && !o.host.hasPrefix(".")
        {
            return .listed
        }
        return allowAll ? .anyOrigin : nil
    }

    /// `allows(origin)`, or a same-origin request: the page was served by this very host and
    /// port (the console at `/`). A cross-site page cannot pass this — its browser sends its own
    /// origin and the Host of the target — so it does not open cross-site WebSocket hijacking.
    func allows(_ origin: String?, host: String?) -> Bool {
        if allows(origin) { return true }
        guard let origin, let host else { return false }
        return OriginPolicy.isSameOrigin(origin, host: host)
    }

    /// The CORS answer headers for a browser request from `origin` (none when it is not
    /// allowed): a listed origin is echoed with credentials allowed; under `*` alone the answer
    /// is `*` without credentials, so no foreign page can read a credentialed response.
    func corsHeaders(for origin: String) -> [(String, String)] {
        switch matches(origin) {
        case .listed?:
            return [
                ("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"), ("Vary", "Origin"),
                ("Access-Control-Expose-Headers", "X-Request-ID"),
            ]
        case .anyOrigin?:
            return [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "X-Request-ID")]
        case nil:
            return []
        }
    }

    /// `scheme` and what follows `://`.
    private static func splitScheme(_ text: String) -> (String, Substring)? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let rest = text[text.index(after: colon)...]
        guard rest.hasPrefix("//") else { return nil }
        return (String(text[..<colon]), rest.dropFirst(2))
    }

    /// Whether `origin` is `http://` or `https://` followed by exactly the authority in `host`
    /// (case-insensitive; a missing port is the scheme's default).
    static func isSameOrigin(_ origin: String, host: String) -> Bool {
        guard let o = Parsed(origin), o.scheme == "http" || o.scheme == "https",
            let h = Parsed(o.scheme + "://" + host)
        else { return false }
        return o == h
    }
}
