import CSystem
import Glibc
import Synchronization
import WSCore

/// The thread-specific key that names the loop running on the current thread.
private let currentLoopKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

/// One event-loop thread: accepts, receives, queues and flushes sends, runs timers and the
/// cross-thread mailbox. It knows sockets and buffers, never protocols: bytes go up to the
/// `ConnectionHandler`, frames come down through `send`.
package final class EventLoop: @unchecked Sendable {
    /// Socket-level state of one connection slot.
    package struct Slot {
        enum State: UInt8 {
            case free, open
            /// An outbound connection whose connect has not completed (sends wait in the queue).
            case connecting
            /// Flushing what is queued, then shutting down the write side and reading until EOF.
            case closing
            /// Shut down; waiting for in-flight kernel operations before the fd is closed.
            case dead
        }
        var fd: Int32 = -1
        var generation: UInt32 = 0
        var state: State = .free
        /// The flags below, one bit each: six `Bool`s took six bytes and made the slot 48 bytes;
        /// packed it is 40 (every connection has one: 0.15 MB less at 19,000).
        private var flags: UInt8 = 0
        /// Frames covered by the send in flight (kept when the queue is truncated).
        var inFlightFrames: Int32 = 0
        var queue = SendQueue()

        var receiveArmed: Bool {
            get { flag(1) }
            set { setFlag(1, newValue) }
        }
        var sendInFlight: Bool {
            get { flag(2) }
            set { setFlag(2, newValue) }
        }
        var writeBlocked: Bool {
            get { flag(4) }
            set { setFlag(4, newValue) }
        }
        var queued: Bool {
            get { flag(8) }
            set { setFlag(8, newValue) }
        }
        /// Opened by the loop itself (`connect`): events go to its `OutboundHandler`.
        var outbound: Bool {
            get { flag(16) }
            set { setFlag(16, newValue) }
        }
        /// Counted in `connectionsPerIP` under `peers[slot]` until the descriptor is closed.
        var countedPeer: Bool {
            get { flag(32) }
            set { setFlag(32, newValue) }
        }

        @inline(__always)
        private func flag(_ bit: UInt8) -> Bool { flags & bit != 0 }

        @inline(__always)
        private mutating func setFlag(_ bit: UInt8, _ on: Bool) {
            flags = on ? flags | bit : flags & ~bit
        }
    }

    package let index: Int
    package let backend: any IOBackend
    package unowned(unsafe) var handler: (any ConnectionHandler)!
    package let mailbox: Mailbox
    /// Slot table (grown by doubling; never shrinks): plain memory, no copy-on-write checks on the hot path.
    private var slots: UnsafeMutablePointer<Slot>
    private var slotCapacity = 64
    private var slotCount = 0
    /// The nodes of every connection's send queue.
    let framePool = FramePool()
    private var freeSlots: [UInt32] = []
    private var dirty: [UInt32] = []
    private var due: [Int32] = []
    private(set) var timers: TimerWheel
    private var stopping = false
    /// Milliseconds a closing connection may take to see the peer's EOF.
    package var closeLingerMillis: Int64 = 2000
    /// Monotonic milliseconds, updated once per loop turn.
    package private(set) var now: Int64
    /// Monotonic nanoseconds when this turn's wait returned: when what the turn reports arrived.
    package private(set) var turnStartNanos: Int64
    /// The per-loop state of the layers above (the server's traffic counters), kept here so that
    /// they reach it from the loop; the loop itself never reads it.
    package var attachment: AnyObject?
    /// Connections closed at accept because their address held MAX_CONNECTIONS_PER_IP.
    package private(set) var refusedPerIP: UInt64 = 0
    /// Open connections on this loop.
    private(set) var openCount = 0
    private var listenerPausedUntil: [Int: Int64] = [:]
    /// Handlers of outbound connections, by slot.
    private var outboundHandlers: [UInt32: OutboundHandler] = [:]
    /// One-shot timers (`schedule(after:)`).
    private var oneShots = LoopTimers()
    /// The group's per-address connection count (MAX_CONNECTIONS_PER_IP); nil = no cap. Set
    /// before the loop runs.
    package var connectionsPerIP: ConnectionsPerIP?
    /// The counted peer address of each slot (grown only when there is a cap).
    private var peers: [PeerAddress] = []

    package init(index: Int, backend: any IOBackend) {
        self.index = index
        self.backend = backend
        self.mailbox = Mailbox(backend: backend)
        let t = EventLoop.monotonicMillis()
        self.now = t
        self.turnStartNanos = t * 1_000_000
        self.timers = TimerWheel(now: t)
        slots = .allocate(capacity: slotCapacity)
    }

    deinit {
        for i in 0..<slotCount { slots[i].queue.removeAll(framePool) }
        slots.deinitialize(count: slotCount)
        slots.deallocate()
    }

    private func appendSlot() -> Int {
        if slotCount == slotCapacity {
            let larger = SlotTableGrowth.next(after: slotCapacity)
            let bigger = UnsafeMutablePointer<Slot>.allocate(capacity: larger)
            bigger.moveInitialize(from: slots, count: slotCount)
            slots.deallocate()
            slots = bigger
            slotCapacity = larger
        }
        (slots + slotCount).initialize(to: Slot())
        slotCount += 1
        timers.reserve(slotCount)
        return slotCount - 1
    }

    package static func monotonicMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    package static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    // MARK: Running

    /// The loop whose thread is calling (nil on other threads).
    package static var current: EventLoop? {
        pthread_getspecific(currentLoopKey).map { Unmanaged<EventLoop>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Set while the loop is (about to be) blocked in its wait; see `wakeIfSleeping`.
    private let sleeping = Atomic<Bool>(false)

    /// Runs each turn after the mailbox and before the flush: the layer above drains what other
    /// loops sent it (lock-free rings) and hands on what it produced.
    package var onTurn: (() -> Void)?
    /// Runs after each turn's flush: the layers above time what the turn sent.
    package var onFlushed: (() -> Void)?
    /// Whether work from other loops is waiting (checked just before the loop would block).
    package var hasInboundWork: (() -> Bool)?

    /// Wakes the loop if it is blocked (or about to block) in its wait; callable from any thread.
    /// A producer calls it after publishing work and a sequentially consistent fence: the loop
    /// sets `sleeping` and then checks `hasInboundWork`, so one of the two sides sees the other.
    package func wakeIfSleeping() {
        if sleeping.load(ordering: .relaxed), sleeping.exchange(false, ordering: .acquiringAndReleasing) {
            backend.wake()
        }
    }

    /// Runs until `stop()`; each turn waits once, then runs timers, the mailbox and one flush.
    package func run() {
        pthread_setspecific(currentLoopKey, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(currentLoopKey, nil) }
        while !stopping {
            var wait = timers.millisecondsUntilNext(now: now, cap: 1000) ?? 1000
            if nextTick != .max { wait = max(0, min(wait, nextTick - now)) }
            if let next = oneShots.millisecondsUntilNext(now: now) { wait = min(wait, next) }
            if !dirty.isEmpty { wait = 0 }
            if wait != 0 {
                sleeping.store(true, ordering: .sequentiallyConsistent)
                if hasInboundWork?() == true { wait = 0 }
            }
            backend.poll(timeoutMillis: wait, loop: self)
            sleeping.store(false, ordering: .relaxed)
            timers.expire(now: now, into: &due)
            for slot in due { deadlinePassed(slot) }
            due.removeAll(keepingCapacity: true)
            if now >= nextTick {
                nextTick = .max
                onTick?()
            }
            if !oneShots.isEmpty {
                for work in oneShots.takeDue(now: now) { work() }
            }
            resumePausedListeners()
            mailbox.drain(self)
            onTurn?()
            flush()
            onFlushed?()
        }
        for i in 0..<slotCount where slots[i].state != .free {
            if slots[i].fd >= 0 { Glibc.close(slots[i].fd) }
        }
    }

    /// Ends `run()` after the current turn. Loop thread only; other threads post it to the mailbox.
    package func stop() { stopping = true }

    /// Runs when the backend returns from waiting, before this turn's completions are handled:
    /// work other threads handed over before the wake-up goes first (a delivery published on
    /// another loop before a join read in this turn is not delivered to that joiner).
    package var onWake: (() -> Void)?

    /// Runs on the loop's thread at the time asked with `scheduleTick` (loop-wide work: typing
    /// auto-stop, presence grace periods).
    package var onTick: (() -> Void)?
    private var nextTick: Int64 = .max

    /// Asks for `onTick` at (or soon after) `millis`; the earliest request wins.
    package func scheduleTick(at millis: Int64) {
        nextTick = min(nextTick, millis)
    }

    // MARK: Operations for the handler

    /// Whether `id` still names an open connection.
    @inline(__always)
    package func isOpen(_ id: ConnectionID) -> Bool {
        Int(id.slot) < slotCount && slots[Int(id.slot)].generation == id.generation && slots[Int(id.slot)].state == .open
    }

    /// The current generation of a slot (names the connection that holds it now).
    package func generation(ofSlot slot: UInt32) -> UInt32 { slots[Int(slot)].generation }

    /// The client address of an open accepted connection (kept when MAX_CONNECTIONS_PER_IP
    /// counts it, else asked of the socket: for the rare request that needs it).
    package func peerAddress(_ id: ConnectionID) -> PeerAddress? {
        guard isOpen(id) else { return nil }
        let s = Int(id.slot)
        return slots[s].countedPeer ? peers[s] : PeerAddress.peer(of: slots[s].fd)
    }

    /// Queues shared bytes on a connection; they go out at the end of this loop turn.
    package func send(_ id: ConnectionID, _ bytes: SharedBytes) {
        guard isOpen(id) else { return }
        let s = Int(id.slot)
        slots[s].queue.append(bytes, framePool)
        markDirty(s)
    }

    /// What `enqueue` did.
    package enum EnqueueResult {
        case queued
        /// The backlog was over the limit: nothing queued.
        case overLimit
        /// Not an open connection.
        case closed
    }

    /// The fan-out path: queues `bytes` unless the connection's backlog is already over `limit`.
    @inline(__always)
    package func enqueue(_ id: ConnectionID, _ bytes: SharedBytes, limit: Int) -> EnqueueResult {
        guard isOpen(id) else { return .closed }
        let s = Int(id.slot)
        if slots[s].queue.queuedBytes > limit { return .overLimit }
        slots[s].queue.append(bytes, framePool)
        markDirty(s)
        return .queued
    }

    /// Fan-out: queues one shared `frame` on each of `targets` whose backlog is at most `limit`,
    /// reporting the others to `overLimit`. The frame is retained once per recipient, nothing else.
    /// Returns how many it was queued on (counted by subtracting the rare skips, not per recipient).
    @discardableResult
    package func enqueue(
        _ frame: SharedBytes, on targets: UnsafeBufferPointer<ConnectionID>, limit: Int,
        overLimit: (ConnectionID) -> Void
    ) -> Int {
        let pool = framePool, slots = self.slots, slotCount = self.slotCount
        var queued = targets.count
        for id in targets {
            let s = Int(id.slot)
            guard s < slotCount, slots[s].generation == id.generation, slots[s].state == .open else {
                queued -= 1
                continue
            }
            if slots[s].queue.queuedBytes > limit {
                queued -= 1
                overLimit(id)
                continue
            }
            slots[s].queue.append(frame, pool)
            if !slots[s].queued {
                slots[s].queued = true
                dirty.append(UInt32(s))
            }
        }
        return queued
    }

    /// Bytes queued on a connection and not yet written (for backpressure decisions).
    package func queuedBytes(_ id: ConnectionID) -> Int {
        guard Int(id.slot) < slotCount, slots[Int(id.slot)].generation == id.generation else { return 0 }
        return slots[Int(id.slot)].queue.queuedBytes
    }

    /// Drops queued frames that have not started going out (those in flight stay), e.g. before a
    /// slow consumer's final close frame.
    package func discardQueued(_ id: ConnectionID) {
        guard isOpen(id) else { return }
        let s = Int(id.slot)
        let keep = slots[s].sendInFlight ? Int(slots[s].inFlightFrames) : (slots[s].queue.headOffset > 0 ? 1 : 0)
        slots[s].queue.truncate(keeping: keep, framePool)
    }

    /// Closes gracefully: what is queued goes out, then the write side is shut and the loop reads
    /// until the peer's EOF (at most `closeLingerMillis`). The handler hears `connectionClosed` now.
    package func close(_ id: ConnectionID) {
        guard isOpen(id) else { return }
        let s = Int(id.slot)
        slots[s].state = .closing
        openCount -= 1
        timers.schedule(Int32(s), at: now + closeLingerMillis)
        markDirty(s)
        handler.connectionClosed(id, loop: self)
    }

    /// Closes at once, dropping anything queued.
    package func abort(_ id: ConnectionID) {
        guard Int(id.slot) < slotCount, slots[Int(id.slot)].generation == id.generation else { return }
        kill(Int(id.slot), notify: !slots[Int(id.slot)].outbound)
    }

    /// Sets the connection's single deadline; `connectionDeadline` is called when it passes.
    package func setDeadline(_ id: ConnectionID, at millis: Int64) {
        guard isOpen(id) else { return }
        timers.schedule(Int32(id.slot), at: millis)
    }

    // MARK: Outbound connections and one-shot timers

    /// Opens a TCP connection from this loop (non-blocking connect); its events go to
    /// `handler`. Bytes sent before the connect completes wait in the queue. Fails at once only
    /// when the socket cannot be created or the connect is refused synchronously.
    package func connect(
        to address: UnsafePointer<sockaddr>, length: socklen_t, handler: OutboundHandler
    ) -> Result<ConnectionID, SystemError> {
        let fd = socket(
            Int32(address.pointee.sa_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError(call: "socket", errno: errno)) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if Glibc.connect(fd, address, length) != 0 && errno != EINPROGRESS {
            let e = errno
            Glibc.close(fd)
            return .failure(SystemError(call: "connect", errno: e))
        }
        let s = freeSlots.popLast().map(Int.init) ?? appendSlot()
        slots[s].fd = fd
        slots[s].generation = (slots[s].generation &+ 1) & 0x0FFF_FFFF
        slots[s].state = .connecting
        slots[s].outbound = true
        let id = ConnectionID(slot: UInt32(s), generation: slots[s].generation)
        outboundHandlers[UInt32(s)] = handler
        backend.startConnecting(slot: id.slot, generation: id.generation, fd: fd)
        // io_uring: the poll for the connect is an operation in flight until it completes.
        slots[s].receiveArmed = backend.hasAsyncOperations
        return .success(id)
    }

    /// Queues bytes on an outbound connection (also while it is still connecting).
    package func sendOutbound(_ id: ConnectionID, _ bytes: SharedBytes) {
        let s = Int(id.slot)
        guard s < slotCount, slots[s].generation == id.generation, slots[s].outbound,
            slots[s].state == .open || slots[s].state == .connecting
        else { return }
        slots[s].queue.append(bytes, framePool)
        if slots[s].state == .open { markDirty(s) }
    }

    /// Calls `work` on this loop after `millis`; the returned id cancels it (`cancelScheduled`).
    package func schedule(after millis: Int64, _ work: @escaping () -> Void) -> UInt64 {
        oneShots.add(at: now + max(0, millis), work)
    }

    package func cancelScheduled(_ id: UInt64) {
        oneShots.cancel(id)
    }

    /// io_uring: the poll watching a connect completed (`result` < 0: -errno, e.g. cancelled).
    func backendConnectPolled(slot: UInt32, generation: UInt32, result: Int32) {
        let s = Int(slot)
        guard s < slotCount, slots[s].generation == generation else { return }
        slots[s].receiveArmed = false
        switch slots[s].state {
        case .dead: releaseIfIdle(s)
        case .connecting: if result < 0 { kill(s, error: -result) } else { finishConnect(s) }
        default: break
        }
    }

    /// The connect of an outbound connection finished (epoll: writable; io_uring: POLLOUT).
    private func finishConnect(_ s: Int) {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(slots[s].fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
        guard error == 0 else {
            kill(s, error: error)
            return
        }
        slots[s].state = .open
        let id = ConnectionID(slot: UInt32(s), generation: slots[s].generation)
        backend.connectCompleted(slot: id.slot, generation: id.generation, fd: slots[s].fd)
        slots[s].receiveArmed = backend.hasAsyncOperations
        outboundHandlers[UInt32(s)]?.outboundConnected(id, loop: self)
        if !slots[s].queue.isEmpty { markDirty(s) }
    }

    // MARK: Events from the backend

    /// The backend's wait returned: events about to be reported happened now, not before the wait.
    func backendWoke() {
        let nanos = EventLoop.monotonicNanos()
        turnStartNanos = nanos
        now = nanos / 1_000_000
        onWake?()
    }

    func backendAccepted(fd: Int32, listener: Int) {
        // MAX_CONNECTIONS_PER_IP: an address at its cap is refused here, before a slot, a parser
        // or a deadline exists for it — closing costs one syscall, answering would cost a read.
        var peer: PeerAddress?
        if let perIP = connectionsPerIP, let address = PeerAddress.peer(of: fd) {
            guard perIP.acquire(address) else {
                Glibc.close(fd)
                refusedPerIP &+= 1
                if refusedPerIPLogged + 10_000 <= now {
                    refusedPerIPLogged = now
                    Log.warn(
                        "connection refused: MAX_CONNECTIONS_PER_IP reached",
                        ["peer": "\(address)", "limit": "\(perIP.limit)", "loop": "\(index)"])
                }
                return
            }
            peer = address
        }
        let s: Int
        if let free = freeSlots.popLast() {
            s = Int(free)
        } else {
            s = appendSlot()
        }
        slots[s].fd = fd
        slots[s].generation = (slots[s].generation &+ 1) & 0x0FFF_FFFF
        slots[s].state = .open
        if let peer {
            peers.extendForSlot(s, with: PeerAddress(ipv4: 0))
            peers[s] = peer
            slots[s].countedPeer = true
        }
        openCount += 1
        let id = ConnectionID(slot: UInt32(s), generation: slots[s].generation)
        guard backend.startReceiving(slot: id.slot, generation: id.generation, fd: fd) else {
            kill(s, notify: false)
            return
        }
        slots[s].receiveArmed = backend.hasAsyncOperations
        handler.connectionOpened(id, loop: self)
    }

    /// When a per-IP refusal was last logged (at most one line per loop every 10 s).
    private var refusedPerIPLogged: Int64 = -10_000

    /// accept failed with `error`; EMFILE/ENFILE/ENOBUFS/ENOMEM pause accepting briefly instead of spinning.
    func backendAcceptFailed(listener: Int, error: Int32) {
        switch error {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            if listenerPausedUntil[listener] == nil {
                Log.warn("accept failed, pausing accepts for 100 ms", ["error": String(cString: strerror(error)), "loop": "\(index)"])
            }
            listenerPausedUntil[listener] = now + 100
            backend.setListenerPaused(listener, true)
        default:
            break
        }
    }

    func backendReceived(slot: UInt32, generation: UInt32, _ bytes: UnsafeMutableRawBufferPointer) {
        let s = Int(slot)
        guard s < slotCount, slots[s].generation == generation else { return }
        switch slots[s].state {
        case .open where slots[s].outbound:
            outboundHandlers[slot]?.outboundReceived(
                ConnectionID(slot: slot, generation: generation), UnsafeRawBufferPointer(bytes), loop: self)
        case .open: handler.connectionReceived(ConnectionID(slot: slot, generation: generation), bytes, loop: self)
        default: break  // closing: discard until EOF
        }
    }

    /// The receive side ended: EOF (0) or an error (errno). `rearm` true when the kernel merely
    /// stopped a multishot receive and it may be started again.
    func backendReceiveEnded(slot: UInt32, generation: UInt32, error: Int32, rearm: Bool) {
        let s = Int(slot)
        guard s < slotCount, slots[s].generation == generation else { return }
        slots[s].receiveArmed = false
        if slots[s].state == .dead {
            releaseIfIdle(s)
            return
        }
        if rearm {
            if backend.rearmReceive(slot: slot, generation: generation, fd: slots[s].fd) {
                slots[s].receiveArmed = backend.hasAsyncOperations
                return
            }
        }
        kill(s, error: error)
    }

    /// An asynchronous send finished: `result` bytes written, or -errno.
    func backendSendCompleted(slot: UInt32, generation: UInt32, result: Int32) {
        let s = Int(slot)
        guard s < slotCount, slots[s].generation == generation else { return }
        slots[s].sendInFlight = false
        slots[s].inFlightFrames = 0
        if slots[s].state == .dead {
            releaseIfIdle(s)
            return
        }
        if result < 0 {
            kill(s)
            return
        }
        slots[s].queue.consume(Int(result), framePool)
        if !slots[s].queue.isEmpty || slots[s].state == .closing { markDirty(s) }
    }

    /// A blocked socket can take more bytes (epoll).
    func backendWritable(slot: UInt32, generation: UInt32) {
        let s = Int(slot)
        guard s < slotCount, slots[s].generation == generation, slots[s].state != .dead else { return }
        if slots[s].state == .connecting {
            finishConnect(s)
            return
        }
        slots[s].writeBlocked = false
        backend.setWantsWritable(slot: slot, generation: generation, fd: slots[s].fd, false)
        markDirty(s)
    }

    /// The fd of a live slot, for a backend checking that an event still applies.
    func fileDescriptor(slot: UInt32, generation: UInt32) -> Int32? {
        let s = Int(slot)
        guard s < slotCount, slots[s].generation == generation,
            slots[s].state == .open || slots[s].state == .closing || slots[s].state == .connecting
        else { return nil }
        return slots[s].fd
    }

    // MARK: Internals

    @inline(__always)
    private func markDirty(_ s: Int) {
        if !slots[s].queued {
            slots[s].queued = true
            dirty.append(UInt32(s))
        }
    }

    /// Writes every dirty connection's queue: one batched send each, submitted with the next poll.
    private func flush() {
        var i = 0
        while i < dirty.count {
            let s = Int(dirty[i])
            i += 1
            slots[s].queued = false
            flushSlot(s)
        }
        dirty.removeAll(keepingCapacity: true)
    }

    private func flushSlot(_ s: Int) {
        let state = slots[s].state
        guard state == .open || state == .closing, !slots[s].sendInFlight, !slots[s].writeBlocked else { return }
        let slot = UInt32(s), generation = slots[s].generation, fd = slots[s].fd
        if !slots[s].queue.isEmpty {
            switch backend.send(slot: slot, generation: generation, fd: fd, queue: &slots[s].queue, pool: framePool) {
            case .wrote:
                if !slots[s].queue.isEmpty {
                    slots[s].writeBlocked = true
                    backend.setWantsWritable(slot: slot, generation: generation, fd: fd, true)
                    return
                }
            case .submitted(let frames):
                slots[s].sendInFlight = true
                slots[s].inFlightFrames = Int32(frames)
                return
            case .failed:
                kill(s)
                return
            }
        }
        if state == .closing && slots[s].queue.isEmpty {
            // Everything is out: send FIN and wait for the peer's (bounded by the linger deadline).
            shutdown(fd, Int32(SHUT_WR))
        }
    }

    private func deadlinePassed(_ slot: Int32) {
        let s = Int(slot)
        switch slots[s].state {
        case .open: handler.connectionDeadline(ConnectionID(slot: UInt32(s), generation: slots[s].generation), loop: self)
        case .closing: kill(s)
        default: break
        }
    }

    /// Ends a connection now: tells the handler (once), shuts the socket, and frees the slot as
    /// soon as no kernel operation refers to it any more.
    private func kill(_ s: Int, notify: Bool = true, error: Int32 = 0) {
        let state = slots[s].state
        guard state == .open || state == .closing || state == .connecting else { return }
        if slots[s].outbound {
            slots[s].state = .dead
            let handler = outboundHandlers.removeValue(forKey: UInt32(s))
            if notify { handler?.outboundClosed(ConnectionID(slot: UInt32(s), generation: slots[s].generation), error: error, loop: self) }
        } else if state == .open {
            openCount -= 1
            slots[s].state = .dead
            if notify { handler.connectionClosed(ConnectionID(slot: UInt32(s), generation: slots[s].generation), loop: self) }
        }
        if state == .connecting { backend.cancelConnect(slot: UInt32(s), generation: slots[s].generation) }
        slots[s].state = .dead
        timers.cancel(Int32(s))
        slots[s].queue.truncate(keeping: slots[s].sendInFlight ? Int(slots[s].inFlightFrames) : 0, framePool)
        if backend.hasAsyncOperations {
            // Completes the multishot receive (and any send) so their completions arrive.
            shutdown(slots[s].fd, Int32(SHUT_RDWR))
        }
        releaseIfIdle(s)
    }

    private func releaseIfIdle(_ s: Int) {
        guard slots[s].state == .dead, !slots[s].receiveArmed, !slots[s].sendInFlight else { return }
        Glibc.close(slots[s].fd)
        if slots[s].countedPeer {
            slots[s].countedPeer = false
            connectionsPerIP?.release(peers[s])
        }
        slots[s].fd = -1
        slots[s].state = .free
        slots[s].outbound = false
        slots[s].writeBlocked = false
        slots[s].queue.removeAll(framePool)
        freeSlots.append(UInt32(s))
    }

    private func resumePausedListeners() {
        guard !listenerPausedUntil.isEmpty else { return }
        for (listener, until) in listenerPausedUntil where until <= now {
            listenerPausedUntil[listener] = nil
            backend.setListenerPaused(listener, false)
        }
    }
}
