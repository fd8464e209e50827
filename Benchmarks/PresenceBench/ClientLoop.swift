import CSystem
import Glibc
import Synchronization
import WSCore

/// Where a client connection is in its life.
enum ConnState: UInt8 {
    /// Not started yet (waiting for a handshake slot).
    case pending
    /// TCP connect in progress.
    case connecting
    /// Upgrade request sent, waiting for the 101.
    case upgrading
    /// First join sent, waiting for the connection's own presence event.
    case joining
    /// Joined: under load.
    case open
    /// Close frame sent at teardown, waiting for the server's close / EOF.
    case closing
    /// Done (or failed).
    case closed
}

/// One client connection. Kept small: idle connections hold no buffers (the decoder and the send
/// queue allocate only while they hold partial data).
struct Connection {
    var fd: Int32 = -1
    var state: ConnState = .pending
    /// Waiting for its own presence event on `channel` (a join in flight).
    var awaiting = false
    var writeArmed = false
    /// Current (or awaited) channel index.
    var channel: Int32
    /// Scenario tag (the fan-out publisher number, or -1).
    var tag: Int32 = -1
    /// Global connection index: the user id is `<user-prefix><index>`.
    var index: Int
    /// Start of the operation in flight: connect (during set-up) or the last join.
    var since: Int64 = 0
    var decoder = FrameDecoder(role: .client, maxMessageSize: 1 << 20)
    /// Handshake state, only while upgrading.
    var upgrade: UpgradeState?
    /// Bytes the socket did not take yet.
    var outbound: [UInt8] = []
    var outboundOffset = 0

    init(index: Int, channel: Int32) {
        self.index = index
        self.channel = channel
    }
}

/// The opening handshake of one connection.
final class UpgradeState {
    let handshake: ClientHandshake
    var parser = HTTPResponseParser(maxHeadSize: 16384)
    init(_ handshake: ClientHandshake) { self.handshake = handshake }
}

/// What a scenario does on each loop thread. The loop is generic over it, so these calls are direct.
protocol LoopWorker: AnyObject {
    /// A join awaited on `slot` was confirmed by the connection's own presence event. `initial` for
    /// the join that completes set-up; `latency` since the connect (initial) or since the join was sent.
    func joined(_ loop: ClientLoop<Self>, slot: Int, initial: Bool, latency: Int64, now: Int64)
    /// A `message` arrived on `slot`; `content` is the raw (unescaped) content string.
    func message(_ loop: ClientLoop<Self>, slot: Int, content: UnsafeRawBufferPointer, now: Int64)
    /// `slot` closed after set-up (server close, EOF, error).
    func lost(_ loop: ClientLoop<Self>, slot: Int)
    /// Called every loop turn (at least every 10 ms); returns the next instant (ns) it wants a turn.
    func tick(_ loop: ClientLoop<Self>, now: Int64) -> Int64
    /// Stores the scenario's live counters for the main thread.
    func publish(_ status: LoopStatus)
}

/// Per-thread numbers a loop publishes for the main thread (relaxed atomics, stored every turn).
final class LoopStatus: Sendable {
    /// Connections whose first join was confirmed.
    let ready = Atomic<Int>(0)
    /// Connections that failed during set-up.
    let failed = Atomic<Int>(0)
    /// Connections closed after set-up.
    let lost = Atomic<Int>(0)
    /// Scenario counters (fan-out: expected and received deliveries of the measured period).
    let a = Atomic<Int>(0)
    let b = Atomic<Int>(0)
    init() {}

    enum Counter { case ready, failed, lost, a, b }

    func value(_ c: Counter) -> Int {
        switch c {
        case .ready: return ready.load(ordering: .relaxed)
        case .failed: return failed.load(ordering: .relaxed)
        case .lost: return lost.load(ordering: .relaxed)
        case .a: return a.load(ordering: .relaxed)
        case .b: return b.load(ordering: .relaxed)
        }
    }
}

/// Shared between the main thread and the loops.
final class Control: Sendable {
    /// Loops leave `run` and tear down.
    let stop = Atomic<Bool>(false)
    /// Monotonic instant (ns) at which the load starts; 0 while connections are being set up.
    let startAt = Atomic<Int64>(0)
    init() {}
}

/// Settings every loop shares.
struct LoopSettings: Sendable {
    var target: Target
    var minter: TokenMint
    var origin: String?
    var channelNames: [[UInt8]]
    var userPrefix: String
    /// Source addresses to bind (network order); empty = none.
    var sources: [UInt32]
    var maxInFlight: Int
    var connectTimeout: Int64
}

/// A client event loop on one thread: non-blocking sockets and level-triggered epoll. Connects its
/// connections with at most `maxInFlight` set-ups (connect + upgrade + first join) at once, answers
/// pings, decodes frames with WSCore and hands `message`s and join confirmations to the worker.
final class ClientLoop<W: LoopWorker>: @unchecked Sendable {
    let settings: LoopSettings
    let status = LoopStatus()
    let control: Control
    private(set) var worker: W!
    var conns: [Connection] = []

    private let epfd: Int32
    private let events: UnsafeMutablePointer<epoll_event>
    private let maxEvents = 1024
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Client message JSON is built here...
    private let payloadBuffer: UnsafeMutableRawPointer
    /// ...and framed (masked) here.
    private let frameBuffer: UnsafeMutableRawPointer
    private let userPrefix: [UInt8]
    private var rng: UInt64
    private var nextPending = 0
    private var inFlight = 0
    private var closingCount = 0
    private var tearingDown = false

    // Counters (read by the main thread after the thread has been joined).
    var readyCount = 0
    var failedCount = 0
    var lostCount = 0
    var failures: [String: Int] = [:]
    var errorCodes: [String: Int] = [:]
    var closeCodes: [Int: Int] = [:]
    var teardownCloseCodes: [Int: Int] = [:]
    var teardownUnanswered = 0
    var framesIn = 0
    var bytesIn = 0
    var messagesIn = 0
    var presenceIn = 0
    var otherIn = 0
    var pingsIn = 0
    var framesOut = 0
    var firstConnectStart: Int64 = .max
    var lastReady: Int64 = 0

    init(settings: LoopSettings, control: Control) throws {
        self.settings = settings
        self.control = control
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw BenchError("presence-bench: epoll_create1: \(Errno.text(errno))") }
        events = .allocate(capacity: maxEvents)
        readBuffer = .allocate(byteCount: 256 * 1024, alignment: 64)
        payloadBuffer = .allocate(byteCount: 8192, alignment: 16)
        frameBuffer = .allocate(byteCount: 8192 + 16, alignment: 16)
        userPrefix = Array(settings.userPrefix.utf8)
        var seed: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &seed) { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 8) }
        rng = seed | 1
    }

    deinit {
        for c in conns where c.fd >= 0 { Glibc.close(c.fd) }
        Glibc.close(epfd)
        events.deallocate()
        readBuffer.deallocate()
        payloadBuffer.deallocate()
        frameBuffer.deallocate()
    }

    func setWorker(_ w: W) { worker = w }

    /// Adds a connection (started later, in order, as set-up slots free up); returns its slot.
    @discardableResult
    func add(index: Int, channel: Int, tag: Int32 = -1) -> Int {
        var c = Connection(index: index, channel: Int32(channel))
        c.tag = tag
        conns.append(c)
        return conns.count - 1
    }

    // MARK: Running

    /// Runs until `control.stop`: set-up, then the worker's load.
    func run() {
        var lastSweep = Clock.now()
        while !control.stop.load(ordering: .relaxed) {
            var now = Clock.now()
            startPending(now)
            let deadline = worker.tick(self, now: now)
            if now - lastSweep >= 100_000_000 {
                sweepTimeouts(now)
                lastSweep = now
            }
            poll(timeoutMillis: millis(until: deadline, now: now, cap: 10))
            now = Clock.now()
            publish()
        }
        publish()
    }

    /// Sends a close (1000) on every open connection and waits up to `timeout` for the answers.
    func teardown(timeout: Int64) {
        tearingDown = true
        for slot in conns.indices where conns[slot].fd >= 0 {
            switch conns[slot].state {
            case .open, .joining:
                conns[slot].state = .closing
                closingCount += 1
                sendClose(slot, code: 1000)
            default:
                closeSocket(slot)
            }
        }
        let deadline = Clock.now() + timeout
        while closingCount > 0 {
            let now = Clock.now()
            if now >= deadline { break }
            poll(timeoutMillis: millis(until: deadline, now: now, cap: 50))
        }
        for slot in conns.indices where conns[slot].fd >= 0 {
            if conns[slot].state == .closing { teardownUnanswered += 1 }
            closeSocket(slot)
        }
        publish()
    }

    private func millis(until deadline: Int64, now: Int64, cap: Int32) -> Int32 {
        if deadline <= now { return 0 }
        let ms = (deadline - now + 999_999) / 1_000_000
        return Int32(min(Int64(cap), ms))
    }

    private func publish() {
        status.ready.store(readyCount, ordering: .relaxed)
        status.failed.store(failedCount, ordering: .relaxed)
        status.lost.store(lostCount, ordering: .relaxed)
        worker.publish(status)
    }

    private func poll(timeoutMillis: Int32) {
        let n = epoll_wait(epfd, events, Int32(maxEvents), timeoutMillis)
        guard n > 0 else { return }
        let now = Clock.now()
        for i in 0..<Int(n) {
            let mask = cs_epoll_event_events(events + i)
            let slot = Int(truncatingIfNeeded: cs_epoll_event_data(events + i))
            dispatch(slot, mask: mask, now: now)
        }
    }

    private func dispatch(_ slot: Int, mask: UInt32, now: Int64) {
        guard conns[slot].fd >= 0 else { return }
        if conns[slot].state == .connecting {
            guard mask & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { return }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(conns[slot].fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                fail(slot, "cannot connect to \(settings.target.display): \(Errno.text(error))")
                return
            }
            connected(slot, now: now)
            return
        }
        if mask & EPOLLOUT.rawValue != 0 { flush(slot) }
        if mask & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0, conns[slot].fd >= 0 {
            readable(slot)
        }
    }

    // MARK: Set-up

    private func startPending(_ now: Int64) {
        while inFlight < settings.maxInFlight && nextPending < conns.count && !tearingDown {
            let slot = nextPending
            nextPending += 1
            inFlight += 1
            startConnect(slot, now: now)
        }
    }

    private func startConnect(_ slot: Int, now: Int64) {
        if now < firstConnectStart { firstConnectStart = now }
        conns[slot].since = now
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            let e = errno
            if e == EMFILE || e == ENFILE {
                fail(slot, "fd limit reached (\(Errno.text(e))): run fewer connections per bench process")
            } else {
                fail(slot, "socket: \(Errno.text(e))")
            }
            return
        }
        conns[slot].fd = fd
        conns[slot].state = .connecting
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if !settings.sources.isEmpty {
            // Choose the port at connect time (4-tuple unique), not at bind time.
            setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(MemoryLayout<Int32>.size))
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = settings.sources[conns[slot].index % settings.sources.count]
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 {
                var text = [CChar](repeating: 0, count: 32)
                var a = local.sin_addr
                inet_ntop(AF_INET, &a, &text, 32)
                fail(slot, "bind \(cText(text)): \(Errno.text(errno))")
                return
            }
        }
        var sin = settings.target.sockaddr
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let e = errno
        conns[slot].writeArmed = true
        var ev = epoll_event()
        cs_epoll_event_set(&ev, EPOLLIN.rawValue | EPOLLOUT.rawValue, UInt64(slot))
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 {
            fail(slot, "epoll_ctl: \(Errno.text(errno))")
            return
        }
        if rc == 0 {
            connected(slot, now: now)
        } else if e != EINPROGRESS {
            if e == EADDRNOTAVAIL {
                fail(slot, "cannot connect to \(settings.target.display): \(Errno.text(e)) (out of local ports: use --sources)")
            } else {
                fail(slot, "cannot connect to \(settings.target.display): \(Errno.text(e))")
            }
        }
    }

    /// TCP is up: send the upgrade request with a fresh token.
    private func connected(_ slot: Int, now: Int64) {
        let index = conns[slot].index
        let token = settings.minter.mint(userID: settings.userPrefix + String(index), now: Clock.unixSeconds())
        let separator = settings.target.path.contains("?") ? "&" : "?"
        let handshake = ClientHandshake(
            host: settings.target.hostHeader, path: settings.target.path + separator + "token=" + token,
            origin: settings.origin)
        conns[slot].upgrade = UpgradeState(handshake)
        conns[slot].state = .upgrading
        let request = handshake.requestBytes()
        request.withUnsafeBytes { write(slot, $0.baseAddress!, $0.count) }
        if conns[slot].fd >= 0, conns[slot].outbound.isEmpty { setWriteInterest(slot, false) }
    }

    private func sweepTimeouts(_ now: Int64) {
        let limit = settings.connectTimeout
        for slot in conns.indices where conns[slot].fd >= 0 && now - conns[slot].since > limit {
            let seconds = Double(limit) / 1e9
            switch conns[slot].state {
            case .connecting: fail(slot, "timed out after \(seconds) s connecting")
            case .upgrading: fail(slot, "timed out after \(seconds) s waiting for the upgrade response")
            case .joining: fail(slot, "timed out after \(seconds) s waiting for the join confirmation")
            case .open where conns[slot].awaiting: fail(slot, "join not confirmed within \(seconds) s")
            default: break
            }
        }
    }

    // MARK: Reading

    private func readable(_ slot: Int) {
        while true {
            let fd = conns[slot].fd
            guard fd >= 0 else { return }
            let n = Glibc.read(fd, readBuffer.baseAddress, readBuffer.count)
            if n > 0 {
                bytesIn &+= n
                // Stamp each read: a batch of events can take a while to work through.
                ingest(slot, count: n, now: Clock.now())
                if n < readBuffer.count { return }
                continue
            }
            if n == 0 {
                if conns[slot].state == .closing {
                    closeSocket(slot)
                } else {
                    fail(slot, "server closed the connection without a close frame")
                }
                return
            }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return }
            if e == EINTR { continue }
            if conns[slot].state == .closing { closeSocket(slot) } else { fail(slot, "read: \(Errno.text(e))") }
            return
        }
    }

    private func ingest(_ slot: Int, count: Int, now: Int64) {
        let input = UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<count])
        var consumed = 0
        if conns[slot].state == .upgrading {
            guard let up = conns[slot].upgrade else { return }
            switch up.parser.feed(UnsafeRawBufferPointer(input)) {
            case .needMoreData:
                return
            case .failure(let error):
                fail(slot, "bad upgrade response: \(error)")
                return
            case .complete(let head, let used):
                switch up.handshake.verify(head) {
                case .success:
                    break
                case .failure(.unexpectedStatus(let status)):
                    let body = UnsafeRawBufferPointer(rebasing: input[used...])
                    var reason = "upgrade refused: HTTP \(status)"
                    if let code = WireText.stringValue(body, key: "code") { reason += " (\(WireText.string(body, code)))" }
                    fail(slot, reason)
                    return
                case .failure(let error):
                    fail(slot, "upgrade refused: \(error)")
                    return
                }
                conns[slot].upgrade = nil
                conns[slot].state = .joining
                sendJoin(slot, channel: Int(conns[slot].channel), now: nil)
                consumed = used
            }
        }
        while conns[slot].fd >= 0 {
            switch conns[slot].decoder.next(input, consumed: &consumed) {
            case .needMoreData:
                return
            case .text(let payload):
                framesIn &+= 1
                text(slot, payload, now: now)
            case .binary:
                framesIn &+= 1
                otherIn &+= 1
            case .ping(let payload):
                pingsIn &+= 1
                sendFrame(slot, opcode: .pong, payload: payload)
            case .pong:
                break
            case .close(let code, _):
                serverClosed(slot, code: code.map(Int.init) ?? 1005)
                return
            case .failure(let code):
                fail(slot, "protocol error in the server's frames (close \(code.rawValue))")
                return
            }
        }
    }

    private func text(_ slot: Int, _ p: UnsafeRawBufferPointer, now: Int64) {
        switch WireText.kind(p) {
        case .message:
            messagesIn &+= 1
            if let content = WireText.stringValue(p, key: "content", from: 17) {
                worker.message(self, slot: slot, content: UnsafeRawBufferPointer(rebasing: p[content]), now: now)
            }
        case .presence:
            presenceIn &+= 1
            guard conns[slot].awaiting,
                let user = WireText.stringValue(p, key: "user_id", from: 18),
                WireText.isID(p, user, prefix: userPrefix, number: conns[slot].index),
                let channel = WireText.stringValue(p, key: "channel", from: user.upperBound),
                WireText.equals(p, channel, settings.channelNames[Int(conns[slot].channel)]),
                WireText.isTrue(p, key: "online", from: user.upperBound)
            else { return }
            conns[slot].awaiting = false
            let latency = now - conns[slot].since
            if conns[slot].state == .joining {
                conns[slot].state = .open
                inFlight -= 1
                readyCount += 1
                lastReady = now
                worker.joined(self, slot: slot, initial: true, latency: latency, now: now)
            } else {
                worker.joined(self, slot: slot, initial: false, latency: latency, now: now)
            }
        case .error:
            let code = WireText.stringValue(p, key: "code").map { WireText.string(p, $0) } ?? "?"
            errorCodes[code, default: 0] += 1
            if conns[slot].state == .joining { fail(slot, "join refused: \(code)") }
        default:
            otherIn &+= 1
        }
    }

    private func serverClosed(_ slot: Int, code: Int) {
        if conns[slot].state == .closing {
            teardownCloseCodes[code, default: 0] += 1
            closeSocket(slot)
            return
        }
        closeCodes[code, default: 0] += 1
        sendClose(slot, code: CloseCode.isValidOnWire(UInt16(truncatingIfNeeded: code)) ? UInt16(code) : 1000)
        fail(slot, "server closed the connection with \(code)")
    }

    // MARK: Failures and closing

    /// Records `reason`, closes the socket; set-up failures and losses are counted apart.
    func fail(_ slot: Int, _ reason: String) {
        let state = conns[slot].state
        failures[reason, default: 0] += 1
        closeSocket(slot)
        switch state {
        case .pending, .connecting, .upgrading, .joining:
            inFlight -= 1
            failedCount += 1
        case .open:
            lostCount += 1
            worker.lost(self, slot: slot)
        case .closing, .closed:
            break
        }
    }

    private func closeSocket(_ slot: Int) {
        if conns[slot].fd >= 0 {
            Glibc.close(conns[slot].fd)
            conns[slot].fd = -1
        }
        if conns[slot].state == .closing { closingCount -= 1 }
        conns[slot].state = .closed
        conns[slot].awaiting = false
        conns[slot].upgrade = nil
        conns[slot].outbound = []
        conns[slot].outboundOffset = 0
        conns[slot].decoder.reset()
    }

    // MARK: Writing

    /// Sends a join for `channel` and waits for the connection's own presence event on it. `now`
    /// starts the join's latency clock (nil keeps the connect instant, for the first join).
    func sendJoin(_ slot: Int, channel: Int, now: Int64?) {
        conns[slot].channel = Int32(channel)
        conns[slot].awaiting = true
        if let now { conns[slot].since = now }
        var out = ByteCursor(payloadBuffer)
        out.raw(#"{"type":"join","channel":""#)
        out.bytes(settings.channelNames[channel])
        out.raw(#""}"#)
        sendFrame(slot, opcode: .text, payload: UnsafeRawBufferPointer(start: payloadBuffer, count: out.count))
    }

    func sendLeave(_ slot: Int, channel: Int) {
        var out = ByteCursor(payloadBuffer)
        out.raw(#"{"type":"leave","channel":""#)
        out.bytes(settings.channelNames[channel])
        out.raw(#""}"#)
        sendFrame(slot, opcode: .text, payload: UnsafeRawBufferPointer(start: payloadBuffer, count: out.count))
    }

    /// `{"type":"message","channel":C,"content":…}` where `writeContent` appends the content
    /// (characters that need no JSON escaping).
    @inline(__always)
    func sendMessage(_ slot: Int, channel: Int, writeContent: (inout ByteCursor) -> Void) {
        var out = ByteCursor(payloadBuffer)
        out.raw(#"{"type":"message","channel":""#)
        out.bytes(settings.channelNames[channel])
        out.raw(#"","content":""#)
        writeContent(&out)
        out.raw(#""}"#)
        sendFrame(slot, opcode: .text, payload: UnsafeRawBufferPointer(start: payloadBuffer, count: out.count))
    }

    func sendClose(_ slot: Int, code: UInt16) {
        var wire = code.bigEndian
        withUnsafeBytes(of: &wire) { sendFrame(slot, opcode: .close, payload: $0) }
    }

    /// One masked frame (payload at most 8 KiB).
    func sendFrame(_ slot: Int, opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        guard conns[slot].fd >= 0 else { return }
        rng ^= rng << 13
        rng ^= rng >> 7
        rng ^= rng << 17
        let key = UInt32(truncatingIfNeeded: rng >> 16)
        let header = FrameEncoder.writeHeader(opcode: opcode, fin: true, payloadLength: payload.count, maskKey: key, into: frameBuffer)
        // Key byte j on the wire is byte j of key.bigEndian.
        let k0 = UInt8(truncatingIfNeeded: key >> 24), k1 = UInt8(truncatingIfNeeded: key >> 16)
        let k2 = UInt8(truncatingIfNeeded: key >> 8), k3 = UInt8(truncatingIfNeeded: key)
        let out = frameBuffer + header
        var i = 0
        let n = payload.count
        while i + 4 <= n {
            out.storeBytes(of: payload[i] ^ k0, toByteOffset: i, as: UInt8.self)
            out.storeBytes(of: payload[i + 1] ^ k1, toByteOffset: i + 1, as: UInt8.self)
            out.storeBytes(of: payload[i + 2] ^ k2, toByteOffset: i + 2, as: UInt8.self)
            out.storeBytes(of: payload[i + 3] ^ k3, toByteOffset: i + 3, as: UInt8.self)
            i += 4
        }
        let keys = (k0, k1, k2, k3)
        while i < n {
            let k: UInt8
            switch i & 3 {
            case 0: k = keys.0
            case 1: k = keys.1
            case 2: k = keys.2
            default: k = keys.3
            }
            out.storeBytes(of: payload[i] ^ k, toByteOffset: i, as: UInt8.self)
            i += 1
        }
        framesOut &+= 1
        write(slot, UnsafeRawPointer(frameBuffer), header + n)
    }

    /// Writes now; what the socket does not take is queued and sent on EPOLLOUT.
    private func write(_ slot: Int, _ base: UnsafeRawPointer, _ count: Int) {
        let fd = conns[slot].fd
        guard fd >= 0 else { return }
        if conns[slot].outboundOffset < conns[slot].outbound.count {
            conns[slot].outbound.append(contentsOf: UnsafeRawBufferPointer(start: base, count: count))
            return
        }
        var sent = 0
        while sent < count {
            let n = send(fd, base + sent, count - sent, Int32(MSG_NOSIGNAL))
            if n > 0 {
                sent += n
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
            if conns[slot].state == .closing { closeSocket(slot) } else { fail(slot, "write: \(Errno.text(e))") }
            return
        }
        if sent < count {
            conns[slot].outbound = Array(UnsafeRawBufferPointer(start: base + sent, count: count - sent))
            conns[slot].outboundOffset = 0
            setWriteInterest(slot, true)
        }
    }

    private func flush(_ slot: Int) {
        let fd = conns[slot].fd
        guard fd >= 0 else { return }
        var failed: Int32 = 0
        var offset = conns[slot].outboundOffset
        let pending = conns[slot].outbound
        pending.withUnsafeBytes { bytes in
            while offset < bytes.count {
                let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                if n > 0 {
                    offset += n
                    continue
                }
                let e = errno
                if n < 0 && e == EINTR { continue }
                if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { return }
                failed = e
                return
            }
        }
        conns[slot].outboundOffset = offset
        if failed != 0 {
            if conns[slot].state == .closing { closeSocket(slot) } else { fail(slot, "write: \(Errno.text(failed))") }
            return
        }
        if conns[slot].outboundOffset >= conns[slot].outbound.count {
            conns[slot].outbound = []
            conns[slot].outboundOffset = 0
            setWriteInterest(slot, false)
        }
    }

    private func setWriteInterest(_ slot: Int, _ on: Bool) {
        guard conns[slot].writeArmed != on, conns[slot].fd >= 0 else { return }
        conns[slot].writeArmed = on
        var ev = epoll_event()
        cs_epoll_event_set(&ev, EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0), UInt64(slot))
        epoll_ctl(epfd, EPOLL_CTL_MOD, conns[slot].fd, &ev)
    }
}

/// errno as readable lower-case text ("connection refused").
enum Errno {
    static func text(_ e: Int32) -> String {
        let s = String(cString: strerror(e))
        guard let first = s.first else { return "errno \(e)" }
        return first.lowercased() + s.dropFirst()
    }
}
