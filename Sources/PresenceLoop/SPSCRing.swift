import Synchronization

/// A bounded single-producer, single-consumer queue (Lamport's ring): one thread pushes, one
/// thread pops, no locks and no allocation after `init`. Each side caches the other side's
/// index so that it touches the shared one only when the cache says full (or empty).
package final class SPSCRing<Element>: @unchecked Sendable {
    private let cells: UnsafeMutablePointer<Element>
    private let mask: Int
    /// Next index to pop and the consumer's view of `tail`: the consumer's cache line.
    private let head = Atomic<Int>(0)
    private var consumerTail = 0
    /// Keeps the two sides on different cache lines (the producer's and the consumer's cores).
    private let padding: (Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0)
    /// Next index to push and the producer's view of `head`: the producer's cache line.
    private let tail = Atomic<Int>(0)
    private var producerHead = 0

    /// `capacity` is rounded up to a power of two.
    package init(capacity: Int) {
        var size = 1
        while size < capacity { size <<= 1 }
        cells = .allocate(capacity: size)
        mask = size - 1
    }

    deinit {
        let h = head.load(ordering: .relaxed), t = tail.load(ordering: .relaxed)
        for i in h..<t { (cells + (i & mask)).deinitialize(count: 1) }
        cells.deallocate()
    }

    package var capacity: Int { mask + 1 }

    /// Producer: appends `element`; false (nothing done) when the ring is full.
    package func push(_ element: Element) -> Bool {
        let t = tail.load(ordering: .relaxed)
        if t - producerHead > mask {
            producerHead = head.load(ordering: .acquiring)
            if t - producerHead > mask { return false }
        }
        (cells + (t & mask)).initialize(to: element)
        tail.store(t + 1, ordering: .releasing)
        return true
    }

    /// Consumer: hands every element present now to `body`, in order; returns how many.
    @discardableResult
    package func drain(_ body: (consuming Element) -> Void) -> Int {
        let h = head.load(ordering: .relaxed)
        consumerTail = tail.load(ordering: .acquiring)
        guard consumerTail != h else { return 0 }
        for i in h..<consumerTail { body((cells + (i & mask)).move()) }
        head.store(consumerTail, ordering: .releasing)
        return consumerTail - h
    }

    /// Consumer: whether anything is waiting.
    package var hasElements: Bool {
        tail.load(ordering: .acquiring) != head.load(ordering: .relaxed)
    }
}
