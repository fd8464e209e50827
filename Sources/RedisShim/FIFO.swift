/// A first-in-first-out queue over an array with a moving head: O(1) amortized push and pop,
/// storage reused across bursts. Internal to the pipelining of ``RedisConnection``.
struct FIFO<Element> {
    private var storage: [Element?] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }

    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        storage[head] = nil
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.count <= 4096)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Replaces the first element (which must exist).
    mutating func updateFirst(_ body: (inout Element) -> Void) {
        body(&storage[head]!)
    }

    /// Empties the queue and returns what it held, in order.
    mutating func removeAll() -> [Element] {
        let elements = storage[head...].map { $0! }
        storage.removeAll(keepingCapacity: storage.count <= 4096)
        head = 0
        return elements
    }
}
