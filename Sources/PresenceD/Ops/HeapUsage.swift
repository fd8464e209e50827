import CSystem

/// The C heap as glibc's allocator sees it: bytes handed out and bytes it holds free. Resident
/// memory that grows while `inUseBytes` stays flat is allocator retention after a burst, not a
/// leak; `trim()` hands such free pages back to the kernel.
struct HeapUsage: Equatable {
    /// Bytes in allocated chunks, mmap'd ones included.
    var inUseBytes: Int
    /// Bytes glibc holds in free chunks.
    var freeBytes: Int

    /// Now (`mallinfo2`; it walks the arenas' free lists, cheap at these heap sizes).
    static func current() -> HeapUsage {
        let info = mallinfo2()
        return HeapUsage(inUseBytes: Int(info.uordblks + info.hblkhd), freeBytes: Int(info.fordblks))
    }

    /// `malloc_trim(0)`: returns free pages in every arena, not only the top of the heap, to the
    /// kernel. The supervisor thread calls it once the heap stops growing (it looks every
    /// second), so a reconnect storm's or an outage backlog's peak does not stay resident for the
    /// life of the process.
    static func trim() {
        _ = malloc_trim(0)
    }
}
