import PresenceLoop

/// The instance view's recent history: every `intervalMillis` (5 s) loop 0 reads every loop's
/// counters through their mailboxes (as `/metrics` does) and keeps one sample of rates in a ring
/// of `capacity` (10 minutes). Nothing runs on the message path; without CONSOLE_ADMIN_TOKEN the
/// sampler is never started.
final class ConsoleHistory: Sendable {
    static let intervalMillis: Int64 = 5_000
    static let capacity = 120

    /// One point of the chart.
    struct Sample: Sendable, Equatable {
        /// Unix time in milliseconds.
        var time: Int64
        var upgradesPerSecond: Double
        var deliveriesPerSecond: Double
    }

    /// Counter totals of one loop at one moment (read on that loop's thread).
    struct LoopTotals: Sendable {
        var index: Int
        var upgrades: UInt64
        var deliveries: UInt64
        /// Frames in and out: the loop's events.
        var events: UInt64
        var redisRTTSumMillis: Int64
        var redisRTTCount: UInt64
    }

    private struct State {
        var ring: [Sample] = []
        var next = 0
        var previous: [Int: LoopTotals] = [:]
        var previousMillis: Int64 = 0
        /// Per loop index: frames in+out per second over the last interval.
        var eventsPerSecond: [Int: Double] = [:]
        /// Mean Redis round trip over the last interval (nil: no command then).
        var recentRTTMillis: Double?
    }

    private let state = Lock(State())

    init() {}

    /// Adds the totals read at `nowMillis` (monotonic) and `unixMillis` (wall clock): a sample
    /// of the rates since the previous read (the first read only sets the base).
    func record(_ totals: [LoopTotals], nowMillis: Int64, unixMillis: Int64) {
        state.withLock { s in
            defer {
                s.previous = Dictionary(totals.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
                s.previousMillis = nowMillis
            }
            guard !s.previous.isEmpty, nowMillis > s.previousMillis else { return }
            let seconds = Double(nowMillis - s.previousMillis) / 1000
            var upgrades: UInt64 = 0, deliveries: UInt64 = 0, rttSum: Int64 = 0, rttCount: UInt64 = 0
            var perLoop: [Int: Double] = [:]
            for t in totals {
                // A loop read for the first time (or counters that went backwards) adds nothing.
                guard let p = s.previous[t.index] else { continue }
                upgrades &+= t.upgrades >= p.upgrades ? t.upgrades - p.upgrades : 0
                deliveries &+= t.deliveries >= p.deliveries ? t.deliveries - p.deliveries : 0
                perLoop[t.index] = Double(t.events >= p.events ? t.events - p.events : 0) / seconds
                rttSum += max(0, t.redisRTTSumMillis - p.redisRTTSumMillis)
                rttCount &+= t.redisRTTCount >= p.redisRTTCount ? t.redisRTTCount - p.redisRTTCount : 0
            }
            s.eventsPerSecond = perLoop
            s.recentRTTMillis = rttCount > 0 ? Double(rttSum) / Double(rttCount) : nil
            let sample = Sample(
                time: unixMillis, upgradesPerSecond: Double(upgrades) / seconds,
                deliveriesPerSecond: Double(deliveries) / seconds)
            if s.ring.count < ConsoleHistory.capacity {
                s.ring.append(sample)
            } else {
                s.ring[s.next] = sample
            }
            s.next = (s.next + 1) % ConsoleHistory.capacity
        }
    }

    /// The samples, oldest first.
    var samples: [Sample] {
        state.withLock { s in
            s.ring.count < ConsoleHistory.capacity ? s.ring : Array(s.ring[s.next...] + s.ring[..<s.next])
        }
    }

    /// Frames in+out per second of loop `index` over the last interval (nil before two reads).
    func eventsPerSecond(loop index: Int) -> Double? { state.withLock { $0.eventsPerSecond[index] } }

    /// Mean Redis round trip over the last interval, when there was a command.
    var recentRTTMillis: Double? { state.withLock { $0.recentRTTMillis } }

    /// On loop 0: reads every loop at its first turn (when every loop has registered with the
    /// hub; not here, in the loop's set-up) and then every `intervalMillis`, for the process's life.
    func start(hub: RealtimeHub, loop: EventLoop) {
        let read: (EventLoop) -> [LoopTotals] = { loop in
            let traffic = loop.counters
            let redis = hub.redis?.stats(on: loop)
            return [
                LoopTotals(
                    index: loop.index, upgrades: traffic.upgrades.values.reduce(0, &+),
                    deliveries: traffic.fanOutDeliveries,
                    events: traffic.framesIn.values.reduce(0, &+) &+ traffic.framesOut.values.reduce(0, &+),
                    redisRTTSumMillis: redis?.rttSumMillis ?? 0, redisRTTCount: redis?.rttCount ?? 0)
            ]
        }
        func tick() {
            hub.gather(from: loop, [], read: read, combine: { $0 += $1 }) { [self] totals in
                self.record(totals, nowMillis: EventLoop.monotonicMillis(), unixMillis: UnixTime.nowMillis())
            }
            _ = loop.schedule(after: ConsoleHistory.intervalMillis) { tick() }
        }
        _ = loop.schedule(after: 0) { tick() }
    }
}
