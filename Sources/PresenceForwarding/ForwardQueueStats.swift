import PresenceLoop

/// Numbers for `/metrics`.
package struct ForwardQueueStats: Equatable, Sendable {
    /// Entries waiting (embedded: this queue's; Redis: the whole stream's, every instance's —
    /// report it from one loop only).
    package var depth: Int
    /// Bytes on disk of the queue log (embedded); nil in Redis mode.
    package var bytes: Int?
    /// `createdAt` of the oldest waiting entry (embedded: oldest in append order; Redis: the
    /// first entry of the stream).
    var oldestCreatedAt: String?
    /// Dead letters kept (embedded: this queue's; Redis: the whole dead-letter stream).
    package var deadLetters: Int

    /// Age of the oldest entry in milliseconds at `nowMillis` (Unix), or 0.
    package func oldestAgeMillis(nowMillis: Int64) -> Int64 {
        guard let oldest = oldestCreatedAt.flatMap(Timestamp.parseISO8601) else { return 0 }
        return max(0, nowMillis - oldest)
    }
}
