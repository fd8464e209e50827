/// Chat messages of one channel in offset order on one loop
/// (docs/protocol.md, "Offsets and epochs"). Messages reach a loop from several places — its own
/// senders, the other loops' rings, Redis — so one with offset N+1 can arrive before N. Each
/// arrival is let through when it is the next one, held when it is ahead of one still on its way,
/// and dropped when it was delivered already; a held message goes out as soon as the gap closes, or
/// after `gapMillis` if it never does (the gap is then skipped).
///
/// Until a join on this loop has read the channel's latest position, nothing is delivered (there
/// is nobody to deliver to) and arrivals wait for `start`.
struct MessageOrder<Item> {
    /// How long a held message waits for the one before it.
    static var gapMillis: Int64 { 1_000 }

    /// The last position delivered; nil before `start`.
    private(set) var last: StreamPosition?
    /// Arrivals ahead of `last`, by offset.
    private var ahead: [Int64: (StreamPosition, Item)] = [:]
    /// When the oldest held arrival came (0: nothing held).
    private(set) var holdingSince: Int64 = 0

    var isHolding: Bool { !ahead.isEmpty }

    /// What an arrival lets out.
    enum Arrival {
        /// Just this one, now (the usual case: nothing held, nothing to allocate).
        case next
        /// Nothing: held for a gap, or a repeat.
        case nothing
        /// This one and the held ones it completes, in order.
        case run([(StreamPosition, Item)])
    }

    /// What may go out now after `position` arrived with `item` at `now`.
    mutating func arrive(_ position: StreamPosition, _ item: Item, now: Int64) -> Arrival {
        guard let last else {
            hold(position, item, now: now)
            return .nothing
        }
        if position.offset == last.offset &+ 1 && ahead.isEmpty && position.epoch == last.epoch {
            self.last = position
            return .next
        }
        if position.epoch != last.epoch {
            // The channel's history was lost and started again: what was held belongs to the old one.
            ahead = [:]
            holdingSince = 0
            self.last = position
            return .next
        }
        if position.offset <= last.offset { return .nothing }
        if position.offset > last.offset + 1 {
            hold(position, item, now: now)
            return .nothing
        }
        self.last = position
        return .run([(position, item)] + releaseConsecutive())
    }

    /// The first join here read `latest`: what arrived before goes out if it is after it.
    mutating func start(at latest: StreamPosition) -> [(StreamPosition, Item)] {
        guard last == nil else { return [] }
        last = latest
        ahead = ahead.filter { $0.value.0.epoch == latest.epoch && $0.key > latest.offset }
        if ahead.isEmpty { holdingSince = 0 }
        return releaseConsecutive()
    }

    /// A gap older than `gapMillis` at `now` is skipped: everything held goes out in order.
    mutating func skipGap(now: Int64) -> [(StreamPosition, Item)] {
        guard last != nil, !ahead.isEmpty, now - holdingSince >= Self.gapMillis else { return [] }
        let held = ahead.values.sorted { $0.0.offset < $1.0.offset }
        ahead = [:]
        holdingSince = 0
        last = held.last!.0
        return held
    }

    private mutating func hold(_ position: StreamPosition, _ item: Item, now: Int64) {
        if ahead.isEmpty { holdingSince = now }
        ahead[position.offset] = (position, item)
    }

    private mutating func releaseConsecutive() -> [(StreamPosition, Item)] {
        var out: [(StreamPosition, Item)] = []
        while let last, let next = ahead.removeValue(forKey: last.offset + 1) {
            self.last = next.0
            out.append(next)
        }
        if ahead.isEmpty { holdingSince = 0 }
        return out
    }
}
