import PresenceLoop

/// Requests per second per client address, shared by every loop: a token bucket per address
/// (`RateLimiter`, burst ten times the rate), 16 shards each behind its own lock. Used where a
/// request costs someone else's work (`POST /api/v1/ws-token` asks better-auth). Buckets that
/// have refilled are forgotten once a shard holds more than `maxPerShard` addresses (and every
/// bucket of the shard if that is not enough: memory stays bounded whatever the address spread).
final class AddressPacer: Sendable {
    private final class Shard: Sendable {
        let buckets = Lock<[PeerAddress: RateLimiter]>([:])
    }

    static let burst = 10
    let rate: Int
    let maxPerShard: Int
    private let shards: [Shard]

    init(rate: Int, maxPerShard: Int = 4096) {
        self.rate = rate
        self.maxPerShard = maxPerShard
        shards = (0..<16).map { _ in Shard() }
    }

    /// Takes one request of `address` (by `clientKey`) at `now` (monotonic ms): nil when it may
    /// go on, else the milliseconds until it may try again.
    func take(_ address: PeerAddress, now: Int64) -> Int64? {
        guard rate > 0 else { return nil }
        let key = address.clientKey
        let shard = shards[Int(truncatingIfNeeded: ((key.high ^ key.low) &* 0x9E37_79B9_7F4A_7C15) >> 60)]
        let (rate, burst, limit) = (self.rate, Self.burst, maxPerShard)
        return shard.buckets.withLock { buckets in
            if buckets[key] == nil && buckets.count >= limit {
                buckets = buckets.filter { _, bucket in
                    var b = bucket
                    return !b.isFull(rate: rate, burst: burst, now: now)
                }
                // Still full (many addresses at once): forget them all rather than grow without bound.
                if buckets.count >= limit { buckets = [:] }
            }
            var bucket = buckets[key] ?? RateLimiter(rate: rate, burst: burst, now: now)
            defer { buckets[key] = bucket }
            if bucket.allow(rate: rate, burst: burst, now: now) { return nil }
            return bucket.millisUntilNext(rate: rate, burst: burst, now: now)
        }
    }
}
