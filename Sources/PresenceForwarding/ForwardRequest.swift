import PresenceJSON
import PresenceOutbound
import WSCore

/// The `POST ${CHAT_SERVICE_URL}/api/v1/messages` of one entry
/// (docs/operations.md, "The forward request"): the REST names of proto `ChatMessage` as the JSON
/// body, `Idempotency-Key` = the message id (a redelivery is recognised), the upgrade's
/// `X-Request-ID` and a W3C `traceparent`, and the bearer token.
enum ForwardRequest {
    package static let path = "/api/v1/messages"

    package static func body(_ entry: ForwardEntry) -> [UInt8] {
        Array(
            ("{\"id\":" + JSONWriter.quoted(entry.id)
                + ",\"channel_id\":" + JSONWriter.quoted(entry.channel)
                + ",\"sender_id\":" + JSONWriter.quoted(entry.sender)
                + ",\"content\":" + JSONWriter.quoted(entry.content)
                + ",\"created_at\":" + JSONWriter.quoted(entry.createdAt) + "}").utf8)
    }

    package static func headers(_ entry: ForwardEntry, token: String?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        headers.add("Idempotency-Key", entry.id)
        let requestID = entry.requestID.isEmpty ? RequestID.make() : entry.requestID
        headers.add("X-Request-ID", requestID)
        headers.add("traceparent", TraceParent.isValid(entry.traceParent) ? entry.traceParent : TraceParent.make(requestID: requestID))
        if let token, !token.isEmpty { headers.add("Authorization", "Bearer " + token) }
        return headers
    }
}
