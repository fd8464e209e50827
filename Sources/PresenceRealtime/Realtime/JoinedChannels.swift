/// The channels one connection joined, in join order, as one string of channel ids separated by
/// spaces (a byte no channel id contains: `ClientMessage.isValidChannel`). 16 bytes in every
/// session, and nearly every connection joins one channel of at most 15 bytes, kept inside the
/// string itself: no heap block. An array of channels was a 64-byte heap block per connection,
/// then 24 bytes in the session with the first channel inline (issue 19: idle memory).
struct JoinedChannels: Sequence {
    private var list = ""
    private static let separator: Character = " "

    var count: Int {
        list.isEmpty ? 0 : 1 + list.utf8.reduce(0) { $1 == UInt8(ascii: " ") ? $0 + 1 : $0 }
    }

    func contains(_ channel: String) -> Bool {
        list == channel || range(of: channel) != nil
    }

    mutating func append(_ channel: String) {
        assert(ClientMessage.isValidChannel(channel), "a channel id never contains the separator")
        list = list.isEmpty ? channel : list + String(Self.separator) + channel
    }

    /// Removes `channel`; false when it was not joined.
    mutating func remove(_ channel: String) -> Bool {
        if list == channel {
            list = ""
            return true
        }
        guard let found = range(of: channel) else { return false }
        // The channel and the separator before it, or after it when it is the first.
        if found.lowerBound == list.startIndex {
            list.removeSubrange(found.lowerBound...found.upperBound)
        } else {
            list.removeSubrange(list.index(before: found.lowerBound)..<found.upperBound)
        }
        return true
    }

    /// Where `channel` is in `list`, as a whole entry.
    private func range(of channel: String) -> Range<String.Index>? {
        var start = list.startIndex
        while start < list.endIndex {
            let end = list[start...].firstIndex(of: Self.separator) ?? list.endIndex
            if list[start..<end] == channel { return start..<end }
            start = end == list.endIndex ? end : list.index(after: end)
        }
        return nil
    }

    func makeIterator() -> Iterator { Iterator(list: list, start: list.startIndex) }

    /// The channels in join order.
    struct Iterator: IteratorProtocol {
        fileprivate let list: String
        fileprivate var start: String.Index

        mutating func next() -> String? {
            guard start < list.endIndex else { return nil }
            let end = list[start...].firstIndex(of: JoinedChannels.separator) ?? list.endIndex
            defer { start = end == list.endIndex ? end : list.index(after: end) }
            return String(list[start..<end])
        }
    }
}
