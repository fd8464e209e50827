/// Counters of a ``RedisCluster`` beyond its nodes' ``RedisStats``. Monotonic.
public struct RedisClusterStats: Hashable, Sendable {
    /// `MOVED` redirects followed.
    public var moved: UInt64 = 0
    /// `ASK` redirects followed (`ASKING` + the command at the importing node).
    public var asked: UInt64 = 0
    /// `TRYAGAIN` replies (multi-key command during a slot migration) retried.
    public var retried: UInt64 = 0
    /// Commands that failed because they were redirected more than `maxRedirects` times.
    public var redirectLimit: UInt64 = 0
    /// `CLUSTER SLOTS` requests sent.
    public var slotRefreshes: UInt64 = 0
    /// `CLUSTER SLOTS` requests that failed or returned no usable map.
    public var slotRefreshFailures: UInt64 = 0
    /// `EVALSHA` calls answered `NOSCRIPT` and retried with `EVAL`.
    public var scriptFallbacks: UInt64 = 0

    public init() {}
}

extension RedisStats {
    /// Adds `other`'s counters to these (for totals over several connections).
    public mutating func add(_ other: RedisStats) {
        commandsSent &+= other.commandsSent
        replies &+= other.replies
        errorReplies &+= other.errorReplies
        rejected &+= other.rejected
        failedPending &+= other.failedPending
        timeouts &+= other.timeouts
        connectAttempts &+= other.connectAttempts
        reconnects &+= other.reconnects
        disconnects &+= other.disconnects
        scriptFallbacks &+= other.scriptFallbacks
        rttSumMillis &+= other.rttSumMillis
        rttCount &+= other.rttCount
        for i in 0..<min(rttBuckets.count, other.rttBuckets.count) { rttBuckets[i] &+= other.rttBuckets[i] }
    }
}
