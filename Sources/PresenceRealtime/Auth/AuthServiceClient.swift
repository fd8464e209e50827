import Glibc
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
    func lookup(
        cookie: String, requestID: String, traceparent: String, client: LoopHTTPClient,
        done: @escaping (SessionLookup) -> Void
    ) {
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
        client.send(
            method: "GET", url: url, path: AuthServiceClient.sessionPath, headers: headers, body: [],
            timeoutMillis: timeoutMillis
        ) { result in
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
        return .user(
            id: id, name: user["name"]?.stringValue, role: user["role"]?.stringValue,
            sessionID: document["session"]?["id"]?.stringValue)
    }

    /// A ban without an end (absent, null), or ending after `nowMillis` (ms number or ISO 8601
    /// string). A value that cannot be read as a time keeps the ban (fail closed).
    static func isBanActive(_ expires: JSONValue?, nowMillis: Int64) -> Bool {
        guard let expires, !expires.isNull else { return true }
        if let millis = expires.doubleValue { return millis > Double(nowMillis) }
        if let text = expires.stringValue, let millis = Timestamp.parseISO8601(text) { return millis > nowMillis }
        return true
    }
}
