/// A parsed http(s) URL: scheme, host, port (default 80/443), path prefix.
///
/// Accepts `http://host[:port][/path]` and `https://…` (scheme case-insensitive). The host may be
/// a name, an IPv4 literal or a bracketed IPv6 literal (`host` keeps it without brackets). User
/// info, queries and fragments are refused: this names a service's base URL, not a resource.
/// `path` is the prefix every request path is appended to, without trailing slashes (`""` for
/// the root), so `https://auth.example.org/` and `https://auth.example.org` are equal.
package struct OutboundURL: Sendable, Equatable {
    var isTLS: Bool
    package var host: String
    package var port: UInt16
    package var path: String

    package init?(_ string: String) {
        let lower = string.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            isTLS = true
            rest = string.dropFirst(8)
        } else if lower.hasPrefix("http://") {
            isTLS = false
            rest = string.dropFirst(7)
        } else {
            return nil
        }
        guard !rest.contains(where: { $0 == "?" || $0 == "#" || $0 == "@" || $0 == "\\" }),
            rest.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return nil }
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        self.path = path

        var hostPart: Substring
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portPart = after.dropFirst()
            }
            guard hostPart.contains(":"), hostPart.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                hostPart = authority[..<colon]
                portPart = authority[authority.index(after: colon)...]
            } else {
                hostPart = authority
            }
            guard hostPart.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }) else { return nil }
        }
        guard !hostPart.isEmpty, hostPart.utf8.count <= 253 else { return nil }
        host = String(hostPart).lowercased()
        if let portPart {
            guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = UInt16(portPart), value > 0
            else { return nil }
            port = value
        } else {
            port = isTLS ? 443 : 80
        }
    }

    /// The `Host` header value: the host (bracketed when IPv6), with `:port` unless it is the scheme's default.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (isTLS ? 443 : 80) ? name : "\(name):\(port)"
    }
}
