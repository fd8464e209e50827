/// A channel's users and their entries (`EmbeddedPresenceStore`): up to `pairsLimit` users as a
/// dense array of (user, entry) pairs found by linear scan, above that a `Dictionary`.
///
/// Why (issue 19): a channel of 19 users in a `[String: Entry]` (24-byte entry) takes 32 buckets
/// × (16-byte key + 24-byte entry) = 1,280 bytes plus the header, ≈ 1,360 bytes or ≈ 70 per
/// connection; as pairs of 40 bytes in an array grown by an eighth rather than doubled (…, 16, 19,
/// 22), 792 to 912 bytes. Measured with 19,000 idle connections in 1,000 channels: heap in use
/// per connection 485–496 → 456–466 bytes. casa's channels are families — a handful of users —
/// so a lookup is a few comparisons. Past `pairsLimit` users the table becomes a dictionary, and
/// back below `pairsFloor` (apart from the limit, so that a channel at the limit does not flip at
/// every join and leave): large channels stay O(1) per lookup.
///
/// Mutations work in place — no copy of the array or dictionary — as long as the table has a
/// single owner (e.g. `channels[channel, default: SmallUserTable()].modify(…)`).
///
/// 8 bytes in the table of channels: one reference, the form in its spare bits. A generic enum,
/// or a bare `Dictionary` payload (it has no spare bits), would take a tag byte more, 16 bytes
/// once aligned; hence `Entry` only, and the dictionary in a `Box` (one allocation more for a
/// large channel, copied on write as the dictionary would be).
struct SmallUserTable {
    typealias Value = EmbeddedPresenceStore.Entry
    typealias Element = (key: String, value: Value)

    /// More users than this: a dictionary.
    static var pairsLimit: Int { 32 }
    /// A dictionary left with fewer users than this: pairs again.
    static var pairsFloor: Int { 16 }

    enum Storage {
        case pairs([Element])
        case dictionary(Box)
    }

    /// A large channel's dictionary, behind a reference with spare bits.
    final class Box {
        var table: [String: Value]

        init(_ table: [String: Value]) {
            self.table = table
        }
    }

    /// Internal for the tests (which form, how much room).
    private(set) var storage: Storage = .pairs([])

    init() {}

    var count: Int {
        switch storage {
        case .pairs(let pairs): pairs.count
        case .dictionary(let box): box.table.count
        }
    }

    var isEmpty: Bool { count == 0 }

    /// `user`'s value, if it has one.
    subscript(user: String) -> Value? {
        switch storage {
        case .pairs(let pairs): pairs.first { $0.key == user }?.value
        case .dictionary(let box): box.table[user]
        }
    }

    /// Runs `body` on `user`'s value in place, `defaultValue()` stored first if it has none; what
    /// `body` returns.
    mutating func modify<R>(
        _ user: String, default defaultValue: @autoclosure () -> Value,
        _ body: (inout Value) -> R
    ) -> R {
        switch take() {
        case .pairs(var pairs):
            if let i = pairs.firstIndex(where: { $0.key == user }) {
                defer { storage = .pairs(pairs) }
                return body(&pairs[i].value)
            }
            if pairs.count < Self.pairsLimit {
                if pairs.count == pairs.capacity { pairs.reserveCapacity(Self.tightCapacity(pairs.count)) }
                pairs.append((user, defaultValue()))
                defer { storage = .pairs(pairs) }
                return body(&pairs[pairs.count - 1].value)
            }
            let box = Box(Self.makeDictionary(pairs, room: 1))
            defer { storage = .dictionary(box) }
            return body(&box.table[user, default: defaultValue()])
        case .dictionary(var box):
            Self.makeUnique(&box)
            defer { storage = .dictionary(box) }
            return body(&box.table[user, default: defaultValue()])
        }
    }

    /// Runs `body` on `user`'s value in place; what it returns, or nil (`body` not run) when
    /// `user` has no value.
    mutating func modifyIfPresent<R>(_ user: String, _ body: (inout Value) -> R) -> R? {
        switch take() {
        case .pairs(var pairs):
            defer { storage = .pairs(pairs) }
            guard let i = pairs.firstIndex(where: { $0.key == user }) else { return nil }
            return body(&pairs[i].value)
        case .dictionary(var box):
            Self.makeUnique(&box)
            defer { storage = .dictionary(box) }
            guard let i = box.table.index(forKey: user) else { return nil }
            return body(&box.table.values[i])
        }
    }

    /// Removes `user`; the value it had. The memory goes back when the table empties or falls to
    /// less than half of its room (a quarter for a dictionary); a dictionary left with fewer than
    /// `pairsFloor` users becomes pairs.
    @discardableResult
    mutating func removeValue(forKey user: String) -> Value? {
        switch take() {
        case .pairs(var pairs):
            guard let i = pairs.firstIndex(where: { $0.key == user }) else {
                storage = .pairs(pairs)
                return nil
            }
            pairs.swapAt(i, pairs.count - 1)  // the order is no one's business
            let value = pairs.removeLast().value
            if pairs.isEmpty {
                pairs = []
            } else if pairs.count < pairs.capacity / 2 {
                pairs = Self.makePairs(pairs)
            }
            storage = .pairs(pairs)
            return value
        case .dictionary(var box):
            Self.makeUnique(&box)
            let value = box.table.removeValue(forKey: user)
            if box.table.count < Self.pairsFloor {
                storage = .pairs(Self.makePairs(box.table))
            } else {
                if box.table.count < box.table.capacity / 4 {
                    box.table = Self.makeDictionary(box.table, room: 0)
                }
                storage = .dictionary(box)
            }
            return value
        }
    }

    /// The storage, an empty one left in its place: the caller's copy is then the only reference to
    /// the array or box, so mutating it does not copy it. The caller puts it back.
    private mutating func take() -> Storage {
        let taken = storage
        storage = .pairs([])
        return taken
    }

    /// A box of its own, copied from one another table shares.
    private static func makeUnique(_ box: inout Box) {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.table) }
    }

    /// Room for `count` pairs and an eighth more (growing by an eighth, not doubling).
    private static func tightCapacity(_ count: Int) -> Int { count + count / 8 + 1 }

    /// `elements` as pairs, with room for `tightCapacity`.
    private static func makePairs(_ elements: some Collection<Element>) -> [Element] {
        var pairs: [Element] = []
        pairs.reserveCapacity(tightCapacity(elements.count))
        pairs.append(contentsOf: elements)
        return pairs
    }

    /// `elements` in a dictionary with room for them and `room` more.
    private static func makeDictionary(_ elements: some Collection<Element>, room: Int) -> [String: Value] {
        var table = [String: Value](minimumCapacity: elements.count + room)
        for (user, value) in elements { table[user] = value }
        return table
    }
}

extension SmallUserTable: Sequence {
    /// Each (user, value), in no particular order.
    struct Iterator: IteratorProtocol {
        fileprivate var pairs: IndexingIterator<[Element]>?
        fileprivate var dictionary: Dictionary<String, Value>.Iterator?

        mutating func next() -> Element? {
            pairs != nil ? pairs!.next() : dictionary!.next()
        }
    }

    func makeIterator() -> Iterator {
        switch storage {
        case .pairs(let pairs): Iterator(pairs: pairs.makeIterator())
        case .dictionary(let box): Iterator(dictionary: box.table.makeIterator())
        }
    }

    var underestimatedCount: Int { count }
}
