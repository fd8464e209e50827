/// How the tables indexed by connection slot grow (the loop's slots and timer wheel, the server's
/// connection states, the realtime sessions): by an eighth at a time instead of doubling. Each is
/// as long as the most connections its loop ever held at once, so doubling left up to half of
/// every table allocated and mostly touched for nothing — 1.7× the slots in use at 9,500
/// connections per loop. An eighth keeps appends amortised O(1) (each growth copies the table
/// once) with at most 12.5 % spare (issue 19: idle memory per connection).
enum SlotTableGrowth {
    /// The capacity to grow a full table of `capacity` entries to.
    package static func next(after capacity: Int) -> Int {
        capacity + max(capacity / 8, 64)
    }
}

extension Array {
    /// Appends `filler` until `index` is a valid position, growing the capacity by
    /// `SlotTableGrowth` rather than by the standard library's doubling.
    package mutating func extendForSlot(_ index: Int, with filler: @autoclosure () -> Element) {
        while count <= index {
            if count == capacity { reserveCapacity(SlotTableGrowth.next(after: capacity)) }
            append(filler())
        }
    }
}
