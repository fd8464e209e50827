/// One-shot timers for work that is not a connection's deadline (Redis command timeouts,
/// reconnect back-off): a binary min-heap of deadlines, run by the loop once per turn.
struct LoopTimers {
    private struct Entry {
        var deadline: Int64
        var id: UInt64
    }
    private var heap: [Entry] = []
    private var work: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1

    var isEmpty: Bool { work.isEmpty }

    /// Milliseconds until the earliest live timer (0 if due), nil when there is none.
    mutating func millisecondsUntilNext(now: Int64) -> Int64? {
        while let top = heap.first, work[top.id] == nil { popTop() }
        return heap.first.map { max(0, $0.deadline - now) }
    }

    /// Adds a timer; returns its id for `cancel`.
    mutating func add(at deadline: Int64, _ body: @escaping () -> Void) -> UInt64 {
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

    mutating func cancel(_ id: UInt64) {
        work[id] = nil
    }

    /// Removes and returns the work of every timer due at `now`, earliest first.
    mutating func takeDue(now: Int64) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = heap.first, top.deadline <= now {
            popTop()
            if let body = work.removeValue(forKey: top.id) { due.append(body) }
        }
        return due
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var i = 0
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
