/// Where a Redis server is and how to log in: parsed from
/// `redis://[user[:password]@]host[:port][/db][?db=N]` or `rediss://…` (TLS, which the host
/// provides). Its descriptions never show the password.
public struct RedisEndpoint: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Host name or IP literal (IPv6 without brackets).
    public var host: String
    /// TCP port; 6379 unless given.
    public var port: Int
    /// True for `rediss://`: the host must open a TLS connection (SNI = ``host``).
    public var tls: Bool
    /// ACL user name for `AUTH user password`; nil for `AUTH password` (or no AUTH).
    public var username: String?
    /// Password; `AUTH` is sent during the handshake only when it is set.
    public var password: String?
    /// Database index for `SELECT` (sent when not 0).
    public var database: Int

    public init(
        host: String, port: Int = 6379, tls: Bool = false, username: String? = nil,
        password: String? = nil, database: Int = 0
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses a `redis://` or `rediss://` URL. User and password are percent-decoded (reserved
    /// characters in them must be percent-encoded); the database comes from the path (`/2`) or
    /// the query (`?db=2`); other query parameters are ignored.
    public static func parse(_ url: String) throws(RedisURLError) -> RedisEndpoint {
        var rest = Substring(url)
        let tls: Bool
        if let r = dropPrefix(rest, "redis://") {
            tls = false
            rest = r
        } else if let r = dropPrefix(rest, "rediss://") {
            tls = true
            rest = r
        } else {
            throw RedisURLError("the scheme must be redis:// or rediss://")
        }
        if rest.contains("#") { throw RedisURLError("a fragment (#) is not allowed") }

        // Authority ends at the first "/" or "?".
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let afterAuthority = rest[authorityEnd...]

        var username: String?
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                username = try decode(userinfo[..<colon], what: "user name")
                password = try decode(userinfo[userinfo.index(after: colon)...], what: "password")
            } else {
                username = try decode(userinfo, what: "user name")
            }
            if username?.isEmpty == true { username = nil }
        }

        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw RedisURLError("unterminated IPv6 address") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw RedisURLError("unexpected characters after the IPv6 address") }
                portText = after.dropFirst()
            }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." || $0 == "%" }) else {
                throw RedisURLError("invalid IPv6 address")
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw RedisURLError("missing host") }
        guard !host.contains(where: { $0 == "[" || $0 == "]" || $0 == "@" || $0 == " " }) else {
            throw RedisURLError("invalid host")
        }

        var port = 6379
        if let portText {
            guard let p = parseDecimal(portText), (1...65535).contains(p) else {
                throw RedisURLError("the port must be a number from 1 to 65535")
            }
            port = p
        }

        var path = afterAuthority
        var query: Substring = ""
        if let q = afterAuthority.firstIndex(of: "?") {
            path = afterAuthority[..<q]
            query = afterAuthority[afterAuthority.index(after: q)...]
        }
        var database: Int?
        if path.count > 1 {
            guard let db = parseDecimal(path.dropFirst()) else {
                throw RedisURLError("the path must be a database number")
            }
            database = db
        }
        for item in query.split(separator: "&") {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair[0] == "db" else { continue }
            guard pair.count == 2, let db = parseDecimal(pair[1]) else {
                throw RedisURLError("db must be a database number")
            }
            if let existing = database, existing != db { throw RedisURLError("the path and db= name different databases") }
            database = db
        }

        return RedisEndpoint(
            host: String(host), port: port, tls: tls, username: username,
            password: password, database: database ?? 0)
    }

    /// `rediss://user:***@host:6380/2`: the URL with the password masked.
    public var description: String {
        var s = tls ? "rediss://" : "redis://"
        if username != nil || password != nil {
            s += username ?? ""
            if password != nil { s += ":***" }
            s += "@"
        }
        s += host.contains(":") ? "[\(host)]" : host
        s += ":\(port)"
        if database != 0 { s += "/\(database)" }
        return s
    }

    public var debugDescription: String { "RedisEndpoint(\(description))" }

    /// Keeps `dump()` and the debugger from showing the password.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "host": host, "port": port, "tls": tls, "username": username as Any,
                "password": password == nil ? "nil" : "***", "database": database,
            ])
    }

    private static func dropPrefix(_ s: Substring, _ prefix: String) -> Substring? {
        guard s.count >= prefix.count,
            s.prefix(prefix.count).lowercased() == prefix
        else { return nil }
        return s.dropFirst(prefix.count)
    }

    private static func parseDecimal(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.count <= 9, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(s)
    }

    private static func decode(_ s: Substring, what: String) throws(RedisURLError) -> String {
        var out: [UInt8] = []
        let utf8 = Array(s.utf8)
        var i = 0
        while i < utf8.count {
            let b = utf8[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < utf8.count, let hi = hexValue(utf8[i + 1]), let lo = hexValue(utf8[i + 2]) else {
                    throw RedisURLError("invalid percent-encoding in the \(what)")
                }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw RedisURLError("the \(what) is not UTF-8 after percent-decoding")
        }
        return text
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
