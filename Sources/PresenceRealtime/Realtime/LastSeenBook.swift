/// When each user's last connection closed, in this process (embedded mode's side of
/// `UserPresence`), bounded in age and in count so that a stream of one-off users cannot grow it
/// without end. Not thread-safe: its owner locks.
struct LastSeenBook {
    private var times: [String: Int64] = [:]
    let capacity: Int
    let retentionMillis: Int64

    init(capacity: Int = UserPresence.maxRemembered, retentionMillis: Int64 = UserPresence.retentionMillis) {
        self.capacity = max(1, capacity)
        self.retentionMillis = retentionMillis
    }

    var count: Int { times.count }

    /// `user`'s last connection closed at `millis` (wall clock).
    mutating func record(_ user: String, at millis: Int64) {
        times[user] = millis
        if times.count > capacity { forget(now: millis) }
    }

    /// When `user` was last seen, unless that is older than the retention (or never).
    func lastSeen(_ user: String, now: Int64) -> Int64? {
        guard let at = times[user], now - at <= retentionMillis else { return nil }
        return at
    }

    /// Over capacity: drops what is past the retention, then the oldest, down to three quarters of
    /// the capacity — so the sort runs once per quarter-capacity of new users, not per user.
    private mutating func forget(now: Int64) {
        times = times.filter { now - $0.value <= retentionMillis }
        let keep = capacity - capacity / 4
        guard times.count > keep else { return }
        for (user, _) in times.sorted(by: { $0.value < $1.value }).prefix(times.count - keep) { times[user] = nil }
    }
}
