/// Exponential reconnect backoff with full jitter: attempt `n` (0-based) waits a uniformly random
/// time in `0 ... min(cap, base·2ⁿ)` milliseconds. Pure: the random source is a parameter.
public struct RedisBackoff: Hashable, Sendable {
    public var baseMillis: Int64
    public var capMillis: Int64

    public init(baseMillis: Int64, capMillis: Int64) {
        self.baseMillis = max(0, baseMillis)
        self.capMillis = max(0, capMillis)
    }

    /// `min(cap, base·2^attempt)`, without overflow for any attempt.
    public func ceiling(attempt: Int) -> Int64 {
        let shift = max(0, attempt)
        guard baseMillis > 0 else { return 0 }
        if shift >= 62 || baseMillis > (capMillis >> Int64(shift)) { return capMillis }
        return min(capMillis, baseMillis << Int64(shift))
    }

    /// The delay before reconnect attempt `attempt`; `random` picks a value in the given range.
    public func delay(attempt: Int, random: (ClosedRange<Int64>) -> Int64) -> Int64 {
        let upper = ceiling(attempt: attempt)
        return min(upper, max(0, random(0...upper)))
    }

    /// The delay before reconnect attempt `attempt`, drawn from `generator`.
    public func delay<G: RandomNumberGenerator>(attempt: Int, using generator: inout G) -> Int64 {
        Int64.random(in: 0...ceiling(attempt: attempt), using: &generator)
    }
}
