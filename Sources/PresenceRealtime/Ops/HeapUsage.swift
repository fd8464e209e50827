import CSystem

/// The C heap as glibc's allocator sees it: bytes handed out and bytes it holds free. Resident
/// memory that grows while `inUseBytes` stays flat is allocator retention after a burst, not a
/// leak; `trim()` hands such free pages back to the kernel.
package struct HeapUsage: Equatable {
    /// Bytes in allocated chunks, mmap'd ones included.
    var inUseBytes: Int
    /// Bytes glibc holds in free chunks.
    var freeBytes: Int

    /// Now (`mallinfo2`; it walks the arenas' free lists, cheap at these heap sizes).
    static func current() -> HeapUsage {
        let info = mallinfo2()
        return HeapUsage(inUseBytes: Int(info.uordblks + info.hblkhd), freeBytes: Int(info.fordblks))
    }

    /// Blocks of 128 KiB and more always get their own mapping (`M_MMAP_THRESHOLD` fixed at
    /// glibc's starting value). By default glibc raises the threshold to the size of each mapped
    /// block freed, so the tables that grow with the connections (slot tables, the presence,
    /// replay and per-user maps), once one of them has been outgrown, are carved from the loops'
    /// arenas, and every table they outgrow leaves a hole there: 19,000 epoll set-ups left
    /// 2.9 MB free in the arenas (0.64 KiB resident per idle connection; fixed: 0.85 MB, 0.57 KiB;
    /// issue 19). Call once at start, before the loops run. Nothing on the message path
    /// allocates that much, so it costs no mmap per message.
    package static func mapLargeBlocks() {
        _ = mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    }

    /// `malloc_trim(0)`: returns free pages in every arena, not only the top of the heap, to the
    /// kernel. The supervisor thread calls it once the heap stops growing (it looks every
    /// second), so a reconnect storm's or an outage backlog's peak does not stay resident for the
    /// life of the process.
    static func trim() {
        _ = malloc_trim(0)
    }
}
