/// A token bucket: `rate` messages per second with a burst of twice that (CONTRACT §2
/// `MESSAGE_RATE`). A rate of 0 means no limit. Integer milli-tokens keep it exact and small.
struct RateLimiter {
    private var milliTokens: Int64
    private var lastRefill: Int64

    init(rate: Int, now: Int64) {
        milliTokens = Int64(rate) * 2 * 1000
        lastRefill = now
    }

    /// Takes one token at time `now` (ms); false when the bucket is empty.
    mutating func allow(rate: Int, now: Int64) -> Bool {
        guard rate > 0 else { return true }
        let capacity = Int64(rate) * 2 * 1000
        if now > lastRefill {
            milliTokens = min(capacity, milliTokens + (now - lastRefill) * Int64(rate))
            lastRefill = now
        }
        guard milliTokens >= 1000 else { return false }
        milliTokens -= 1000
        return true
    }
}
