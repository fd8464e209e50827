import Glibc
import PresenceJSON
import PresenceLoop
import PresenceOutbound
import WSCore

/// What better-auth said about a cookie.
enum SessionLookup: Sendable, Equatable {
    case user(id: String, name: String?, role: String?, sessionID: String?)
    /// 401 from better-auth, or 200 with body `null` / no user → our 401.
    case noSession
    /// user.banned == true and (banExpires absent/null or in the future) → our 403.
    case banned
    /// 5xx (or another unexpected status), unparseable body, connection/TLS error → our 502.
    /// The message names the cause, never the cookie.
    case failed(String)
    /// → our 504.
    case timedOut
}

/// Asks `${AUTH_SERVICE_URL}/api/auth/get-session` (GET) with the caller's Cookie forwarded
/// verbatim, plus `X-Request-ID`, W3C `traceparent`, `Accept: application/json`,
/// `User-Agent: presenced`, on the calling loop's own HTTP client (no worker thread): keep-alive,
/// TLS, and one deadline of `timeoutMillis` across resolve, connect, TLS and the whole response.
/// Nothing here logs; cookies never appear in results.
final class AuthServiceClient: Sendable {
    /// The get-session path under the base URL.
    static let sessionPath = "/api/auth/get-session"

    /// The parsed base URL; nil when `baseURL` is not a usable http(s) URL (every lookup then fails).
    let baseURL: OutboundURL?
    let timeoutMillis: Int64
    /// The better-auth session cookie's name (AUTH_SESSION_COOKIE): only a request that carries
    /// it is worth a call.
    let sessionCookie: String

    init(baseURL: String, timeoutMillis: Int64 = 10_000, sessionCookie: String = "better-auth.session_token") {
        self.baseURL = OutboundURL(baseURL)
        self.timeoutMillis = timeoutMillis
        self.sessionCookie = sessionCookie
    }

    /// Whether a `Cookie` header carries the session cookie, under its name or with the
    /// `__Secure-` / `__Host-` prefix better-auth uses on https.
    func carriesSession(_ cookie: String) -> Bool {
        for pair in cookie.split(separator: ";") {
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingSpaces()
            if name == sessionCookie || name == "__Secure-" + sessionCookie || name == "__Host-" + sessionCookie { return true }
        }
        return false
    }

    /// `done` runs on `client`'s loop thread, from a later loop event. A `traceparent` that is not
    /// a well-formed W3C version-00 header is replaced by `TraceParent.make(requestID:)`.
    func lookup(cookie: String, requestID: String, traceparent: String, client: LoopHTTPClient,
                done: @escaping (SessionLookup) -> Void) {
        guard let url = baseURL else {
            _ = client.loop.schedule(after: 0) { done(.failed("invalid AUTH_SERVICE_URL")) }
            return
        }
        var headers = HTTPHeaders()
        headers.add("Accept", "application/json")
        headers.add("User-Agent", "presenced")
        if !cookie.isEmpty { headers.add("Cookie", cookie) }
        headers.add("X-Request-ID", requestID)
        headers.add("traceparent", TraceParent.isValid(traceparent) ? traceparent : TraceParent.make(requestID: requestID))
        client.send(method: "GET", url: url, path: AuthServiceClient.sessionPath, headers: headers, body: [],
                    timeoutMillis: timeoutMillis) { result in
            done(AuthServiceClient.interpret(result.mapError(AuthServiceClient.outboundError), nowMillis: UnixTime.nowMillis()))
        }
    }

    private static func outboundError(_ failure: LoopHTTPClient.Failure) -> OutboundError {
        switch failure {
        case .timeout: return .timeout
        case .tls(let message): return .tls(message)
        case .protocolError(let message): return .protocolError(message)
        case .connect(let message): return .connect(message)
        case .closed: return .connect("client shut down")
        }
    }

    /// What a get-session exchange means for the caller.
    static func interpret(_ result: Result<OutboundResponse, OutboundError>, nowMillis: Int64) -> SessionLookup {
        let response: OutboundResponse
        switch result {
        case .failure(.timeout): return .timedOut
        case .failure(let error): return .failed(error.description)
        case .success(let r): response = r
        }
        if response.status == 401 { return .noSession }
        guard response.status == 200 else { return .failed("auth service answered \(response.status)") }
        let document: JSONValue
        do {
            document = try response.body.withUnsafeBytes { raw throws(JSONError) in try JSONValue.parse(raw) }
        } catch {
            return .failed("auth service answered 200 with a body that is not JSON")
        }
        if document.isNull { return .noSession }
        guard document.objectValue != nil else { return .failed("auth service answered 200 with an unexpected body") }
        guard let user = document["user"], !user.isNull else { return .noSession }
        guard user.objectValue != nil else { return .failed("auth service answered 200 with a user that is not an object") }
        let id: String
        if let text = user["id"]?.stringValue, !text.isEmpty {
            id = text
        } else if let number = user["id"]?.integerValue {
            id = String(number)
        } else {
            return .failed("auth service answered 200 with a user without an id")
        }
        if user["banned"]?.boolValue == true, isBanActive(user["banExpires"], nowMillis: nowMillis) {
            return .banned
        }
        return .user(id: id, name: user["name"]?.stringValue, role: user["role"]?.stringValue,
                     sessionID: document["session"]?["id"]?.stringValue)
    }

    /// A ban without an end (absent, null), or ending after `nowMillis` (ms number or ISO 8601
    /// string). A value that cannot be read as a time keeps the ban (fail closed).
    static func isBanActive(_ expires: JSONValue?, nowMillis: Int64) -> Bool {
        guard let expires, !expires.isNull else { return true }
        if let millis = expires.doubleValue { return millis > Double(nowMillis) }
        if let text = expires.stringValue, let millis = ISO8601Millis.parse(text) { return millis > nowMillis }
        return true
    }
}

extension AuthServiceClient {

    /// Reads ISO 8601 / RFC 3339 timestamps as Unix milliseconds, without Foundation:
    /// `YYYY-MM-DD`, optionally followed by `T` (or a space) `HH:MM[:SS[.fraction]]` and `Z` or
    /// `±HH:MM` / `±HHMM` (no zone: UTC, as a date-only value is).
    enum ISO8601Millis {
        static func parse(_ text: String) -> Int64? {
            let b = Array(text.utf8)
            var i = 0
            func number(_ width: Int) -> Int? {
                guard i + width <= b.count else { return nil }
                var value = 0
                for k in i..<(i + width) {
                    let d = Int(b[k]) - 48
                    guard d >= 0 && d <= 9 else { return nil }
                    value = value * 10 + d
                }
                i += width
                return value
            }
            func expect(_ c: Character) -> Bool {
                guard i < b.count, b[i] == c.asciiValue! else { return false }
                i += 1
                return true
            }
            guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
                  (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else { return nil }
            var seconds = 0, millis = 0, offset = 0
            if i < b.count {
                guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
                i += 1
                guard let hour = number(2), expect(":"), let minute = number(2), hour < 24, minute < 60 else { return nil }
                var second = 0
                if expect(":") {
                    guard let s = number(2), s <= 60 else { return nil }
                    second = s
                    if expect(".") || expect(",") {
                        var digits = 0
                        while i < b.count, b[i] >= 48, b[i] <= 57 {
                            if digits < 3 { millis = millis * 10 + Int(b[i] - 48) }
                            digits += 1
                            i += 1
                        }
                        guard digits > 0 else { return nil }
                        for _ in digits..<max(digits, 3) { millis *= 10 }
                    }
                }
                seconds = hour * 3600 + minute * 60 + second
                if expect("Z") || expect("z") {
                } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                    let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                    i += 1
                    guard let oh = number(2), oh < 24 else { return nil }
                    _ = expect(":")
                    guard let om = number(2), om < 60 else { return nil }
                    offset = sign * (oh * 3600 + om * 60)
                }
                guard i == b.count else { return nil }
            }
            let days = daysFromCivil(year: year, month: month, day: day)
            return (Int64(days) * 86_400 + Int64(seconds - offset)) * 1000 + Int64(millis)
        }

        private static func daysIn(month: Int, year: Int) -> Int {
            switch month {
            case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
            case 4, 6, 9, 11: return 30
            default: return 31
            }
        }

        /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
        static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
            let y = month <= 2 ? year - 1 : year
            let era = (y >= 0 ? y : y - 399) / 400
            let yoe = y - era * 400
            let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
            return era * 146_097 + doe - 719_468
        }
    }
}
