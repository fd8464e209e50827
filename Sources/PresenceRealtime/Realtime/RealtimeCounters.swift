/// How a join with `since` ended (`presenced_recoveries_total{result}`).
enum RecoveryResult: Int, CounterLabel, CaseIterable {
    case recovered, notRecovered

    var index: Int { rawValue }
    static let labels = ["recovered", "not_recovered"]
}

/// Figures of the realtime protocol on one loop that belong to it rather than to the loop's
/// sockets (recovery, nonces, the server API's publishes, message order), written by that loop's
/// thread only and read on it for `/metrics`.
final class RealtimeCounters {
    let recoveries = LabelledCounts<RecoveryResult>()
    /// Messages whose (sender, nonce) was sent before: answered with the original, not sent again.
    var nonceDuplicates: UInt64 = 0
    /// Messages published through `POST /api/v1/publish`.
    var publishes: UInt64 = 0
    /// Gaps in a channel's offsets that never closed and were skipped (a message lost between instances).
    var orderGapsSkipped: UInt64 = 0

    deinit { recoveries.base.deallocate() }

    func snapshot() -> RealtimeCountersSnapshot {
        RealtimeCountersSnapshot(
            recoveries: recoveries.values, nonceDuplicates: nonceDuplicates, publishes: publishes,
            orderGapsSkipped: orderGapsSkipped)
    }
}

/// `RealtimeCounters` at one moment, addable across loops.
struct RealtimeCountersSnapshot: Equatable {
    var recoveries: [UInt64]
    var nonceDuplicates: UInt64
    var publishes: UInt64
    var orderGapsSkipped: UInt64

    mutating func add(_ other: RealtimeCountersSnapshot) {
        for i in recoveries.indices where i < other.recoveries.count { recoveries[i] &+= other.recoveries[i] }
        nonceDuplicates &+= other.nonceDuplicates
        publishes &+= other.publishes
        orderGapsSkipped &+= other.orderGapsSkipped
    }
}
