import CSystem
import WSCore

/// The frames queued on every connection of one loop, stored as per-connection linked lists
/// through one pool of nodes. Queueing a frame takes a node from the free list and retains the
/// shared frame: no allocation per frame or per connection, and an idle connection's queue is
/// four integers. The pool only grows (to the loop's largest backlog) and is reused.
package final class FramePool {
    /// A queued frame (retained by hand: +1 while queued) and the next node of its queue.
    package struct Node {
        var frame: Unmanaged<SharedBytes>?
        var next: Int32
    }

    private var nodes: UnsafeMutablePointer<Node>
    private(set) var capacity: Int
    private var freeHead: Int32 = -1
    /// Nodes holding a frame.
    private(set) var used = 0

    package init(capacity: Int = 1024) {
        self.capacity = capacity
        nodes = .allocate(capacity: capacity)
        threadFree(from: 0)
    }

    deinit {
        for i in 0..<capacity { nodes[i].frame?.release() }
        nodes.deallocate()
    }

    /// Initializes nodes `start..<capacity` as free and links them in front of the free list.
    private func threadFree(from start: Int) {
        for i in start..<capacity {
            (nodes + i).initialize(to: Node(frame: nil, next: i + 1 < capacity ? Int32(i + 1) : freeHead))
        }
        freeHead = Int32(start)
    }

    private func grow() {
        let old = capacity
        let bigger = UnsafeMutablePointer<Node>.allocate(capacity: old * 2)
        bigger.moveInitialize(from: nodes, count: old)
        nodes.deallocate()
        nodes = bigger
        capacity = old * 2
        threadFree(from: old)
    }

    @inline(__always)
    package func take(_ frame: SharedBytes) -> Int32 {
        if freeHead < 0 { grow() }
        let n = freeHead
        freeHead = nodes[Int(n)].next
        nodes[Int(n)].frame = Unmanaged.passRetained(frame)
        nodes[Int(n)].next = -1
        used += 1
        return n
    }

    @inline(__always)
    package func give(_ n: Int32) {
        nodes[Int(n)].frame.unsafelyUnwrapped.release()
        nodes[Int(n)].frame = nil
        nodes[Int(n)].next = freeHead
        freeHead = n
        used -= 1
    }

    /// The address and length of a queued frame's bytes (valid while it is queued).
    @inline(__always)
    package func bytes(_ n: Int32) -> (base: UnsafeRawPointer, count: Int) {
        nodes[Int(n)].frame.unsafelyUnwrapped._withUnsafeGuaranteedRef { ($0.baseAddress, $0.count) }
    }

    @inline(__always)
    package func next(_ n: Int32) -> Int32 { nodes[Int(n)].next }

    @inline(__always)
    func link(_ n: Int32, to next: Int32) { nodes[Int(n)].next = next }
}

/// The bytes waiting to go out on one connection: shared frames in order (nodes of the loop's
/// `FramePool`), plus how far into the first one the socket has got. Enqueueing shares the
/// frame (a retain), never copies it.
package struct SendQueue {
    private(set) var head: Int32 = -1
    private var tail: Int32 = -1
    /// Bytes of the head frame already written.
    private(set) var headOffset: Int32 = 0
    /// Frames not yet fully written.
    private(set) var pendingFrames: Int32 = 0
    /// Bytes queued and not yet written.
    private(set) var queuedBytes: Int = 0

    package var isEmpty: Bool { queuedBytes == 0 }

    @inline(__always)
    package mutating func append(_ frame: SharedBytes, _ pool: FramePool) {
        let count = frame.count
        guard count > 0 else { return }
        let n = pool.take(frame)
        if tail >= 0 { pool.link(tail, to: n) } else { head = n }
        tail = n
        pendingFrames += 1
        queuedBytes += count
    }

    /// Fills `iovecs` with the unwritten bytes, at most `capacity` entries; returns how many.
    package func fill(_ iovecs: UnsafeMutablePointer<iovec>, capacity: Int, _ pool: FramePool) -> Int {
        var count = 0
        var n = head
        var skip = Int(headOffset)
        while n >= 0 && count < capacity {
            let frame = pool.bytes(n)
            iovecs[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.base + skip), iov_len: frame.count - skip)
            skip = 0
            count += 1
            n = pool.next(n)
        }
        return count
    }

    /// Marks `written` bytes as sent, releasing every frame that is now complete.
    package mutating func consume(_ written: Int, _ pool: FramePool) {
        var remaining = written
        queuedBytes -= written
        while remaining > 0 {
            let left = pool.bytes(head).count - Int(headOffset)
            if remaining >= left {
                remaining -= left
                popHead(pool)
            } else {
                headOffset += Int32(remaining)
                remaining = 0
            }
        }
    }

    /// Drops every frame after the first `keep` unwritten ones (those may be in flight).
    package mutating func truncate(keeping keep: Int, _ pool: FramePool) {
        guard keep < pendingFrames else { return }
        if keep == 0 {
            removeAll(pool)
            return
        }
        var last = head
        for _ in 1..<keep { last = pool.next(last) }
        var n = pool.next(last)
        pool.link(last, to: -1)
        tail = last
        while n >= 0 {
            let following = pool.next(n)
            queuedBytes -= pool.bytes(n).count
            pool.give(n)
            pendingFrames -= 1
            n = following
        }
    }

    /// Releases everything.
    package mutating func removeAll(_ pool: FramePool) {
        while head >= 0 { popHead(pool) }
        queuedBytes = 0
    }

    @inline(__always)
    private mutating func popHead(_ pool: FramePool) {
        let n = head
        head = pool.next(n)
        if head < 0 { tail = -1 }
        pool.give(n)
        headOffset = 0
        pendingFrames -= 1
    }
}
