/// The `limit` largest channels seen, kept sorted (most members first) while channels are
/// offered one by one: O(n) for n channels once the list is full (most are refused by one
/// comparison with the smallest kept), so a loop with many channels is not held up.
struct TopChannels: Sendable {
    /// A channel and its member connections.
    struct Entry: Sendable, Equatable {
        var channel: String
        var members: Int
    }

    let limit: Int
    private(set) var entries: [Entry] = []

    init(limit: Int) {
        self.limit = max(0, limit)
        entries.reserveCapacity(self.limit)
    }

    /// Considers one channel; ties keep the channel offered first, then order by name.
    mutating func offer(_ channel: String, _ members: Int) {
        guard limit > 0 else { return }
        if entries.count == limit, let last = entries.last, !TopChannels.before(Entry(channel: channel, members: members), last) { return }
        let entry = Entry(channel: channel, members: members)
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if TopChannels.before(entries[mid], entry) { low = mid + 1 } else { high = mid }
        }
        entries.insert(entry, at: low)
        if entries.count > limit { entries.removeLast() }
    }

    /// Adds up several loops' lists (a channel spread over loops counts all its members) and
    /// keeps the `limit` largest. Exact while each loop's list holds all its channels; with more
    /// channels than a list holds, a channel thinly spread over many loops may be missed.
    static func merge(_ lists: [[Entry]], limit: Int) -> [Entry] {
        var sums: [String: Int] = [:]
        for list in lists { for e in list { sums[e.channel, default: 0] += e.members } }
        var top = TopChannels(limit: limit)
        for (channel, members) in sums { top.offer(channel, members) }
        return top.entries
    }

    /// More members first, then by name (a stable, readable order).
    private static func before(_ a: Entry, _ b: Entry) -> Bool {
        a.members != b.members ? a.members > b.members : a.channel < b.channel
    }
}
