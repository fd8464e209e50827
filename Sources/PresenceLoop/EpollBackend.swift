import CSystem
import Glibc

/// The readiness backend: level-triggered epoll, one shared receive buffer per loop (an idle
/// connection holds no buffer), `writev` of a connection's whole queue at flush time.
package final class EpollBackend: IOBackend {
    package let kind = IOBackendKind.epoll
    package let hasAsyncOperations = false
    private let epfd: Int32
    private let wakeFD: Int32
    private var listeners: [Int32] = []
    /// For a listener several loops share (socket activation): re-register after accepting, which
    /// puts this loop at the back of the socket's wait queue, so the loops take turns.
    var rotatesSharedListeners = false
    private var events: UnsafeMutablePointer<epoll_event>
    private let maxEvents = 512
    private let receiveBuffer: UnsafeMutableRawBufferPointer
    private let iovecs: UnsafeMutablePointer<iovec>
    private let maxIovecs = 64

    package init(receiveBufferSize: Int = 64 * 1024) throws {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SystemError(call: "epoll_create1", errno: errno) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw SystemError(call: "eventfd", errno: errno) }
        events = .allocate(capacity: maxEvents)
        receiveBuffer = .allocate(byteCount: receiveBufferSize, alignment: 64)
        iovecs = .allocate(capacity: maxIovecs)
        try control(EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue, EventTag.make(.wake, index: 0))
    }

    deinit {
        Glibc.close(epfd)
        Glibc.close(wakeFD)
        events.deallocate()
        receiveBuffer.deallocate()
        iovecs.deallocate()
    }

    private func control(_ op: Int32, _ fd: Int32, _ mask: UInt32, _ tag: UInt64) throws {
        var ev = epoll_event()
        cs_epoll_event_set(&ev, mask, tag)
        guard epoll_ctl(epfd, op, fd, &ev) == 0 else { throw SystemError(call: "epoll_ctl", errno: errno) }
    }

    package func addListener(_ fd: Int32, index: Int) throws {
        while listeners.count <= index { listeners.append(-1) }
        listeners[index] = fd
        try control(EPOLL_CTL_ADD, fd, EPOLLIN.rawValue, EventTag.make(.accept, index: UInt32(index)))
    }

    package func setListenerPaused(_ index: Int, _ paused: Bool) {
        let mask: UInt32 = paused ? 0 : EPOLLIN.rawValue
        try? control(EPOLL_CTL_MOD, listeners[index], mask, EventTag.make(.accept, index: UInt32(index)))
    }

    package func startReceiving(slot: UInt32, generation: UInt32, fd: Int32) -> Bool {
        let mask = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        return (try? control(EPOLL_CTL_ADD, fd, mask, EventTag.make(.receive, index: slot, generation: generation))) != nil
    }

    package func rearmReceive(slot: UInt32, generation: UInt32, fd: Int32) -> Bool { true }

    package func startConnecting(slot: UInt32, generation: UInt32, fd: Int32) {
        // Writable (or an error) when the connect ends; reads from the start.
        let mask = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue
        try? control(EPOLL_CTL_ADD, fd, mask, EventTag.make(.receive, index: slot, generation: generation))
    }

    package func cancelConnect(slot: UInt32, generation: UInt32) {}

    package func connectCompleted(slot: UInt32, generation: UInt32, fd: Int32) {
        setWantsWritable(slot: slot, generation: generation, fd: fd, false)
    }

    package func setWantsWritable(slot: UInt32, generation: UInt32, fd: Int32, _ wants: Bool) {
        var mask = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        if wants { mask |= EPOLLOUT.rawValue }
        try? control(EPOLL_CTL_MOD, fd, mask, EventTag.make(.receive, index: slot, generation: generation))
    }

    package func send(slot: UInt32, generation: UInt32, fd: Int32, queue: inout SendQueue, pool: FramePool) -> SendStart {
        while !queue.isEmpty {
            let count = queue.fill(iovecs, capacity: maxIovecs, pool)
            var requested = 0
            for i in 0..<count { requested += iovecs[i].iov_len }
            var msg = msghdr()
            msg.msg_iov = iovecs
            msg.msg_iovlen = count
            let n = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { return .wrote }
                return .failed(e)
            }
            queue.consume(n, pool)
            if n < requested { return .wrote }
        }
        return .wrote
    }

    package func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    package func poll(timeoutMillis: Int64, loop: EventLoop) {
        let n = epoll_wait(epfd, events, Int32(maxEvents), Int32(truncatingIfNeeded: timeoutMillis))
        loop.backendWoke()
        guard n > 0 else { return }
        for i in 0..<Int(n) {
            let mask = cs_epoll_event_events(events + i)
            let tag = cs_epoll_event_data(events + i)
            switch EventTag.operation(tag) {
            case .accept: acceptAll(listener: Int(EventTag.index(tag)), loop: loop)
            case .receive: connectionEvent(tag: tag, mask: mask, loop: loop)
            case .wake:
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            default: break
            }
        }
    }

    private func acceptAll(listener: Int, loop: EventLoop) {
        let fd = listeners[listener]
        var accepted = 0
        defer {
            if rotatesSharedListeners && accepted > 0 {
                try? control(EPOLL_CTL_DEL, fd, 0, 0)
                try? control(EPOLL_CTL_ADD, fd, EPOLLIN.rawValue, EventTag.make(.accept, index: UInt32(listener)))
            }
        }
        for _ in 0..<64 {
            let conn = cs_accept4(fd, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if conn < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED { return }
                loop.backendAcceptFailed(listener: listener, error: e)
                accepted = 0  // paused (mask 0): re-registering would resume it
                return
            }
            accepted += 1
            loop.backendAccepted(fd: conn, listener: listener)
        }
    }

    private func connectionEvent(tag: UInt64, mask: UInt32, loop: EventLoop) {
        let slot = EventTag.index(tag), generation = EventTag.generation(tag)
        if mask & EPOLLOUT.rawValue != 0 {
            loop.backendWritable(slot: slot, generation: generation)
        }
        if mask & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            guard let fd = loop.fileDescriptor(slot: slot, generation: generation) else { return }
            // A few reads per wake-up; level triggering brings us back for the rest (fairness).
            for _ in 0..<4 {
                let n = recv(fd, receiveBuffer.baseAddress, receiveBuffer.count, 0)
                if n > 0 {
                    loop.backendReceived(slot: slot, generation: generation, UnsafeMutableRawBufferPointer(rebasing: receiveBuffer[0..<n]))
                    if n < receiveBuffer.count { return }
                    guard loop.fileDescriptor(slot: slot, generation: generation) != nil else { return }
                } else if n == 0 {
                    loop.backendReceiveEnded(slot: slot, generation: generation, error: 0, rearm: false)
                    return
                } else {
                    let e = errno
                    if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return }
                    loop.backendReceiveEnded(slot: slot, generation: generation, error: e, rearm: false)
                    return
                }
            }
        }
    }
}
