/// A token bucket: `rate` per second with a burst of `burst` times that
/// (docs/protocol.md, "Rate limit": `MESSAGE_RATE`, twice). A rate of 0 means no limit. Integer
/// milli-tokens keep it exact and small. It also follows the current run of refusals
/// (`recordRefusal`). 22 bytes: every connection has one (the run's two times as `Int64`s and the
/// tokens as `Int64` were 32, issue 19).
struct RateLimiter {
    private var lastRefill: Int64
    /// When the current run of refusals began.
    private var runStart: Int64 = -1_000_000
    /// `MESSAGE_RATE` is at most 1,000,000: twice that in milli-tokens fits.
    private var milliTokens: Int32
    /// The run's last refusal, in ms after `runStart` (a run ends the connection at 5 s).
    private var runSpan: UInt16 = 0

    init(rate: Int, burst: Int = 2, now: Int64) {
        milliTokens = Int32(clamping: Int64(rate) * Int64(burst) * 1000)
        lastRefill = now
    }

    /// Records a refusal at `now`; true when refusals no more than 1 s apart have gone on for
    /// 5 s (docs/protocol.md, "Rate limit": the connection is closed then; one burst never does
    /// it).
    mutating func recordRefusal(now: Int64) -> Bool {
        if now - (runStart + Int64(runSpan)) > 1_000 { runStart = now }
        let span = now - runStart
        runSpan = UInt16(clamping: span)
        return span >= 5_000
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
        return milliTokens >= 1000 ? 0 : (1000 - Int64(milliTokens) + Int64(rate) - 1) / Int64(rate)
    }

    /// Whether the bucket is full at `now` (it would not remember anything if dropped).
    mutating func isFull(rate: Int, burst: Int = 2, now: Int64) -> Bool {
        refill(rate: rate, burst: burst, now: now)
        return milliTokens >= Int32(clamping: Int64(rate) * Int64(burst) * 1000)
    }

    private mutating func refill(rate: Int, burst: Int, now: Int64) {
        guard now > lastRefill else { return }
        let refilled = Int64(milliTokens) + (now - lastRefill) * Int64(rate)
        milliTokens = Int32(clamping: min(Int64(rate) * Int64(burst) * 1000, refilled))
        lastRefill = now
    }
}
