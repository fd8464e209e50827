import CSystem
import Glibc
import PresenceLoop
import WSCore

/// What a `LoopStream` reports to its owner, always on the loop's thread.
package protocol LoopStreamDelegate: AnyObject {
    /// The stream is ready: TCP connected and, for TLS, the handshake done and the certificate
    /// verified. (Bytes written before this were kept and have gone out by now.)
    func streamConnected(_ stream: LoopStream)
    /// Plaintext arrived; the bytes are valid only during the call. Never called with nothing.
    func streamReceived(_ stream: LoopStream, _ bytes: UnsafeRawBufferPointer)
    /// The stream ended for `reason`. Called at most once, and never after the owner's `close()`.
    func streamClosed(_ stream: LoopStream, _ reason: LoopStream.Failure)
}

/// One outbound byte stream on an event loop: resolve → connect → (TLS) → bytes both ways.
///
/// Names are resolved on `resolverPool` (a helper thread, so a slow resolver never stalls the
/// loop); numeric addresses are used at once. Every address the name has is tried in turn until
/// one accepts the TCP connection. The socket is the loop's own outbound connection (io_uring or
/// epoll), and TLS runs in a `TLSClientEngine` over memory BIOs with the certificate and host name
/// checked (the system store, or `caFile`). Bytes written before the stream is ready are kept and
/// sent, in order, as soon as they can be. Everything happens on the loop's thread: `start`,
/// `write` and `close` must be called there, and the delegate hears from the stream only there,
/// always from a later loop event (never from inside `start` or `write`).
///
/// The stream holds its delegate strongly until it ends or is closed, and the loop holds the
/// stream while its socket is open, so an owner may simply keep the stream and let go at `close`.
package final class LoopStream: OutboundHandler {
    /// Why a stream ended.
    package enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The host name could not be resolved (or the resolver is saturated).
        case resolve(String)
        /// No address accepted the TCP connection (the last address's error).
        case connect(String)
        /// The TLS engine could not be set up, the handshake or certificate checks failed, or the
        /// TLS stream broke later (including an EOF in the middle of the handshake).
        case tls(String)
        /// The peer ended the stream in order: TCP EOF, or TLS close_notify.
        case eof
        /// The connected socket failed (errno, e.g. ECONNRESET).
        case io(Int32)

        package var description: String {
            switch self {
            case .resolve(let message): return message
            case .connect(let message): return message
            case .tls(let message): return "TLS: \(message)"
            case .eof: return "EOF"
            case .io(let error): return String(cString: strerror(error))
            }
        }
    }

    /// Where a stream is in its life.
    private enum Phase { case new, resolving, connecting, handshaking, open, closed }

    /// Resolves host names off the loops (shared with the Redis connections).
    package static let resolverPool = WorkerPool(threads: 1, queueLimit: 256, name: "resolver")

    package unowned(unsafe) let loop: EventLoop
    package let host: String
    package let port: UInt16
    /// Whether the stream speaks TLS (certificate and `host` checked).
    let isTLS: Bool
    package let caFile: String?
    private var delegate: LoopStreamDelegate?
    private var phase = Phase.new
    private var id: ConnectionID?
    private var addresses: [HostResolver.SocketAddress] = []
    private var nextAddress = 0
    private var lastConnectError = ""
    /// Plaintext written before the TCP connection was up (kept across address attempts).
    private var pending: [UInt8] = []
    private var tls: TLSClientEngine?
    private var ciphertext: [UInt8] = []
    private var plaintext: [UInt8] = []

    /// A stream to `host:port` (a name, or an IPv4/IPv6 literal without brackets) that reports to
    /// `delegate`; nothing happens before `start`. `tls`: speak TLS, trusting `caFile` (PEM)
    /// instead of the system store when given.
    package init(loop: EventLoop, host: String, port: UInt16, tls: Bool, caFile: String? = nil, delegate: LoopStreamDelegate) {
        self.loop = loop
        self.host = host
        self.port = port
        self.isTLS = tls
        self.caFile = caFile
        self.delegate = delegate
    }

    /// True once `streamConnected` has been reported and until the stream ends.
    package var isOpen: Bool { phase == .open }

    /// Starts resolving and connecting; every outcome reaches the delegate later, from the loop.
    package func start() {
        guard phase == .new else { return }
        phase = .resolving
        let host = self.host, port = self.port
        if HostResolver.isIPLiteral(host) {
            // Numeric: no lookup and no helper thread.
            resolved(
                Result { () throws(OutboundError) in
                    try HostResolver.resolve(host: host, port: port, timeoutMillis: 1_000)
                })
            return
        }
        let mailbox = loop.mailbox
        let box = UnsafeSendable(self)
        let submitted = Self.resolverPool.submit {
            let result = Result { () throws(OutboundError) in
                try HostResolver.resolve(host: host, port: port, timeoutMillis: 5_000)
            }
            mailbox.post { _ in box.value.resolved(result) }
        }
        if !submitted { failLater(.resolve("cannot resolve \(host): resolver queue full")) }
    }

    /// Sends `bytes` (plaintext) after everything written before; kept until the stream is ready.
    /// Does nothing once the stream has ended or been closed.
    package func write(_ bytes: [UInt8]) {
        switch phase {
        case .closed: return
        case .new, .resolving, .connecting: pending += bytes
        case .handshaking, .open:
            if let tls {
                do {
                    try bytes.withUnsafeBytes { try tls.send($0, output: &ciphertext) }
                } catch {
                    return failLater(.tls(Self.message(error)))
                }
                flushCiphertext()
            } else if let id {
                loop.sendOutbound(id, SharedBytes.copying(bytes))
            }
        }
    }

    /// Ends the stream at once (the socket is aborted; nothing queued goes out). The delegate
    /// hears nothing more.
    package func close() {
        guard phase != .closed else { return }
        phase = .closed
        if let id { loop.abort(id) }
        id = nil
        delegate = nil
        tls = nil
        pending = []
    }

    // MARK: - Steps

    private func resolved(_ result: Result<[HostResolver.SocketAddress], OutboundError>) {
        guard phase == .resolving else { return }
        switch result {
        case .failure(let error): return failLater(.resolve(Self.message(error)))
        case .success(let list): addresses = list
        }
        if isTLS {
            do {
                tls = try TLSClientEngine(serverName: host, caFile: caFile)
            } catch {
                return failLater(.tls(Self.message(error)))
            }
        }
        phase = .connecting
        connectNext()
    }

    /// Opens a connection to the next address; reports `.connect` when none is left.
    private func connectNext() {
        while nextAddress < addresses.count {
            let address = addresses[nextAddress]
            nextAddress += 1
            let opened = address.bytes.withUnsafeBytes { raw in
                loop.connect(to: raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length: socklen_t(raw.count), handler: self)
            }
            switch opened {
            case .success(let id):
                self.id = id
                return
            case .failure(let error):
                lastConnectError = Self.describe(address, error.errno)
            }
        }
        failLater(.connect(lastConnectError.isEmpty ? "no address for \(host)" : lastConnectError))
    }

    /// Reports `reason` from a later loop turn (so never from inside the caller's `start`/`write`).
    private func failLater(_ reason: Failure) {
        guard phase != .closed else { return }
        let delegate = self.delegate
        close()
        _ = loop.schedule(after: 0) { [self] in delegate?.streamClosed(self, reason) }
    }

    /// Reports `reason` now (from a loop event).
    private func fail(_ reason: Failure) {
        guard phase != .closed else { return }
        let delegate = self.delegate
        close()
        delegate?.streamClosed(self, reason)
    }

    private func becameOpen() {
        phase = .open
        let delegate = self.delegate
        delegate?.streamConnected(self)
    }

    private func flushCiphertext() {
        guard !ciphertext.isEmpty, let id else { return }
        loop.sendOutbound(id, SharedBytes.copying(ciphertext))
        ciphertext.removeAll(keepingCapacity: true)
    }

    private static func message(_ error: any Error) -> String {
        guard let error = error as? OutboundError else { return "\(error)" }
        switch error {
        case .connect(let message), .tls(let message), .protocolError(let message): return message
        case .timeout: return "timed out"
        }
    }

    private static func describe(_ address: HostResolver.SocketAddress, _ error: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var port: UInt16 = 0
        address.bytes.withUnsafeBytes { raw in
            if address.family == AF_INET6 {
                var a = sockaddr_in6()
                withUnsafeMutableBytes(of: &a) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix($0.count))) }
                _ = inet_ntop(AF_INET6, &a.sin6_addr, &text, socklen_t(text.count))
                port = UInt16(bigEndian: a.sin6_port)
            } else {
                var a = sockaddr_in()
                withUnsafeMutableBytes(of: &a) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix($0.count))) }
                _ = inet_ntop(AF_INET, &a.sin_addr, &text, socklen_t(text.count))
                port = UInt16(bigEndian: a.sin_port)
            }
        }
        let name = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let authority = address.family == AF_INET6 ? "[\(name)]:\(port)" : "\(name):\(port)"
        return "\(authority): \(String(cString: strerror(error)))"
    }

    // MARK: - OutboundHandler

    package func outboundConnected(_ id: ConnectionID, loop: EventLoop) {
        guard phase == .connecting, id == self.id else { return }
        let early = pending
        pending = []
        if let tls {
            phase = .handshaking
            do {
                try tls.start(output: &ciphertext)
                if !early.isEmpty { try early.withUnsafeBytes { try tls.send($0, output: &ciphertext) } }
            } catch {
                return fail(.tls(Self.message(error)))
            }
            flushCiphertext()
            // Open once the handshake completes (in `outboundReceived`).
        } else {
            if !early.isEmpty { loop.sendOutbound(id, SharedBytes.copying(early)) }
            becameOpen()
        }
    }

    package func outboundReceived(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer, loop: EventLoop) {
        guard phase == .handshaking || phase == .open, id == self.id else { return }
        guard let tls else {
            let delegate = self.delegate
            delegate?.streamReceived(self, bytes)
            return
        }
        plaintext.removeAll(keepingCapacity: true)
        do {
            try tls.receive(bytes, plaintext: &plaintext, output: &ciphertext)
        } catch {
            return fail(.tls(Self.message(error)))
        }
        flushCiphertext()
        if phase == .handshaking && tls.isEstablished {
            becameOpen()
        }
        if phase == .open && !plaintext.isEmpty {
            let delegate = self.delegate
            plaintext.withUnsafeBytes { delegate?.streamReceived(self, $0) }
        }
        // The delegate may have closed the stream meanwhile (phase .closed: nothing more).
        if phase == .open && tls.peerClosed { fail(.eof) }
    }

    package func outboundClosed(_ id: ConnectionID, error: Int32, loop: EventLoop) {
        guard id == self.id else { return }
        self.id = nil
        switch phase {
        case .connecting:
            // This address refused (or failed): try the next one, keeping what was written.
            lastConnectError = Self.describe(addresses[nextAddress - 1], error == 0 ? ECONNRESET : error)
            connectNext()
        case .handshaking:
            fail(.tls(error == 0 ? "connection closed during the handshake" : String(cString: strerror(error))))
        case .open:
            fail(error == 0 ? .eof : .io(error))
        case .new, .resolving, .closed:
            break
        }
    }
}
