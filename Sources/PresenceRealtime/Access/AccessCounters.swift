/// The result of one CHANNEL_AUTH_URL call (`presenced_channel_auth_checks_total{result}`).
enum AccessCheckResult: Int, CounterLabel, CaseIterable {
    case allowed, refused, unavailable

    var index: Int { rawValue }
    static let labels = ["allowed", "refused", "unavailable"]

    init(_ decision: AccessDecision) {
        switch decision {
        case .allowed: self = .allowed
        case .refused: self = .refused
        case .unavailable: self = .unavailable
        }
    }
}

/// Channel access figures of one loop, written by that loop's thread only (read on it for
/// `/metrics`): service calls by result and their latency, and answers taken from the cache.
final class AccessCounters {
    let checks = LabelledCounts<AccessCheckResult>()
    /// Joins and presence reads answered from the cache (no call).
    var cacheHits: UInt64 = 0
    /// Joins and presence reads that waited for a call another join of the same (user, channel) made.
    var coalesced: UInt64 = 0
    let latency = LatencyHistogram(boundsNanos: AccessCounters.latencyBoundsNanos)

    /// 1 ms … 2 s (the check's timeout).
    static let latencyBoundsNanos: [Int64] = [
        1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_000_000_000,
    ]

    deinit { checks.base.deallocate() }

    func snapshot() -> AccessCountersSnapshot {
        AccessCountersSnapshot(checks: checks.values, cacheHits: cacheHits, coalesced: coalesced, latency: latency.snapshot())
    }
}

/// `AccessCounters` at one moment, addable across loops.
struct AccessCountersSnapshot: Equatable {
    var checks: [UInt64]
    var cacheHits: UInt64
    var coalesced: UInt64
    var latency: HistogramSnapshot

    mutating func add(_ other: AccessCountersSnapshot) {
        for i in checks.indices where i < other.checks.count { checks[i] &+= other.checks[i] }
        cacheHits &+= other.cacheHits
        coalesced &+= other.coalesced
        latency.add(other.latency)
    }
}
