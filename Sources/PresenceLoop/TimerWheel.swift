/// A hashed timing wheel holding at most one deadline per connection slot.
///
/// Buckets are `resolution` milliseconds wide; a deadline further away than the wheel's span
/// waits in its bucket and is re-inserted when that bucket comes round. Insert, remove and
/// re-arm are O(1) through intrusive links indexed by slot: no allocation per timer.
struct TimerWheel {
    package static let none: Int32 = -1
    let resolution: Int64
    private var buckets: [Int32]
    private var next: [Int32] = []
    private var prev: [Int32] = []
    /// The tick whose bucket holds each slot (its bucket is the tick modulo the wheel's size), or
    /// `unscheduled`: 16 bytes per slot with the links (a bucket index beside the deadline made 20).
    private var ticks: [Int64] = []
    private static let unscheduled: Int64 = -1
    /// The bucket time (ms) up to which expiry has run.
    private var cursor: Int64
    private(set) var count = 0

    package init(slots: Int = 512, resolution: Int64 = 50, now: Int64) {
        self.resolution = resolution
        self.buckets = [Int32](repeating: TimerWheel.none, count: slots)
        self.cursor = now / resolution
    }

    /// Makes room for slot indices below `capacity`.
    package mutating func reserve(_ capacity: Int) {
        guard next.count < capacity else { return }
        let last = capacity - 1
        next.extendForSlot(last, with: TimerWheel.none)
        prev.extendForSlot(last, with: TimerWheel.none)
        ticks.extendForSlot(last, with: TimerWheel.unscheduled)
    }

    /// Whether `slot` has a deadline set.
    func isScheduled(_ slot: Int32) -> Bool {
        Int(slot) < ticks.count && ticks[Int(slot)] != TimerWheel.unscheduled
    }

    private func bucket(ofTick tick: Int64) -> Int { Int(tick % Int64(buckets.count)) }

    /// Sets (or moves) the deadline of `slot`.
    package mutating func schedule(_ slot: Int32, at deadline: Int64) {
        cancel(slot)
        // The first tick boundary at or after the deadline: when the cursor reaches it, it is due.
        let tick = max((deadline + resolution - 1) / resolution, cursor + 1)
        let b = bucket(ofTick: tick)
        let s = Int(slot)
        ticks[s] = tick
        prev[s] = TimerWheel.none
        next[s] = buckets[b]
        if next[s] != TimerWheel.none { prev[Int(next[s])] = slot }
        buckets[b] = slot
        count += 1
    }

    package mutating func cancel(_ slot: Int32) {
        let s = Int(slot)
        guard isScheduled(slot) else { return }
        if prev[s] != TimerWheel.none { next[Int(prev[s])] = next[s] } else { buckets[bucket(ofTick: ticks[s])] = next[s] }
        if next[s] != TimerWheel.none { prev[Int(next[s])] = prev[s] }
        ticks[s] = TimerWheel.unscheduled
        next[s] = TimerWheel.none
        prev[s] = TimerWheel.none
        count -= 1
    }

    /// Milliseconds until the next non-empty bucket is due (nil when no timer is set), capped at `cap`.
    func millisecondsUntilNext(now: Int64, cap: Int64) -> Int64? {
        guard count > 0 else { return nil }
        var tick = cursor + 1
        let last = cursor + Int64(buckets.count)
        while tick <= last {
            if buckets[Int(tick % Int64(buckets.count))] != TimerWheel.none {
                return min(cap, max(0, tick * resolution - now))
            }
            tick += 1
        }
        return min(cap, max(0, last * resolution - now))
    }

    /// Removes every slot whose deadline has passed and appends it to `due`; the caller fires
    /// them afterwards (and may then schedule any timer again).
    package mutating func expire(now: Int64, into due: inout [Int32]) {
        let target = now / resolution
        guard target > cursor else { return }
        var tick = cursor + 1
        // A long stall: one full turn of the wheel visits every bucket.
        if target - cursor > Int64(buckets.count) { tick = target - Int64(buckets.count) + 1 }
        cursor = target
        while tick <= target {
            var slot = buckets[bucket(ofTick: tick)]
            while slot != TimerWheel.none {
                let following = next[Int(slot)]
                // Due when its tick has come (a later turn of the wheel shares the bucket).
                if ticks[Int(slot)] <= target {
                    cancel(slot)
                    due.append(slot)
                }
                slot = following
            }
            tick += 1
        }
    }
}
