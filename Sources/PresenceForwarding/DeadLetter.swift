import PresenceLoop

/// An entry that will not be retried on its own: chat-service refused it for good (a 4xx other
/// than 408/409/429), or answered 5xx to it `FORWARD_MAX_ATTEMPTS` times. An operator lists
/// these and moves them back (`presenced dead-letters`).
package struct DeadLetter: Equatable, Sendable {
    /// The entry as it was when it died (`attempts` included).
    package var entry: ForwardEntry
    /// Why (e.g. `chat-service answered 422`).
    package var reason: String
    /// When it was moved, Unix milliseconds.
    package var atMillis: Int64

    /// `atMillis` as ISO-8601 UTC.
    package var at: String { Timestamp.iso8601(seconds: Int(atMillis / 1000), millis: Int(atMillis % 1000)) }
}
