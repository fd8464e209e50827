import RedisShim

#if canImport(Glibc)
import Glibc
#endif

/// A `RedisHost` for tests: real non-blocking TCP sockets (no TLS) and `poll(2)` on the test
/// thread. ``run(until:timeoutMillis:)`` turns the loop until a condition holds.
final class PollHost: RedisHost {
    private final class Connection: RedisTransport {
        var fd: Int32
        let events: RedisTransportEvents
        var connecting = true
        var closed = false
        var output: [UInt8] = []
        var written = 0

        init(fd: Int32, events: RedisTransportEvents) {
            self.fd = fd
            self.events = events
        }

        func write(_ bytes: [UInt8]) {
            guard !closed else { return }
            output.append(contentsOf: bytes)
        }

        func close() {
            guard !closed else { return }
            closed = true
            Glibc.close(fd)
            fd = -1
        }
    }

    private final class Timer: RedisTimer {
        let due: Int64
        var work: (() -> Void)?
        init(due: Int64, work: @escaping () -> Void) {
            self.due = due
            self.work = work
        }
        func cancel() { work = nil }
    }

    private var connections: [Connection] = []
    private var timers: [Timer] = []
    private var deferred: [() -> Void] = []
    private var buffer = [UInt8](repeating: 0, count: 65536)
    /// Connections opened so far.
    private(set) var opened = 0

    init() { signal(SIGPIPE, SIG_IGN) }

    var nowMillis: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    func openConnection(to endpoint: RedisEndpoint, events: RedisTransportEvents) -> RedisTransport {
        opened += 1
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list) == 0, let info = list else {
            return failed(events, "cannot resolve host")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return failed(events, "socket: errno \(errno)") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            close(fd)
            return failed(events, reason)
        }
        let connection = Connection(fd: fd, events: events)
        connections.append(connection)
        return connection
    }

    func schedule(afterMillis millis: Int64, _ work: @escaping () -> Void) -> RedisTimer {
        let timer = Timer(due: nowMillis + max(0, millis), work: work)
        timers.append(timer)
        return timer
    }

    /// Turns the loop until `done()` holds (true) or `timeoutMillis` pass (false).
    @discardableResult
    func run(until done: () -> Bool, timeoutMillis: Int64 = 5000) -> Bool {
        let deadline = nowMillis + timeoutMillis
        while true {
            turn(waitMillis: 0)
            if done() { return true }
            let now = nowMillis
            if now >= deadline { return false }
            var wait = min(deadline - now, 50)
            if let next = timers.lazy.filter({ $0.work != nil }).map(\.due).min() { wait = max(0, min(wait, next - now)) }
            turn(waitMillis: Int32(wait))
            if done() { return true }
        }
    }

    /// Turns the loop for `millis` milliseconds.
    func run(forMillis millis: Int64) {
        _ = run(until: { false }, timeoutMillis: millis)
    }

    private func failed(_ events: RedisTransportEvents, _ reason: String) -> RedisTransport {
        let connection = Connection(fd: -1, events: events)
        connection.closed = true
        deferred.append { events.transportClosed(reason) }
        return connection
    }

    private func turn(waitMillis: Int32) {
        connections.removeAll { $0.closed }
        flush()
        var fds = connections.map { c -> pollfd in
            var events = Int16(POLLIN)
            if c.connecting || c.written < c.output.count { events |= Int16(POLLOUT) }
            return pollfd(fd: c.fd, events: events, revents: 0)
        }
        let wait = deferred.isEmpty ? waitMillis : 0
        let ready = poll(&fds, nfds_t(fds.count), wait)
        if ready > 0 {
            let snapshot = connections
            for (i, c) in snapshot.enumerated() where fds[i].revents != 0 && !c.closed {
                handle(c, revents: fds[i].revents)
            }
        }
        let work = deferred
        deferred.removeAll()
        for w in work { w() }
        fireTimers()
        flush()
    }

    private func handle(_ c: Connection, revents: Int16) {
        if c.connecting {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                lost(c, String(cString: strerror(error)))
                return
            }
            guard revents & Int16(POLLOUT | POLLIN) != 0 else { return }
            c.connecting = false
            c.events.transportConnected()
            if c.closed { return }
        }
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            while !c.closed {
                let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    buffer.withUnsafeBytes { c.events.transportReceived(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                } else if n == 0 {
                    lost(c, "EOF")
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    break
                } else if errno != EINTR {
                    lost(c, String(cString: strerror(errno)))
                }
            }
        }
    }

    private func lost(_ c: Connection, _ reason: String) {
        guard !c.closed else { return }
        c.close()
        c.events.transportClosed(reason)
    }

    private func flush() {
        for c in connections where !c.closed && !c.connecting && c.written < c.output.count {
            while c.written < c.output.count {
                let n = c.output.withUnsafeBytes {
                    send(c.fd, $0.baseAddress! + c.written, $0.count - c.written, Int32(MSG_NOSIGNAL))
                }
                if n > 0 {
                    c.written += n
                } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    break
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    let reason = String(cString: strerror(errno))
                    deferred.append { [weak self] in self?.lost(c, reason) }
                    break
                }
            }
            if c.written == c.output.count {
                c.output.removeAll(keepingCapacity: true)
                c.written = 0
            }
        }
    }

    private func fireTimers() {
        let now = nowMillis
        var due: [Timer] = []
        timers.removeAll { timer in
            if timer.work == nil { return true }
            if timer.due <= now {
                due.append(timer)
                return true
            }
            return false
        }
        for timer in due.sorted(by: { $0.due < $1.due }) {
            if let work = timer.work {
                timer.work = nil
                work()
            }
        }
    }
}
