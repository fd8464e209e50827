/// One-shot timers for work that is not a connection's deadline (Redis command timeouts,
/// reconnect back-off, outbound HTTP timeouts): a binary min-heap of deadlines, run by the loop
/// once per turn. A cancelled timer leaves its heap entry behind until its deadline; when such
/// entries outnumber the live ones the heap is rebuilt, so memory follows the live timers and
/// not the peak rate times the longest timeout (found by the soak: a forwarding backlog's burst
/// of request and idle timers kept a 32,000-entry heap).
struct LoopTimers {
    private struct Entry {
        var deadline: Int64
        var id: UInt64
    }
    private var heap: [Entry] = []
    private var work: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1
    /// Heap entries whose timer was cancelled.
    private var cancelled = 0
    /// Below this many entries the heap is never rebuilt.
    static let compactionFloor = 1024

    package var isEmpty: Bool { work.isEmpty }

    /// Milliseconds until the earliest live timer (0 if due), nil when there is none.
    mutating func millisecondsUntilNext(now: Int64) -> Int64? {
        while let top = heap.first, work[top.id] == nil {
            popTop()
            cancelled -= 1
        }
        return heap.first.map { max(0, $0.deadline - now) }
    }

    /// Adds a timer; returns its id for `cancel`.
    package mutating func add(at deadline: Int64, _ body: @escaping () -> Void) -> UInt64 {
        let id = nextID
        nextID += 1
        work[id] = body
        heap.append(Entry(deadline: deadline, id: id))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[parent].deadline > heap[i].deadline else { break }
            heap.swapAt(parent, i)
            i = parent
        }
        return id
    }

    package mutating func cancel(_ id: UInt64) {
        guard work.removeValue(forKey: id) != nil else { return }
        cancelled += 1
        if cancelled >= Self.compactionFloor && cancelled * 2 > heap.count { compact() }
    }

    /// Entries in the heap, cancelled ones included (for tests).
    var heapCount: Int { heap.count }

    /// Drops the cancelled entries and re-heapifies (Floyd, O(n)); the new arrays are sized
    /// for what is live, so a burst's capacity is given back too.
    private mutating func compact() {
        heap = heap.filter { work[$0.id] != nil }
        if work.capacity > 4 * max(work.count, 64) { work = work.filter { _ in true } }
        cancelled = 0
        var i = heap.count / 2 - 1
        while i >= 0 {
            siftDown(i)
            i -= 1
        }
    }

    /// Removes and returns the work of every timer due at `now`, earliest first.
    mutating func takeDue(now: Int64) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = heap.first, top.deadline <= now {
            popTop()
            if let body = work.removeValue(forKey: top.id) { due.append(body) } else { cancelled -= 1 }
        }
        return due
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let left = 2 * i + 1, right = left + 1
            var smallest = i
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            if smallest == i { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }
}
