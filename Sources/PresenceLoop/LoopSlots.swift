/// One value per loop, each written and read by its own loop's thread: a fixed table of separate
/// cells, so one loop's write touches neither the cells nor the table the other loops read.
/// (A shared `var` array is not that: `array[i] = x` is a modifying access to the whole array —
/// a uniqueness check, perhaps a copy — racing with every other loop's read or write of it.)
package final class LoopSlots<Value>: @unchecked Sendable {
    package let count: Int
    private let cells: UnsafeMutablePointer<Value>

    package init(count: Int, initial: Value) {
        precondition(count > 0)
        self.count = count
        cells = .allocate(capacity: count)
        cells.initialize(repeating: initial, count: count)
    }

    deinit {
        cells.deinitialize(count: count)
        cells.deallocate()
    }

    /// Loop `index`'s cell; call on that loop's thread (or before the loops start).
    package subscript(index: Int) -> Value {
        get {
            precondition(index >= 0 && index < count, "loop index out of range")
            return cells[index]
        }
        set {
            precondition(index >= 0 && index < count, "loop index out of range")
            cells[index] = newValue
        }
    }
}
