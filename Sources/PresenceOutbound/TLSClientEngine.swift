import CSystem
import Glibc

/// TLS 1.2+ client over memory BIOs: the loop moves ciphertext, the engine never touches a socket.
///
/// The event loop owns the socket. It hands every ciphertext chunk it reads to `receive` and sends
/// whatever the engine appends to `output` (after `start`, `receive`, `send` and `close`), in
/// order; the engine never blocks, never spawns threads and never sees a file descriptor.
/// Certificates are verified with `TLSClientContexts` (a cached `SSL_CTX`: TLS ≥ 1.2,
/// `SSL_VERIFY_PEER`, the system store or `caFile`; the name/IP check and SNI of `expectPeer`).
///
/// One engine belongs to one thread at a time (OpenSSL's error queue is per thread and cleared
/// before each operation). After an error is thrown the engine is dead: every later `start`,
/// `receive` and `send` throws the same error, and `close` does nothing. On a throw, `output` may
/// still have received a final alert, which the caller may send before closing the socket.
/// Renegotiation is refused (TLS 1.2 servers asking for it get a `no_renegotiation` warning).
/// Errors carry OpenSSL's reason texts, never application data.
final class TLSClientEngine {
    /// The name (or IP literal) the certificate must match; also the SNI for names.
    let serverName: String

    private let ssl: OpaquePointer
    private let writeBIO: OpaquePointer
    private let readBIO: OpaquePointer
    /// SSL_read lands here before it is appended to the caller's plaintext (one record at most).
    private let scratch: UnsafeMutableRawBufferPointer
    /// Plaintext accepted by `send` that OpenSSL has not taken yet: everything given before the
    /// handshake completed, or what is left after an `SSL_write` that must be retried.
    private var queued: [UInt8] = []
    private var queuedOffset = 0
    /// The length of an `SSL_write` of `queued[queuedOffset...]` that asked to be retried (0: none);
    /// OpenSSL wants the retry with the same bytes and length.
    private var retryLength = 0
    private var failure: OutboundError?
    private var closeSent = false

    /// True once the handshake has completed and the peer certificate has been verified.
    private(set) var isEstablished = false
    /// True after the peer's close_notify: no more plaintext will come (answer with `close`).
    private(set) var peerClosed = false

    private static let scratchBytes = 16 * 1024  // a TLS record carries at most 16 KiB of plaintext
    private static let maxWrite = 1 << 30  // SSL_write and BIO_write take an Int32 length

    /// `serverName`: SNI and the name (or IP literal) the certificate must match. `caFile`: PEM
    /// bundle to trust instead of the system store (nil = system store, which honours SSL_CERT_FILE).
    /// Throws `.tls` when the CA file or the system store cannot be loaded or OpenSSL cannot set up.
    package init(serverName: String, caFile: String? = nil) throws(OutboundError) {
        let context = try TLSClientContexts.context(caFile: caFile)
        ERR_clear_error()
        guard let ssl = SSL_new(context.pointer) else {
            throw .tls("SSL_new: \(TLSClientContexts.errorQueue())")
        }
        guard let readBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .tls("BIO_new: \(TLSClientContexts.errorQueue())")
        }
        guard let writeBIO = BIO_new(BIO_s_mem()) else {
            BIO_free(readBIO)
            SSL_free(ssl)
            throw .tls("BIO_new: \(TLSClientContexts.errorQueue())")
        }
        SSL_set_bio(ssl, readBIO, writeBIO)  // the SSL owns both BIOs from here on
        do throws(OutboundError) {
            try TLSClientContexts.expectPeer(ssl, host: serverName)
        } catch {
            SSL_free(ssl)
            throw error
        }
        // A retried SSL_write may come from `queued` after the caller's buffer was copied there.
        _ = cs_ssl_set_mode(ssl, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        _ = SSL_set_options(ssl, cs_ssl_op_no_renegotiation())
        SSL_set_connect_state(ssl)
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.serverName = serverName
        scratch = .allocate(byteCount: Self.scratchBytes, alignment: 16)
    }

    deinit {
        SSL_free(ssl)  // frees both BIOs
        scratch.deallocate()
    }

    /// The negotiated protocol (`TLSv1.3`, `TLSv1.2`), meaningful once established.
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// Starts the handshake: appends the ClientHello to `output`. (Calling `receive` first starts
    /// it too; calling `start` again does nothing new.)
    package func start(output: inout [UInt8]) throws(OutboundError) {
        if let failure { throw failure }
        defer { drain(into: &output) }
        guard !isEstablished else { return }
        do throws(OutboundError) {
            _ = try handshake()
        } catch {
            failure = error
            throw error
        }
    }

    /// Feeds ciphertext read from the socket; appends decrypted application data to `plaintext`
    /// and anything that must be sent (handshake records, alerts, key updates, queued application
    /// data once the handshake completes) to `output`. Any split of the stream works, down to one
    /// byte per call; one call with several records yields all of their plaintext. Throws `.tls`
    /// on verification failure (`certificate verify failed: <reason>`), protocol error or peer
    /// alert. After the peer's close_notify (`peerClosed`) further ciphertext is ignored.
    package func receive(
        _ ciphertext: UnsafeRawBufferPointer, plaintext: inout [UInt8],
        output: inout [UInt8]
    ) throws(OutboundError) {
        if let failure { throw failure }
        guard !peerClosed else { return }
        defer { drain(into: &output) }
        do throws(OutboundError) {
            var offset = 0
            while offset < ciphertext.count {
                let count = min(ciphertext.count - offset, Self.maxWrite)
                let written = BIO_write(readBIO, ciphertext.baseAddress! + offset, Int32(count))
                guard written > 0 else { throw OutboundError.tls("BIO_write: out of memory") }
                offset += Int(written)
            }
            if !isEstablished {
                guard try handshake() else { return }
            }
            try flushQueued()
            try readAll(into: &plaintext)
        } catch {
            failure = error
            throw error
        }
    }

    /// Encrypts application data into `output`; data given before the handshake completes is kept
    /// and encrypted as soon as it does (in order). Throws `.tls` after `close` or on an error.
    package func send(_ plaintext: UnsafeRawBufferPointer, output: inout [UInt8]) throws(OutboundError) {
        if let failure { throw failure }
        guard !closeSent else { throw .tls("send after close") }
        guard plaintext.count > 0 else { return }
        guard isEstablished, queuedOffset == queued.count else {
            queued.append(contentsOf: plaintext)
            guard isEstablished else { return }
            defer { drain(into: &output) }
            do throws(OutboundError) { try flushQueued() } catch {
                failure = error
                throw error
            }
            return
        }
        defer { drain(into: &output) }
        var offset = 0
        while offset < plaintext.count {
            let length = min(plaintext.count - offset, Self.maxWrite)
            ERR_clear_error()
            let rc = SSL_write(ssl, plaintext.baseAddress! + offset, Int32(length))
            if rc > 0 {
                offset += Int(rc)
                continue
            }
            let code = SSL_get_error(ssl, rc)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
                // OpenSSL must read first (not expected with renegotiation refused): keep the rest
                // and retry after the next `receive`.
                queued = Array(UnsafeRawBufferPointer(rebasing: plaintext[offset...]))
                queuedOffset = 0
                retryLength = length
                return
            }
            let error = fatal(code, during: "write")
            failure = error
            throw error
        }
    }

    /// Appends a close_notify alert to `output`. Later `send`s throw; `receive` still works (to
    /// see the peer's close_notify). Before the handshake completes, or after an error, there is
    /// nothing to close: `output` is left alone (and data still queued is dropped).
    package func close(output: inout [UInt8]) {
        guard failure == nil, !closeSent else { return }
        closeSent = true
        queued = []
        queuedOffset = 0
        retryLength = 0
        guard isEstablished else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
        drain(into: &output)
    }

    // MARK: - Steps

    /// One handshake step; true once complete and verified.
    private func handshake() throws(OutboundError) -> Bool {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        guard rc == 1 else {
            let code = SSL_get_error(ssl, rc)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return false }
            throw fatal(code, during: "handshake")
        }
        // SSL_VERIFY_PEER already refused a bad chain; this only guards against a context that did not.
        if let reason = TLSClientContexts.verifyFailure(ssl) { throw .tls(reason) }
        guard SSL_get0_peer_certificate(ssl) != nil else { throw .tls("the server sent no certificate") }
        isEstablished = true
        return true
    }

    /// Hands OpenSSL what `send` queued (after the handshake, or for a retry).
    private func flushQueued() throws(OutboundError) {
        while queuedOffset < queued.count {
            let length = retryLength > 0 ? retryLength : min(queued.count - queuedOffset, Self.maxWrite)
            ERR_clear_error()
            let rc = queued.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + queuedOffset, Int32(length)) }
            if rc > 0 {
                queuedOffset += Int(rc)
                retryLength = 0
                continue
            }
            let code = SSL_get_error(ssl, rc)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
                retryLength = length
                return
            }
            throw fatal(code, during: "write")
        }
        queued.removeAll(keepingCapacity: queued.capacity <= 64 * 1024)
        queuedOffset = 0
    }

    /// SSL_read until OpenSSL needs more ciphertext (or the peer closed): every complete record in
    /// the read BIO is decrypted; post-handshake messages (session tickets, key updates) are
    /// consumed on the way, and what they make OpenSSL answer goes to the write BIO.
    private func readAll(into plaintext: inout [UInt8]) throws(OutboundError) {
        while !peerClosed {
            ERR_clear_error()
            let rc = SSL_read(ssl, scratch.baseAddress, Int32(scratch.count))
            if rc > 0 {
                plaintext.append(contentsOf: UnsafeRawBufferPointer(start: scratch.baseAddress, count: Int(rc)))
                continue
            }
            let code = SSL_get_error(ssl, rc)
            switch code {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return
            case SSL_ERROR_ZERO_RETURN: peerClosed = true
            default: throw fatal(code, during: "read")
            }
        }
    }

    /// Moves everything OpenSSL wrote to the write BIO onto `output`.
    private func drain(into output: inout [UInt8]) {
        while true {
            let pending = Int(BIO_ctrl_pending(writeBIO))
            guard pending > 0 else { return }
            let start = output.count
            output.append(contentsOf: repeatElement(0, count: pending))
            let n = output.withUnsafeMutableBytes { BIO_read(writeBIO, $0.baseAddress! + start, Int32(min(pending, Self.maxWrite))) }
            output.removeLast(pending - max(0, Int(n)))
            if n <= 0 { return }
        }
    }

    /// The error for a failed operation: the certificate verification result when that is what
    /// failed, else OpenSSL's queued reasons (which name a peer's alert).
    private func fatal(_ code: Int32, during operation: String) -> OutboundError {
        if let reason = TLSClientContexts.verifyFailure(ssl) {
            ERR_clear_error()
            return .tls(reason)
        }
        let queue = TLSClientContexts.errorQueue()
        if !queue.isEmpty { return .tls("\(operation): \(queue)") }
        if code == SSL_ERROR_SYSCALL { return .tls("\(operation): unexpected end of the TLS stream") }
        return .tls("\(operation): error \(code)")
    }
}
