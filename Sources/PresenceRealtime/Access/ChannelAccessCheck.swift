import PresenceJSON
import PresenceOutbound
import WSCore

/// One question to CHANNEL_AUTH_URL (docs/protocol.md, "The access check"): `POST` with
/// `{"user_id","channel","role","session_id"}` (role and session null when the token has none),
/// `X-Request-ID`, `traceparent` and the bearer token, answered within `timeoutMillis`.
/// `200 {"allowed":true}` admits; `200 {"allowed":false}` or `403` refuses; anything else — a
/// timeout, a connection error, 5xx, 401, 404, a body that is not that object — is `unavailable`.
enum ChannelAccessCheck {
    static let timeoutMillis: Int64 = 2_000

    static func body(_ subject: AccessSubject, channel: String) -> [UInt8] {
        let role = subject.role.map(JSONWriter.quoted) ?? "null"
        let session = subject.sessionID.map(JSONWriter.quoted) ?? "null"
        return Array(
            ("{\"user_id\":\(JSONWriter.quoted(subject.user)),\"channel\":\(JSONWriter.quoted(channel)),"
                + "\"role\":\(role),\"session_id\":\(session)}").utf8)
    }

    static func headers(token: String?, requestID: String, traceparent: String) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        headers.add("Accept", "application/json")
        headers.add("User-Agent", "presenced")
        headers.add("X-Request-ID", requestID)
        headers.add("traceparent", traceparent)
        if let token { headers.add("Authorization", "Bearer " + token) }
        return headers
    }

    /// What an answer means.
    static func interpret(_ result: Result<OutboundResponse, LoopHTTPClient.Failure>) -> AccessDecision {
        guard case .success(let response) = result else { return .unavailable }
        switch response.status {
        case 403:
            return .refused
        case 200:
            let document = try? response.body.withUnsafeBytes { raw throws(JSONError) in try JSONValue.parse(raw, maxDepth: 8) }
            switch document?["allowed"] {
            case .bool(true)?: return .allowed
            case .bool(false)?: return .refused
            default: return .unavailable
            }
        default:
            return .unavailable
        }
    }
}
