/// Counters of one connection, for metrics. Monotonic except where noted.
public struct RedisStats: Hashable, Sendable {
    /// Upper bounds (inclusive, ms) of the round-trip histogram buckets; one more bucket counts
    /// everything above the last bound.
    public static let rttBucketBoundsMillis: [Int64] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500]

    /// Commands written to the server (handshake and health-check commands included).
    public var commandsSent: UInt64 = 0
    /// Replies matched to commands (error replies included).
    public var replies: UInt64 = 0
    /// Error replies (``RedisError/server(_:)``).
    public var errorReplies: UInt64 = 0
    /// Commands failed without being sent: not connected, too many pending, invalid.
    public var rejected: UInt64 = 0
    /// Sent commands failed without a reply: timeout, connection loss, shutdown.
    public var failedPending: UInt64 = 0
    /// Times the connection was declared broken because a reply or the handshake took too long.
    public var timeouts: UInt64 = 0
    /// Connection attempts started (the first one included).
    public var connectAttempts: UInt64 = 0
    /// Times the connection became ready again after having been ready before.
    public var reconnects: UInt64 = 0
    /// Failed connection attempts and losses of a ready connection.
    public var disconnects: UInt64 = 0
    /// `EVALSHA` calls answered `NOSCRIPT` and retried with `EVAL`.
    public var scriptFallbacks: UInt64 = 0
    /// Sum and count of command round trips, in host milliseconds.
    public var rttSumMillis: Int64 = 0
    public var rttCount: UInt64 = 0
    /// Round trips per bucket (not cumulative): `rttBuckets[i]` counts round trips
    /// `≤ rttBucketBoundsMillis[i]` and above the previous bound; the last one counts the rest.
    public var rttBuckets: [UInt64] = Array(repeating: 0, count: RedisStats.rttBucketBoundsMillis.count + 1)

    public init() {}

    /// Records one round trip.
    mutating func recordRoundTrip(_ millis: Int64) {
        let rtt = max(0, millis)
        rttSumMillis &+= rtt
        rttCount &+= 1
        var i = 0
        let bounds = RedisStats.rttBucketBoundsMillis
        while i < bounds.count && rtt > bounds[i] { i += 1 }
        rttBuckets[i] &+= 1
    }
}
