/// A token bucket: `rate` per second with a burst of `burst` times that (CONTRACT §2
/// `MESSAGE_RATE`: twice). A rate of 0 means no limit. Integer milli-tokens keep it exact and small.
struct RateLimiter {
    private var milliTokens: Int64
    private var lastRefill: Int64

    init(rate: Int, burst: Int = 2, now: Int64) {
        milliTokens = Int64(rate) * Int64(burst) * 1000
        lastRefill = now
    }

    /// Takes one token at time `now` (ms); false when the bucket is empty.
    mutating func allow(rate: Int, burst: Int = 2, now: Int64) -> Bool {
        guard rate > 0 else { return true }
        refill(rate: rate, burst: burst, now: now)
        guard milliTokens >= 1000 else { return false }
        milliTokens -= 1000
        return true
    }

    /// Milliseconds until a token is there again at `now` (0: there is one).
    mutating func millisUntilNext(rate: Int, burst: Int = 2, now: Int64) -> Int64 {
        guard rate > 0 else { return 0 }
        refill(rate: rate, burst: burst, now: now)
        return milliTokens >= 1000 ? 0 : (1000 - milliTokens + Int64(rate) - 1) / Int64(rate)
    }

    /// Whether the bucket is full at `now` (it would not remember anything if dropped).
    mutating func isFull(rate: Int, burst: Int = 2, now: Int64) -> Bool {
        refill(rate: rate, burst: burst, now: now)
        return milliTokens >= Int64(rate) * Int64(burst) * 1000
    }

    private mutating func refill(rate: Int, burst: Int, now: Int64) {
        guard now > lastRefill else { return }
        milliTokens = min(Int64(rate) * Int64(burst) * 1000, milliTokens + (now - lastRefill) * Int64(rate))
        lastRefill = now
    }
}
