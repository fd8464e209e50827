/// One chat message waiting to be forwarded to chat-service (docs/operations.md, "The forward request"): the REST fields of
/// proto `ChatMessage` plus what the forward request carries (`X-Request-ID`, `traceparent`)
/// and how many delivery attempts have failed so far.
package struct ForwardEntry: Equatable, Hashable, Sendable {
    /// UUIDv7 message id; also the `Idempotency-Key` (a redelivery is harmless).
    package var id: String
    package var channel: String
    package var sender: String
    package var content: String
    /// ISO-8601 UTC with milliseconds (`2026-11-28T10:24:41.123Z`), as sent to clients.
    package var createdAt: String
    /// `X-Request-ID` of the forward (the WebSocket upgrade's request id); may be empty.
    package var requestID: String
    /// W3C `traceparent` to send; may be empty.
    var traceParent: String
    /// Delivery attempts answered 5xx so far (``ForwardQueue/recordAttempt(_:_:)`` adds one): what
    /// `FORWARD_MAX_ATTEMPTS` counts. Timeouts, connection errors, 408 and 429 are not counted.
    package var attempts: Int

    package init(
        id: String, channel: String, sender: String, content: String, createdAt: String,
        requestID: String = "", traceParent: String = "", attempts: Int = 0
    ) {
        self.id = id
        self.channel = channel
        self.sender = sender
        self.content = content
        self.createdAt = createdAt
        self.requestID = requestID
        self.traceParent = traceParent
        self.attempts = attempts
    }

    /// Stands in for an entry no longer kept (its strings released).
    package static let removed = ForwardEntry(id: "", channel: "", sender: "", content: "", createdAt: "")
}
