/// The channels one connection joined, in join order: the first kept inline, the others in an
/// array that exists only from a second channel on. Nearly every connection joins one channel,
/// and an array of one costs a 64-byte heap block per connection (issue 19: idle memory).
struct JoinedChannels: Sequence {
    private var first: String?
    private var others: [String] = []

    var count: Int { first == nil ? 0 : 1 + others.count }

    func contains(_ channel: String) -> Bool {
        first == channel || others.contains(channel)
    }

    mutating func append(_ channel: String) {
        if first == nil { first = channel } else { others.append(channel) }
    }

    /// Removes `channel`; false when it was not joined.
    mutating func remove(_ channel: String) -> Bool {
        if first == channel {
            first = others.isEmpty ? nil : others.removeFirst()
        } else if let index = others.firstIndex(of: channel) {
            others.remove(at: index)
        } else {
            return false
        }
        if others.isEmpty { others = [] } // its storage goes with its last element
        return true
    }

    func makeIterator() -> Iterator { Iterator(first: first, others: others.makeIterator()) }

    /// The first channel, then the others.
    struct Iterator: IteratorProtocol {
        fileprivate var first: String?
        fileprivate var others: IndexingIterator<[String]>

        mutating func next() -> String? {
            if let channel = first { first = nil; return channel }
            return others.next()
        }
    }
}
