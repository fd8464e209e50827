import PresenceLoop
import WSCore

/// The traffic counters of one event loop. Written only by that loop's thread, so they are plain
/// memory — no locks, no atomics, no allocation per message; `/metrics` reads them on the same
/// thread through the loop's mailbox (`snapshot()`) and adds the loops up.
final class LoopCounters {
    let upgrades = LabelledCounts<UpgradeResult>()
    let framesIn = LabelledCounts<FrameOpcode>()
    let framesOut = LabelledCounts<FrameOpcode>()
    let messagesIn = LabelledCounts<InboundMessageType>()
    let messagesOut = LabelledCounts<OutboundMessageType>()
    let tokenRejections = LabelledCounts<TokenRejection>()
    let wsTokenRequests = LabelledCounts<WSTokenResult>()
    /// Frames queued on channel members by fan-out (counted once per fan-out, in bulk).
    var fanOutDeliveries: UInt64 = 0
    /// Frames not queued because the recipient's backlog was over its limit (typing skipped
    /// under backpressure, and the frame that made a connection a slow consumer).
    var droppedFrames: UInt64 = 0
    /// Connections closed with 4008 (slow consumer).
    var slowConsumerCloses: UInt64 = 0
    /// Client messages refused by MESSAGE_RATE (not parsed, so not in `messagesIn`).
    var rateLimited: UInt64 = 0
    /// Tokens accepted on `/ws` whose single use was checked in this process only (Redis
    /// unreachable): such a token could be replayed once on another instance.
    var tokensCheckedInProcessOnly: UInt64 = 0
    let fanOutLatency = LatencyHistogram(boundsNanos: LoopCounters.fanOutLatencyBoundsNanos)

    /// 50 µs … 1 s.
    static let fanOutLatencyBoundsNanos: [Int64] = [
        50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
        10_000_000, 25_000_000, 50_000_000, 100_000_000, 250_000_000,
        500_000_000, 1_000_000_000,
    ]

    /// Arrival times of chat messages fanned out this turn, observed when the turn ends.
    private let pendingArrivals: UnsafeMutablePointer<Int64>
    private static let pendingCapacity = 256
    /// Chat messages fanned out this turn whose latency is not observed yet.
    private(set) var pendingFanOuts = 0

    init() {
        pendingArrivals = .allocate(capacity: LoopCounters.pendingCapacity)
    }

    deinit {
        pendingArrivals.deallocate()
        for counts in [
            upgrades.base, framesIn.base, framesOut.base, messagesIn.base, messagesOut.base,
            tokenRejections.base, wsTokenRequests.base,
        ] { counts.deallocate() }
    }

    /// A frame queued on `count` connections (direct replies: 1).
    @inline(__always)
    func sent(_ frame: SharedBytes, count: Int = 1) {
        let base = frame.baseAddress
        let opcode = FrameOpcode.of(frame: base)
        framesOut.add(opcode, UInt64(truncatingIfNeeded: count))
        if opcode == .text {
            messagesOut.add(OutboundMessageType.of(frame: base, count: frame.count), UInt64(truncatingIfNeeded: count))
        }
    }

    /// A fan-out queued `frame` on `count` members of this loop: one addition for all of them.
    @inline(__always)
    func fannedOut(_ frame: SharedBytes, count: Int) {
        guard count > 0 else { return }
        fanOutDeliveries &+= UInt64(truncatingIfNeeded: count)
        sent(frame, count: count)
    }

    /// A chat message that arrived at `arrivalNanos` (the start of the turn that received it) has
    /// been queued on its last local recipient; its latency is observed when this turn ends.
    @inline(__always)
    func fanOutQueued(arrivedAt arrivalNanos: Int64) {
        if pendingFanOuts == LoopCounters.pendingCapacity { endTurn(nowNanos: EventLoop.monotonicNanos()) }
        pendingArrivals[pendingFanOuts] = arrivalNanos
        pendingFanOuts += 1
    }

    /// The loop's turn ended (its sends were handed to the kernel) at `nowNanos`.
    func endTurn(nowNanos: Int64) {
        for i in 0..<pendingFanOuts { fanOutLatency.observe(nanos: nowNanos - pendingArrivals[i]) }
        pendingFanOuts = 0
    }

    /// A copy of every counter (on the loop's thread).
    func snapshot(refusedPerIP: UInt64) -> LoopCountersSnapshot {
        LoopCountersSnapshot(
            upgrades: upgrades.values, framesIn: framesIn.values, framesOut: framesOut.values,
            messagesIn: messagesIn.values, messagesOut: messagesOut.values,
            tokenRejections: tokenRejections.values, wsTokenRequests: wsTokenRequests.values,
            fanOutDeliveries: fanOutDeliveries, droppedFrames: droppedFrames,
            slowConsumerCloses: slowConsumerCloses, rateLimited: rateLimited, refusedPerIP: refusedPerIP,
            tokensCheckedInProcessOnly: tokensCheckedInProcessOnly, fanOutLatency: fanOutLatency.snapshot())
    }
}

/// The counters of one family with fixed label values, in plain memory (freed by its owner).
struct LabelledCounts<Label: CounterLabel> {
    let base: UnsafeMutablePointer<UInt64>

    init() {
        base = .allocate(capacity: Label.labels.count)
        base.initialize(repeating: 0, count: Label.labels.count)
    }

    @inline(__always)
    func add(_ label: Label, _ n: UInt64 = 1) {
        base[label.index] &+= n
    }

    subscript(_ label: Label) -> UInt64 { base[label.index] }

    /// Every counter, in label order.
    var values: [UInt64] { Array(UnsafeBufferPointer(start: base, count: Label.labels.count)) }
}

/// A histogram of durations in nanoseconds with fixed bucket bounds, in plain memory of one thread.
final class LatencyHistogram {
    let boundsNanos: [Int64]
    /// `boundsNanos` in plain memory (no bounds checks while observing).
    private let bounds: UnsafeMutablePointer<Int64>
    /// Per bucket (not cumulative); the last one is above every bound.
    private let buckets: UnsafeMutablePointer<UInt64>
    private(set) var sumNanos: UInt64 = 0
    private(set) var count: UInt64 = 0

    init(boundsNanos: [Int64]) {
        self.boundsNanos = boundsNanos
        bounds = .allocate(capacity: boundsNanos.count)
        bounds.initialize(from: boundsNanos, count: boundsNanos.count)
        buckets = .allocate(capacity: boundsNanos.count + 1)
        buckets.initialize(repeating: 0, count: boundsNanos.count + 1)
    }

    deinit {
        bounds.deallocate()
        buckets.deallocate()
    }

    func observe(nanos: Int64) {
        let value = max(0, nanos), boundCount = boundsNanos.count
        var i = 0
        while i < boundCount && value > bounds[i] { i += 1 }
        buckets[i] &+= 1
        sumNanos &+= UInt64(value)
        count &+= 1
    }

    func snapshot() -> HistogramSnapshot {
        HistogramSnapshot(
            boundsNanos: boundsNanos, buckets: Array(UnsafeBufferPointer(start: buckets, count: boundsNanos.count + 1)),
            sumNanos: sumNanos, count: count)
    }
}

/// A histogram's figures at one moment, addable across loops.
struct HistogramSnapshot: Equatable {
    var boundsNanos: [Int64]
    /// Per bucket (not cumulative), one more than `boundsNanos`.
    var buckets: [UInt64]
    var sumNanos: UInt64
    var count: UInt64

    mutating func add(_ other: HistogramSnapshot) {
        for i in buckets.indices where i < other.buckets.count { buckets[i] &+= other.buckets[i] }
        sumNanos &+= other.sumNanos
        count &+= other.count
    }
}

/// Every counter of one loop (or the sum over the loops), for `/metrics`.
struct LoopCountersSnapshot: Equatable {
    var upgrades: [UInt64]
    var framesIn: [UInt64]
    var framesOut: [UInt64]
    var messagesIn: [UInt64]
    var messagesOut: [UInt64]
    var tokenRejections: [UInt64]
    var wsTokenRequests: [UInt64]
    var fanOutDeliveries: UInt64
    var droppedFrames: UInt64
    var slowConsumerCloses: UInt64
    var rateLimited: UInt64
    var refusedPerIP: UInt64
    var tokensCheckedInProcessOnly: UInt64
    var fanOutLatency: HistogramSnapshot

    /// All zero (what a process with no loop reports).
    static let zero = LoopCounters().snapshot(refusedPerIP: 0)

    mutating func add(_ other: LoopCountersSnapshot) {
        func sum(_ a: inout [UInt64], _ b: [UInt64]) { for i in a.indices where i < b.count { a[i] &+= b[i] } }
        sum(&upgrades, other.upgrades)
        sum(&framesIn, other.framesIn)
        sum(&framesOut, other.framesOut)
        sum(&messagesIn, other.messagesIn)
        sum(&messagesOut, other.messagesOut)
        sum(&tokenRejections, other.tokenRejections)
        sum(&wsTokenRequests, other.wsTokenRequests)
        fanOutDeliveries &+= other.fanOutDeliveries
        droppedFrames &+= other.droppedFrames
        slowConsumerCloses &+= other.slowConsumerCloses
        rateLimited &+= other.rateLimited
        refusedPerIP &+= other.refusedPerIP
        tokensCheckedInProcessOnly &+= other.tokensCheckedInProcessOnly
        fanOutLatency.add(other.fanOutLatency)
    }
}

extension EventLoop {
    /// This loop's traffic counters, attached by ``attachCounters()`` at the loop's start.
    var counters: LoopCounters { unsafeDowncast(attachment.unsafelyUnwrapped, to: LoopCounters.self) }

    /// Gives this loop its traffic counters; fan-out latency is observed once each turn's
    /// frames are flushed.
    func attachCounters() {
        guard attachment == nil else { return }
        let counters = LoopCounters()
        attachment = counters
        onFlushed = { [unowned counters] in
            if counters.pendingFanOuts > 0 { counters.endTurn(nowNanos: EventLoop.monotonicNanos()) }
        }
    }
}
