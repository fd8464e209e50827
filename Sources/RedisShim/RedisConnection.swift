/// One Redis connection driven by the host's event loop: pipelined commands with replies
/// matched in order, a handshake, command timeouts and reconnects with full-jitter backoff.
///
/// States: `disconnected → connecting → handshaking → ready`, back to `disconnected` on any
/// failure (then a reconnect is scheduled), and `closed` for good after ``shutdown()``.
/// Commands are accepted only when ready; otherwise they fail at once with
/// ``RedisError/notConnected`` and the caller decides. Not thread-safe: use it on the host's
/// thread only. Commands that change connection state (`SELECT`, `CLIENT REPLY`, `MULTI` without
/// `EXEC`…) are not replayed after a reconnect; (un)subscribe commands, `MONITOR` and `HELLO`
/// are refused (use ``RedisSubscriber``).
public final class RedisConnection {
    /// Where the connection is in its life cycle.
    public enum State: Hashable, Sendable {
        case disconnected, connecting, handshaking, ready, closed
    }

    public let endpoint: RedisEndpoint
    public let options: RedisOptions
    /// Counters for metrics.
    public internal(set) var stats = RedisStats()
    /// The current state.
    public private(set) var state: State = .disconnected
    /// Called each time the connection becomes ready (after the handshake), on the host's thread.
    public var onReady: (() -> Void)?
    /// Called when a ready connection is lost and after every failed connection attempt (so a
    /// wrong password is reported with ``RedisError/authFailed(_:)`` on each retry). A reconnect
    /// is already scheduled when it runs.
    public var onDown: ((RedisError) -> Void)?

    /// Push mode (``RedisSubscriber``): unsolicited `message`/`smessage`/`pmessage` arrays and
    /// unmatched subscription confirmations go here instead of being matched to commands.
    var pushHandler: ((RedisValue) -> Void)?

    private let host: RedisHost
    private var started = false
    /// Identifies the current transport and everything scheduled for it; bumped on teardown so
    /// late events and timers of an abandoned transport are ignored.
    private var attempt: UInt64 = 0
    private var transport: RedisTransport?
    private var reader = RESPReader()
    private var pending = FIFO<Pending>()
    private var handshakeRemaining = 0
    private var backoffAttempt = 0
    private var everReady = false
    private var connectTimer: RedisTimer?
    private var watchdog: RedisTimer?
    private var reconnectTimer: RedisTimer?
    private var healthTimer: RedisTimer?
    private var random = SystemRandomNumberGenerator()

    private struct Pending {
        var sentAt: Int64
        var kind: Kind
        /// Handshake, health-check and subscription commands: not counted in `failedPending`.
        var isInternal: Bool
    }

    private enum Kind {
        case reply((Result<RedisValue, RedisError>) -> Void)
        /// A (S)(UN)SUBSCRIBE: one confirmation push per channel, no ordinary reply.
        case confirmations(kind: [UInt8], remaining: Int, onError: ((RedisError) -> Void)?)
    }

    private enum HandshakeStep { case auth, select, setName }

    /// Commands whose replies do not pair one-to-one with requests.
    private static let refused = [
        "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE",
        "MONITOR", "HELLO",
    ]

    /// A connection that does nothing until ``start()``.
    public init(endpoint: RedisEndpoint, host: RedisHost, options: RedisOptions = RedisOptions()) {
        self.endpoint = endpoint
        self.host = host
        self.options = options
    }

    deinit {
        connectTimer?.cancel()
        watchdog?.cancel()
        reconnectTimer?.cancel()
        healthTimer?.cancel()
        transport?.close()
    }

    /// True when commands can be sent.
    public var isReady: Bool { state == .ready }

    /// Commands sent and waiting for their replies.
    public var pendingCount: Int { pending.count }

    /// Starts connecting (once; later calls do nothing).
    public func start() {
        guard !started, state == .disconnected else { return }
        started = true
        connect()
    }

    /// Closes the connection for good: pending commands fail with ``RedisError/notConnected``,
    /// no reconnect follows, later commands fail at once. `onDown` is not called.
    public func shutdown() {
        guard state != .closed else { return }
        teardown()
        reconnectTimer?.cancel()
        reconnectTimer = nil
        state = .closed
        handshakeRemaining = 0
        for entry in pending.removeAll() { fail(entry, .notConnected) }
    }

    /// Sends a command (written at once, pipelined behind any pending ones) and calls
    /// `completion` with its reply on the host's thread. An error reply is
    /// ``RedisError/server(_:)``; when not ready it fails at once with ``RedisError/notConnected``.
    public func send(_ command: RedisCommand, _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        guard state == .ready, transport != nil else {
            stats.rejected += 1
            completion(.failure(.notConnected))
            return
        }
        guard command.count > 0, !Self.refused.contains(where: command.hasName) else {
            stats.rejected += 1
            completion(
                .failure(.protocolError(command.count == 0 ? "empty command" : "\(command.name) cannot be sent on a RedisConnection")))
            return
        }
        guard pending.count < options.maxPending else {
            stats.rejected += 1
            completion(.failure(.tooManyPending))
            return
        }
        enqueue(command, .reply(completion), isInternal: false)
    }

    /// Sends a (S)(UN)SUBSCRIBE for ``RedisSubscriber``: `count` confirmations of `kind` are
    /// consumed silently; an error reply goes to `onError`. False when not ready.
    @discardableResult
    func sendSubscription(
        _ command: RedisCommand, confirmations kind: [UInt8], count: Int,
        onError: ((RedisError) -> Void)?
    ) -> Bool {
        guard state == .ready, transport != nil, count > 0 else { return false }
        enqueue(command, .confirmations(kind: kind, remaining: count, onError: onError), isInternal: true)
        return true
    }

    // MARK: - Life cycle

    private func connect() {
        reconnectTimer = nil
        attempt &+= 1
        let current = attempt
        state = .connecting
        stats.connectAttempts += 1
        reader = RESPReader()
        connectTimer = host.schedule(afterMillis: options.connectTimeoutMillis) { [weak self] in
            guard let self, self.attempt == current else { return }
            self.connectTimer = nil
            self.stats.timeouts += 1
            self.broken(.timeout)
        }
        let opened = host.openConnection(to: endpoint, events: Sink(owner: self, attempt: current))
        if attempt == current {
            transport = opened
        } else {
            opened.close()  // the host reported a failure synchronously; already handled
        }
    }

    private func transportConnected(_ a: UInt64) {
        guard a == attempt, state == .connecting else { return }
        state = .handshaking
        var steps: [(RedisCommand, HandshakeStep)] = []
        if let password = endpoint.password {
            if let user = endpoint.username {
                steps.append((RedisCommand("AUTH", user, password), .auth))
            } else {
                steps.append((RedisCommand("AUTH", password), .auth))
            }
        }
        if endpoint.database != 0 {
            steps.append((RedisCommand("SELECT", String(endpoint.database)), .select))
        }
        if let name = options.clientName, !name.isEmpty {
            steps.append((RedisCommand("CLIENT", "SETNAME", name), .setName))
        }
        guard !steps.isEmpty else {
            becomeReady()
            return
        }
        handshakeRemaining = steps.count
        var bytes: [UInt8] = []
        let now = host.nowMillis
        for (command, step) in steps {
            command.encode(into: &bytes)
            pending.append(
                Pending(
                    sentAt: now,
                    kind: .reply { [weak self] result in
                        self?.handshakeReply(step, result, a)
                    }, isInternal: true))
            stats.commandsSent += 1
        }
        transport?.write(bytes)
    }

    private func handshakeReply(_ step: HandshakeStep, _ result: Result<RedisValue, RedisError>, _ a: UInt64) {
        guard a == attempt, state == .handshaking else { return }
        if case .failure(let error) = result {
            switch step {
            case .auth:
                if case .server(let message) = error { broken(.authFailed(message)) } else { broken(error) }
                return
            case .select:
                broken(error)
                return
            case .setName:
                break  // cosmetic; a server that refuses it still serves commands
            }
        }
        handshakeRemaining -= 1
        if handshakeRemaining == 0 { becomeReady() }
    }

    private func becomeReady() {
        connectTimer?.cancel()
        connectTimer = nil
        state = .ready
        backoffAttempt = 0
        if everReady { stats.reconnects += 1 }
        everReady = true
        scheduleHealthCheck()
        onReady?()
    }

    private func transportReceived(_ a: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard a == attempt, state == .handshaking || state == .ready else { return }
        // hiredis compacts its buffer (a memmove of everything unread) after each reply once 1 KiB
        // is consumed: a 64 KiB read of small replies fed whole costs a memmove per reply. Fed in
        // slices and drained in between, the unread rest stays under a slice.
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + RESPReader.feedSlice)
            reader.feed(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            while true {
                guard a == attempt else { return }
                let value: RedisValue?
                do {
                    value = try reader.next()
                } catch {
                    broken(error)
                    return
                }
                guard let value else { break }
                dispatch(value)
            }
        }
    }

    private func transportClosed(_ a: UInt64, _ reason: String) {
        guard a == attempt else { return }
        broken(.connectionLost(reason))
    }

    /// Drops the transport, fails what is pending with `error`, schedules a reconnect and
    /// reports `error` through `onDown`.
    private func broken(_ error: RedisError) {
        guard state != .closed, state != .disconnected else { return }
        teardown()
        state = .disconnected
        handshakeRemaining = 0
        stats.disconnects += 1
        scheduleReconnect()
        for entry in pending.removeAll() { fail(entry, error) }
        onDown?(error)
    }

    /// Forgets the current transport and its timers (not the reconnect timer).
    private func teardown() {
        attempt &+= 1
        connectTimer?.cancel()
        connectTimer = nil
        watchdog?.cancel()
        watchdog = nil
        healthTimer?.cancel()
        healthTimer = nil
        let old = transport
        transport = nil
        old?.close()
    }

    private func scheduleReconnect() {
        let delay = options.backoff.delay(attempt: backoffAttempt, using: &random)
        backoffAttempt += 1
        reconnectTimer = host.schedule(afterMillis: delay) { [weak self] in
            guard let self, self.state == .disconnected else { return }
            self.connect()
        }
    }

    // MARK: - Commands and replies

    private func enqueue(_ command: RedisCommand, _ kind: Kind, isInternal: Bool) {
        let bytes = command.encoded
        pending.append(Pending(sentAt: host.nowMillis, kind: kind, isInternal: isInternal))
        stats.commandsSent += 1
        armWatchdog()
        transport?.write(bytes)
    }

    private func fail(_ entry: Pending, _ error: RedisError) {
        if !entry.isInternal { stats.failedPending += 1 }
        if case .reply(let completion) = entry.kind { completion(.failure(error)) }
    }

    private func dispatch(_ value: RedisValue) {
        if let pushHandler, let push = PushKind(value) {
            switch push {
            case .message:
                pushHandler(value)
                return
            case .confirmation(let kind):
                if case .confirmations(let expected, let remaining, let onError)? = pending.first?.kind, expected == kind {
                    if remaining > 1 {
                        pending.updateFirst { $0.kind = .confirmations(kind: expected, remaining: remaining - 1, onError: onError) }
                    } else {
                        let entry = pending.popFirst()!
                        stats.replies += 1
                        stats.recordRoundTrip(host.nowMillis - entry.sentAt)
                    }
                } else {
                    pushHandler(value)  // unsolicited (e.g. a server-side sunsubscribe)
                }
                return
            }
        }
        guard let entry = pending.popFirst() else {
            // e.g. "-ERR max number of clients reached" right after accept: keep the server's words.
            if case .error(let message) = value {
                broken(.server(message))
            } else {
                broken(.protocolError("a reply arrived that no command was waiting for"))
            }
            return
        }
        stats.replies += 1
        stats.recordRoundTrip(host.nowMillis - entry.sentAt)
        switch entry.kind {
        case .reply(let completion):
            if case .error(let message) = value {
                stats.errorReplies += 1
                completion(.failure(.server(message)))
            } else {
                completion(.success(value))
            }
        case .confirmations(_, _, let onError):
            if case .error(let message) = value {
                stats.errorReplies += 1
                onError?(.server(message))
            } else {
                broken(.protocolError("unexpected reply to a subscription command"))
            }
        }
    }

    // MARK: - Timers

    /// One timer for the oldest pending command: when it fires early (the oldest was answered)
    /// it re-arms for the new oldest, so replies never touch the host's timers.
    private func armWatchdog() {
        guard watchdog == nil, let oldest = pending.first else { return }
        let a = attempt
        let due = oldest.sentAt + options.commandTimeoutMillis - host.nowMillis
        watchdog = host.schedule(afterMillis: max(0, due)) { [weak self] in
            guard let self, self.attempt == a else { return }
            self.watchdog = nil
            guard self.state == .ready, let oldest = self.pending.first else { return }
            if self.host.nowMillis - oldest.sentAt >= self.options.commandTimeoutMillis {
                self.stats.timeouts += 1
                self.broken(.timeout)
            } else {
                self.armWatchdog()
            }
        }
    }

    private func scheduleHealthCheck() {
        guard options.healthCheckIntervalMillis > 0 else { return }
        let a = attempt
        healthTimer = host.schedule(afterMillis: options.healthCheckIntervalMillis) { [weak self] in
            guard let self, self.attempt == a, self.state == .ready else { return }
            self.healthTimer = nil
            if self.pending.isEmpty {
                self.enqueue(RedisCommand("PING"), .reply { _ in }, isInternal: true)
            }
            self.scheduleHealthCheck()
        }
    }

    // MARK: - Push classification

    private enum PushKind {
        case message
        case confirmation([UInt8])

        private static let messages: [[UInt8]] = ["message", "smessage", "pmessage"].map { Array($0.utf8) }
        private static let confirmations: [[UInt8]] = [
            "subscribe", "unsubscribe", "ssubscribe", "sunsubscribe", "psubscribe", "punsubscribe",
        ].map { Array($0.utf8) }

        init?(_ value: RedisValue) {
            guard case .array(let items) = value, items.count >= 3, case .bulk(let kind) = items[0] else { return nil }
            if Self.messages.contains(kind) {
                self = .message
            } else if Self.confirmations.contains(kind) {
                self = .confirmation(kind)
            } else {
                return nil
            }
        }
    }

    // MARK: - Transport events

    /// Receives the host's events for one transport; holds its connection weakly so the host
    /// keeping the sink does not keep the connection alive.
    private final class Sink: RedisTransportEvents {
        weak var owner: RedisConnection?
        let attempt: UInt64

        init(owner: RedisConnection, attempt: UInt64) {
            self.owner = owner
            self.attempt = attempt
        }

        func transportConnected() { owner?.transportConnected(attempt) }
        func transportReceived(_ bytes: UnsafeRawBufferPointer) { owner?.transportReceived(attempt, bytes) }
        func transportClosed(_ reason: String) { owner?.transportClosed(attempt, reason) }
    }
}
