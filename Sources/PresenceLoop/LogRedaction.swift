/// The last line of defence for log output: callers never pass secrets, but a value that names
/// one by its key, or an error text that quotes a URL or a token, is masked before it is written.
/// Runs only for lines that are actually written (never on the hot path).
enum LogRedaction {
    package static let mask = "[redacted]"

    /// Field keys whose values are secret whatever they hold.
    private static let sensitiveKeyParts = [
        "token", "secret", "password", "passwd", "cookie", "authorization",
        "credential", "jwt", "api_key", "apikey",
    ]

    /// `value` as it may be logged under `key`.
    static func clean(_ value: String, key: String) -> String {
        let lowered = key.lowercased()
        if sensitiveKeyParts.contains(where: { lowered.contains($0) }) { return mask }
        return clean(value)
    }

    /// `text` with URL credentials (`scheme://user:pass@`), `token=` parameters, bearer tokens
    /// and JWT-shaped strings masked.
    static func clean(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard mayHoldSecret(bytes) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if let end = jwtEnd(bytes, at: i) {
                out += Array(mask.utf8)
                i = end
            } else if let (keep, end) = credentialsEnd(bytes, at: i) {
                out += bytes[i..<keep]
                out += Array(mask.utf8)
                out.append(UInt8(ascii: "@"))
                i = end
            } else if let (valueStart, wholeLine) = parameterValueStart(bytes, at: i) {
                out += bytes[i..<valueStart]
                out += Array(mask.utf8)
                i = valueStart
                while i < bytes.count && !(wholeLine ? isLineEnd(bytes[i]) : isValueEnd(bytes[i])) { i += 1 }
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Private

    /// Cheap pre-check: none of the patterns can match without one of these markers.
    private static func mayHoldSecret(_ b: [UInt8]) -> Bool {
        let text = String(decoding: b, as: UTF8.self).lowercased()
        return text.contains("://") || text.contains("eyj") || text.contains("token=") || text.contains("bearer ")
            || text.contains("secret=") || text.contains("password=") || text.contains("cookie")
    }

    private static func isBase64URL(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
    }

    private static func isValueEnd(_ c: UInt8) -> Bool {
        c == UInt8(ascii: "&") || c == UInt8(ascii: " ") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "#")
            || c == UInt8(ascii: ";") || c == UInt8(ascii: ",") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r")
            || c == UInt8(ascii: "\t") || c == UInt8(ascii: "'")
    }

    /// A JWT (`eyJ…` `.` `…` `.` `…`) starting at `i`: where it ends.
    private static func jwtEnd(_ b: [UInt8], at i: Int) -> Int? {
        guard i + 3 <= b.count, b[i] == UInt8(ascii: "e"), b[i + 1] == UInt8(ascii: "y"), b[i + 2] == UInt8(ascii: "J"),
            i == 0 || !isBase64URL(b[i - 1])
        else { return nil }
        var j = i
        var dots = 0
        while j < b.count {
            if isBase64URL(b[j]) {
                j += 1
            } else if b[j] == UInt8(ascii: "."), dots < 2 {
                dots += 1
                j += 1
            } else {
                break
            }
        }
        return dots >= 1 && j - i >= 10 ? j : nil
    }

    /// `scheme://userinfo@` at `i` (i at the scheme's first letter): the end of `scheme://` and
    /// the index after the `@`.
    private static func credentialsEnd(_ b: [UInt8], at i: Int) -> (keep: Int, end: Int)? {
        guard i + 3 <= b.count, b[i] == UInt8(ascii: ":"), b[i + 1] == UInt8(ascii: "/"), b[i + 2] == UInt8(ascii: "/") else {
            return nil
        }
        // i is at "://": the authority runs to the first "/", "?", "#" or value end.
        var j = i + 3
        var at: Int?
        while j < b.count, b[j] != UInt8(ascii: "/"), b[j] != UInt8(ascii: "?"), !isValueEnd(b[j]) {
            if b[j] == UInt8(ascii: "@") { at = j }
            j += 1
        }
        guard let at else { return nil }
        // Already masked (`RedisEndpoint`'s description: `user:***@`): nothing to hide.
        let userinfo = b[(i + 3)..<at]
        if userinfo.elementsEqual("***".utf8) || userinfo.reversed().starts(with: ":***".utf8.reversed()) { return nil }
        return (i + 3, at + 1)
    }

    /// A `token=`, `secret=`, `password=` parameter or `Bearer ` / `Cookie: ` prefix at `i`
    /// (not inside a longer word, but `CONSOLE_ADMIN_TOKEN=` and `WS_TOKEN_SECRET=` count): where its value starts, and whether it runs to the end of the
    /// line (a cookie header holds several `name=value; ` pairs).
    private static func parameterValueStart(_ b: [UInt8], at i: Int) -> (start: Int, wholeLine: Bool)? {
        guard i == 0 || !isLetterOrDigit(b[i - 1]) else { return nil }
        for marker in markers where i + marker.count <= b.count {
            var match = true
            for k in 0..<marker.count where lower(b[i + k]) != marker[k] {
                match = false
                break
            }
            if match { return (i + marker.count, marker.first == UInt8(ascii: "c")) }
        }
        return nil
    }

    private static func isLineEnd(_ c: UInt8) -> Bool {
        c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") || c == UInt8(ascii: "\"")
    }

    private static let markers: [[UInt8]] = ["token=", "access_token=", "secret=", "password=", "bearer ", "cookie: ", "cookie="]
        .map { Array($0.utf8) }

    /// Letters and digits continue a word; `_` does not, so `ADMIN_TOKEN=` is a `token=` parameter.
    private static func isLetterOrDigit(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || (c >= 0x30 && c <= 0x39) }
    private static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
}
