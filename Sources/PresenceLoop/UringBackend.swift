import CSystem
import Glibc

/// The completion backend: io_uring with multishot accept, multishot receive into a ring of
/// provided buffers (an idle connection holds no receive buffer; each buffer goes back to the
/// ring as soon as the loop has parsed it), `sendmsg` of a connection's queue, and one
/// `io_uring_enter` per loop turn that both submits and waits.
///
/// Create it on the thread that runs it: the ring is `SINGLE_ISSUER | DEFER_TASKRUN` when the
/// kernel allows.
package final class UringBackend: IOBackend {
    package let kind = IOBackendKind.uring
    package let hasAsyncOperations = true
    private var ring = io_uring()
    private let wakeFD: Int32
    private let wakeValue: UnsafeMutablePointer<UInt64>
    private var listeners: [Int32] = []
    private var acceptArmed: [Bool] = []
    private var acceptPaused: [Bool] = []
    /// One accept at a time, re-armed after each connection, for a listener several loops share
    /// (socket activation): a multishot accept stays first in the socket's wait queue and would
    /// take every connection; a re-armed one goes to the back, so the loops take turns.
    var singleShotAccept = false

    // Provided-buffer ring.
    private let bufferGroup: UInt16 = 1
    private let bufferCount: Int
    private let bufferSize: Int
    private let bufferRing: UnsafeMutablePointer<io_uring_buf_ring>
    private let bufferRingBytes: Int
    private let buffers: UnsafeMutableRawPointer
    private var buffersToReturn: Int32 = 0

    // Send blocks (for queues of several frames): a msghdr and its iovecs, alive until the
    // send completes. A single frame goes out with a plain `send` and needs no block.
    private let iovecsPerSend = 32
    private var sendHeaders: [UnsafeMutablePointer<msghdr>] = []
    private var sendIovecs: [UnsafeMutablePointer<iovec>] = []
    private var sendSlot: [UInt32] = []
    private var freeSendBlocks: [UInt32] = []

    private let cqes: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let cqeBatch = 256

    /// Whether io_uring can be used here at all (kernel support, not disabled, not forbidden by seccomp).
    package static func probe() -> String? {
        var r = io_uring()
        let rc = io_uring_queue_init(8, &r, 0)
        if rc < 0 { return String(cString: strerror(-rc)) }
        io_uring_queue_exit(&r)
        return nil
    }

    /// 512 receive buffers of 4 KiB: 2 MiB per loop however many connections are open (the
    /// kernel cycles through all of them, so all of them end up resident).
    package init(entries: UInt32 = 4096, bufferCount: Int = 512, bufferSize: Int = 4 * 1024) throws {
        var params = io_uring_params()
        params.flags = UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN)
        params.cq_entries = entries * 4
        params.flags |= UInt32(IORING_SETUP_CQSIZE)
        var rc = io_uring_queue_init_params(entries, &ring, &params)
        if rc == -EINVAL {
            // Older kernels: no DEFER_TASKRUN / SINGLE_ISSUER.
            params = io_uring_params()
            params.cq_entries = entries * 4
            params.flags = UInt32(IORING_SETUP_CQSIZE)
            rc = io_uring_queue_init_params(entries, &ring, &params)
        }
        guard rc == 0 else { throw SystemError(call: "io_uring_queue_init", errno: -rc) }

        self.bufferCount = bufferCount
        self.bufferSize = bufferSize
        bufferRingBytes = cs_buf_ring_bytes(UInt32(bufferCount))
        guard let mem = mmap(nil, bufferRingBytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0),
            mem != MAP_FAILED
        else {
            io_uring_queue_exit(&ring)
            throw SystemError(call: "mmap buffer ring", errno: errno)
        }
        bufferRing = mem.assumingMemoryBound(to: io_uring_buf_ring.self)
        buffers = .allocate(byteCount: bufferCount * bufferSize, alignment: 4096)
        // The kernel takes the ring's buffers in turn, so after the first few hundred receives
        // all of them are resident whatever the number of connections. Touched now, this fixed
        // pool is part of the process's start-up memory, not 2 MiB per loop spread over the first
        // connections (0.21 KiB per connection in issue 19's 19,000-connection idle figure).
        buffers.initializeMemory(as: UInt8.self, repeating: 0, count: bufferCount * bufferSize)
        var reg = io_uring_buf_reg()
        reg.ring_addr = UInt64(UInt(bitPattern: mem))
        reg.ring_entries = UInt32(bufferCount)
        reg.bgid = bufferGroup
        rc = io_uring_register_buf_ring(&ring, &reg, 0)
        guard rc == 0 else {
            io_uring_queue_exit(&ring)
            throw SystemError(call: "io_uring_register_buf_ring", errno: -rc)
        }
        io_uring_buf_ring_init(bufferRing)
        let mask = io_uring_buf_ring_mask(UInt32(bufferCount))
        for i in 0..<bufferCount {
            io_uring_buf_ring_add(bufferRing, buffers + i * bufferSize, UInt32(bufferSize), UInt16(i), mask, Int32(i))
        }
        io_uring_buf_ring_advance(bufferRing, Int32(bufferCount))

        wakeFD = eventfd(0, Int32(EFD_CLOEXEC))
        wakeValue = .allocate(capacity: 1)
        cqes = .allocate(capacity: cqeBatch)
        armWake()
    }

    deinit {
        io_uring_queue_exit(&ring)
        munmap(bufferRing, bufferRingBytes)
        buffers.deallocate()
        Glibc.close(wakeFD)
        wakeValue.deallocate()
        cqes.deallocate()
        for h in sendHeaders { h.deallocate() }
        for v in sendIovecs { v.deallocate() }
    }

    /// A submission entry; submits what is pending when the queue is full.
    private func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        while true {
            if let e = io_uring_get_sqe(&ring) { return e }
            io_uring_submit(&ring)
        }
    }

    private func armWake() {
        let e = sqe()
        io_uring_prep_read(e, wakeFD, wakeValue, 8, 0)
        io_uring_sqe_set_data64(e, EventTag.make(.wake, index: 0))
    }

    private func armAccept(_ index: Int) {
        let e = sqe()
        if singleShotAccept {
            io_uring_prep_accept(e, listeners[index], nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        } else {
            io_uring_prep_multishot_accept(e, listeners[index], nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        }
        io_uring_sqe_set_data64(e, EventTag.make(.accept, index: UInt32(index)))
        acceptArmed[index] = true
    }

    package func addListener(_ fd: Int32, index: Int) throws {
        while listeners.count <= index {
            listeners.append(-1)
            acceptArmed.append(false)
            acceptPaused.append(false)
        }
        listeners[index] = fd
        armAccept(index)
    }

    package func setListenerPaused(_ index: Int, _ paused: Bool) {
        acceptPaused[index] = paused
        if !paused && !acceptArmed[index] { armAccept(index) }
    }

    package func startReceiving(slot: UInt32, generation: UInt32, fd: Int32) -> Bool {
        rearmReceive(slot: slot, generation: generation, fd: fd)
    }

    package func rearmReceive(slot: UInt32, generation: UInt32, fd: Int32) -> Bool {
        let e = sqe()
        io_uring_prep_recv_multishot(e, fd, nil, 0, 0)
        cs_sqe_select_buffer(e, bufferGroup)
        io_uring_sqe_set_data64(e, EventTag.make(.receive, index: slot, generation: generation))
        return true
    }

    package func setWantsWritable(slot: UInt32, generation: UInt32, fd: Int32, _ wants: Bool) {}

    package func startConnecting(slot: UInt32, generation: UInt32, fd: Int32) {
        let e = sqe()
        io_uring_prep_poll_add(e, fd, UInt32(POLLOUT))
        io_uring_sqe_set_data64(e, EventTag.make(.connect, index: slot, generation: generation))
    }

    package func cancelConnect(slot: UInt32, generation: UInt32) {
        let e = sqe()
        io_uring_prep_cancel64(e, EventTag.make(.connect, index: slot, generation: generation), 0)
        io_uring_sqe_set_data64(e, 0)
    }

    package func connectCompleted(slot: UInt32, generation: UInt32, fd: Int32) {
        _ = rearmReceive(slot: slot, generation: generation, fd: fd)
    }

    package func send(slot: UInt32, generation: UInt32, fd: Int32, queue: inout SendQueue, pool: FramePool) -> SendStart {
        if queue.pendingFrames == 1 {
            var one = iovec()
            _ = queue.fill(&one, capacity: 1, pool)
            let e = sqe()
            io_uring_prep_send(e, fd, one.iov_base, one.iov_len, Int32(MSG_NOSIGNAL))
            io_uring_sqe_set_data64(e, EventTag.make(.sendOne, index: slot, generation: generation))
            return .submitted(frames: 1)
        }
        let block: Int
        if let free = freeSendBlocks.popLast() {
            block = Int(free)
        } else {
            block = sendHeaders.count
            sendHeaders.append(.allocate(capacity: 1))
            sendIovecs.append(.allocate(capacity: iovecsPerSend))
            sendSlot.append(0)
        }
        let count = queue.fill(sendIovecs[block], capacity: iovecsPerSend, pool)
        let header = sendHeaders[block]
        header.initialize(to: msghdr())
        header.pointee.msg_iov = sendIovecs[block]
        header.pointee.msg_iovlen = count
        sendSlot[block] = slot
        let e = sqe()
        io_uring_prep_sendmsg(e, fd, header, UInt32(MSG_NOSIGNAL))
        io_uring_sqe_set_data64(e, EventTag.make(.send, index: UInt32(block), generation: generation))
        return .submitted(frames: count)
    }

    package func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    package func poll(timeoutMillis: Int64, loop: EventLoop) {
        var ts = __kernel_timespec(tv_sec: timeoutMillis / 1000, tv_nsec: (timeoutMillis % 1000) * 1_000_000)
        var first: UnsafeMutablePointer<io_uring_cqe>? = nil
        if timeoutMillis == 0 {
            io_uring_submit_and_get_events(&ring)
        } else {
            if timeoutMillis < 0 {
                _ = io_uring_submit_and_wait_timeout(&ring, &first, 1, nil, nil)
            } else {
                _ = io_uring_submit_and_wait_timeout(&ring, &first, 1, &ts, nil)
            }
        }
        loop.backendWoke()
        while true {
            let n = Int(cs_uring_peek_batch(&ring, cqes, UInt32(cqeBatch)))
            guard n > 0 else { break }
            for i in 0..<n { complete(cqes[i]!, loop: loop) }
            io_uring_cq_advance(&ring, UInt32(n))
            returnBuffers()
            if n < cqeBatch { break }
        }
    }

    /// Hands parsed buffers back to the kernel (after every batch of completions, so a busy turn
    /// does not run the ring dry).
    private func returnBuffers() {
        if buffersToReturn > 0 {
            io_uring_buf_ring_advance(bufferRing, buffersToReturn)
            buffersToReturn = 0
        }
    }

    private func complete(_ cqe: UnsafeMutablePointer<io_uring_cqe>, loop: EventLoop) {
        let tag = cqe.pointee.user_data
        let res = cqe.pointee.res
        let flags = cqe.pointee.flags
        let more = flags & cs_cqe_f_more() != 0
        switch EventTag.operation(tag) {
        case .receive:
            let slot = EventTag.index(tag), generation = EventTag.generation(tag)
            if flags & cs_cqe_f_buffer() != 0 {
                let bid = Int(flags >> cs_cqe_buffer_shift())
                let base = buffers + bid * bufferSize
                if res > 0 {
                    loop.backendReceived(slot: slot, generation: generation, UnsafeMutableRawBufferPointer(start: base, count: Int(res)))
                }
                recycle(bid, base)
            }
            if !more {
                if res == 0 {
                    loop.backendReceiveEnded(slot: slot, generation: generation, error: 0, rearm: false)
                } else if res > 0 || res == -ENOBUFS {
                    loop.backendReceiveEnded(slot: slot, generation: generation, error: 0, rearm: true)
                } else {
                    loop.backendReceiveEnded(slot: slot, generation: generation, error: -res, rearm: false)
                }
            }
        case .connect:
            loop.backendConnectPolled(slot: EventTag.index(tag), generation: EventTag.generation(tag), result: res)
        case .sendOne:
            loop.backendSendCompleted(slot: EventTag.index(tag), generation: EventTag.generation(tag), result: res)
        case .send:
            let block = Int(EventTag.index(tag))
            let slot = sendSlot[block]
            freeSendBlocks.append(UInt32(block))
            loop.backendSendCompleted(slot: slot, generation: EventTag.generation(tag), result: res)
        case .accept:
            let index = Int(EventTag.index(tag))
            if res >= 0 {
                loop.backendAccepted(fd: res, listener: index)
            } else if res != -EAGAIN && res != -EINTR && res != -ECONNABORTED {
                loop.backendAcceptFailed(listener: index, error: -res)
            }
            if !more {
                acceptArmed[index] = false
                if !acceptPaused[index] { armAccept(index) }
            }
        case .wake:
            armWake()
        case nil:
            break
        }
    }

    private func recycle(_ bid: Int, _ base: UnsafeMutableRawPointer) {
        io_uring_buf_ring_add(
            bufferRing, base, UInt32(bufferSize), UInt16(bid), io_uring_buf_ring_mask(UInt32(bufferCount)), buffersToReturn)
        buffersToReturn += 1
    }
}
