import CSystem
import Glibc
import RedisShim
import WSCore

/// RedisShim's host on one event loop: Redis connections are the loop's own outbound sockets
/// (io_uring or epoll, like client connections), timers are the loop's one-shot timers, and
/// every callback runs on the loop's thread. Host names are resolved on a helper thread so a
/// slow resolver never stalls the loop.
final class LoopRedisHost: RedisHost {
    unowned(unsafe) let loop: EventLoop
    /// Resolves names off the loops (numeric addresses skip it).
    static let resolverPool = WorkerPool(threads: 1, queueLimit: 256, name: "resolver")

    init(loop: EventLoop) {
        self.loop = loop
    }

    var nowMillis: Int64 { loop.now }

    func openConnection(to endpoint: RedisEndpoint, events: RedisTransportEvents) -> RedisTransport {
        let transport = LoopRedisTransport(loop: loop, endpoint: endpoint, events: events)
        transport.start()
        return transport
    }

    func schedule(afterMillis millis: Int64, _ work: @escaping () -> Void) -> RedisTimer {
        LoopRedisTimer(loop: loop, id: loop.schedule(after: millis, work))
    }
}

/// A pending `LoopRedisHost.schedule`.
final class LoopRedisTimer: RedisTimer {
    unowned(unsafe) let loop: EventLoop
    let id: UInt64
    init(loop: EventLoop, id: UInt64) {
        self.loop = loop
        self.id = id
    }
    func cancel() { loop.cancelScheduled(id) }
}

/// One Redis connection on a loop: resolve → connect → (TLS) → bytes both ways.
final class LoopRedisTransport: RedisTransport, OutboundHandler {
    private enum Phase { case resolving, connecting, open, closed }

    unowned(unsafe) let loop: EventLoop
    let endpoint: RedisEndpoint
    /// Held until the transport closes (RedisShim passes a small forwarding object).
    private var events: RedisTransportEvents?
    private var phase = Phase.resolving
    private var id: ConnectionID?
    /// Bytes written before the socket exists.
    private var early: [UInt8] = []
    private var tls: TLSClientEngine?
    private var scratch: [UInt8] = []
    private var plaintext: [UInt8] = []

    init(loop: EventLoop, endpoint: RedisEndpoint, events: RedisTransportEvents) {
        self.loop = loop
        self.endpoint = endpoint
        self.events = events
    }

    /// Starts resolving; every outcome reaches `events` later, from the loop.
    func start() {
        let host = endpoint.host, port = UInt16(clamping: endpoint.port)
        if OutboundHTTP.Resolver.isIPLiteral(host) {
            // Numeric: no lookup, but the outcome still arrives from the loop, not from here.
            let result = Result { () throws(OutboundError) in
                try OutboundHTTP.Resolver.resolve(host: host, port: port, deadline: OutboundHTTP.Deadline(millis: 1_000))
            }
            _ = loop.schedule(after: 0) { [self] in self.resolved(result) }
            return
        }
        let mailbox = loop.mailbox
        let box = UnsafeSendable(self)
        let submitted = Self.submitResolve(host: host, port: port) { result in
            mailbox.post { _ in box.value.resolved(result) }
        }
        if !submitted {
            _ = loop.schedule(after: 0) { [self] in self.fail("resolver queue full") }
        }
    }

    private static func submitResolve(host: String, port: UInt16,
                                      _ done: @escaping @Sendable (Result<[OutboundHTTP.SocketAddress], OutboundError>) -> Void) -> Bool {
        LoopRedisHost.resolverPool.submit {
            done(Result { () throws(OutboundError) in
                try OutboundHTTP.Resolver.resolve(host: host, port: port, deadline: OutboundHTTP.Deadline(millis: 5_000))
            })
        }
    }

    private func resolved(_ result: Result<[OutboundHTTP.SocketAddress], OutboundError>) {
        guard phase == .resolving else { return }
        let addresses: [OutboundHTTP.SocketAddress]
        switch result {
        case .failure(let error): return fail("cannot resolve \(endpoint.host): \(error)")
        case .success(let list): addresses = list
        }
        guard let address = addresses.first else { return fail("no address for \(endpoint.host)") }
        if endpoint.tls {
            do {
                tls = try TLSClientEngine(serverName: endpoint.host)
            } catch {
                return fail("TLS: \(error)")
            }
        }
        let opened = address.bytes.withUnsafeBytes { raw in
            loop.connect(to: raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length: socklen_t(raw.count), handler: self)
        }
        switch opened {
        case .failure(let error): fail("\(error)")
        case .success(let id):
            self.id = id
            phase = .connecting
            if let tls {
                do { try tls.start(output: &scratch) } catch { return fail("TLS: \(error)") }
                flushScratch()
            }
            if !early.isEmpty {
                let bytes = early
                early = []
                write(bytes)
            }
        }
    }

    func write(_ bytes: [UInt8]) {
        switch phase {
        case .closed: return
        case .resolving: early += bytes
        case .connecting, .open:
            if let tls {
                do {
                    try bytes.withUnsafeBytes { try tls.send($0, output: &scratch) }
                } catch {
                    return fail("TLS: \(error)")
                }
                flushScratch()
            } else if let id {
                loop.sendOutbound(id, SharedBytes.copying(bytes))
            }
        }
    }

    func close() {
        guard phase != .closed else { return }
        phase = .closed
        if let id { loop.abort(id) }
        id = nil
        events = nil
    }

    private func flushScratch() {
        guard !scratch.isEmpty, let id else { return }
        loop.sendOutbound(id, SharedBytes.copying(scratch))
        scratch.removeAll(keepingCapacity: true)
    }

    private func fail(_ reason: String) {
        guard phase != .closed else { return }
        let events = self.events
        close()
        events?.transportClosed(reason)
    }

    // MARK: OutboundHandler

    func outboundConnected(_ id: ConnectionID, loop: EventLoop) {
        guard phase == .connecting else { return }
        if tls == nil {
            phase = .open
            events?.transportConnected()
        }
        // TLS: connected once the handshake completes (in `outboundReceived`).
    }

    func outboundReceived(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer, loop: EventLoop) {
        guard phase == .connecting || phase == .open else { return }
        guard let tls else {
            events?.transportReceived(bytes)
            return
        }
        plaintext.removeAll(keepingCapacity: true)
        do {
            try tls.receive(bytes, plaintext: &plaintext, output: &scratch)
        } catch {
            return fail("TLS: \(error)")
        }
        flushScratch()
        if phase == .connecting && tls.isEstablished {
            phase = .open
            events?.transportConnected()
        }
        if phase == .open && !plaintext.isEmpty {
            plaintext.withUnsafeBytes { events?.transportReceived($0) }
        }
        if tls.peerClosed { fail("TLS close_notify") }
    }

    func outboundClosed(_ id: ConnectionID, error: Int32, loop: EventLoop) {
        guard phase != .closed else { return }
        phase = .closed
        self.id = nil
        let events = self.events
        self.events = nil
        events?.transportClosed(error == 0 ? "EOF" : String(cString: strerror(error)))
    }
}
