import CSystem
import WSCore

/// The bytes waiting to go out on one connection: shared frames in order, plus how far into the
/// first one the socket has got. Enqueueing shares the frame (a retain), never copies it.
struct SendQueue {
    private(set) var frames: [SharedBytes] = []
    /// Index of the first frame not yet fully written.
    private(set) var head: Int32 = 0
    /// Bytes of `frames[head]` already written.
    private(set) var headOffset: Int32 = 0
    /// Bytes queued and not yet written.
    private(set) var queuedBytes: Int = 0

    var isEmpty: Bool { queuedBytes == 0 }
    /// Frames not yet fully written.
    var pendingFrames: Int { frames.count - Int(head) }

    mutating func append(_ frame: SharedBytes) {
        guard frame.count > 0 else { return }
        frames.append(frame)
        queuedBytes += frame.count
    }

    /// Fills `iovecs` with the unwritten bytes, at most `capacity` entries; returns how many.
    func fill(_ iovecs: UnsafeMutablePointer<iovec>, capacity: Int) -> Int {
        var n = 0
        var index = Int(head)
        while index < frames.count && n < capacity {
            let frame = frames[index]
            let skip = index == Int(head) ? Int(headOffset) : 0
            iovecs[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress + skip), iov_len: frame.count - skip)
            n += 1
            index += 1
        }
        return n
    }

    /// Marks `written` bytes as sent, releasing every frame that is now complete.
    mutating func consume(_ written: Int) {
        var remaining = written
        queuedBytes -= written
        while remaining > 0 {
            let left = frames[Int(head)].count - Int(headOffset)
            if remaining >= left {
                remaining -= left
                head += 1
                headOffset = 0
            } else {
                headOffset += Int32(remaining)
                remaining = 0
            }
        }
        if Int(head) == frames.count { compact() }
    }

    /// Drops every frame after the first `keep` unwritten ones (those may be in flight).
    mutating func truncate(keeping keep: Int) {
        let end = Int(head) + min(keep, pendingFrames)
        guard end < frames.count else { return }
        for i in end..<frames.count { queuedBytes -= frames[i].count }
        frames.removeSubrange(end...)
        if Int(head) == frames.count { compact() }
    }

    /// Releases everything.
    mutating func removeAll() {
        frames = []
        head = 0
        headOffset = 0
        queuedBytes = 0
    }

    private mutating func compact() {
        // Small queues keep their storage for the next burst; large ones give it back.
        frames.removeAll(keepingCapacity: frames.capacity <= 16)
        head = 0
        headOffset = 0
    }
}
