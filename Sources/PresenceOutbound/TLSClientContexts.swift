import CSystem
import Glibc
import PresenceLoop

/// Client SSL_CTXs for `TLSClientEngine` (TLS ≥ 1.2, peer verification on), one per trust source
/// (the system store or a CA file), rebuilt every few minutes so a renewed CA file or store is
/// picked up; and the per-connection peer checks and OpenSSL error texts the engine uses.
enum TLSClientContexts {
    /// An owned SSL_CTX; OpenSSL contexts are safe to share between threads once set up.
    final class Context: @unchecked Sendable {
        let pointer: OpaquePointer
        let created: Int64
        init(_ pointer: OpaquePointer) {
            self.pointer = pointer
            created = EventLoop.monotonicNanos()
        }
        deinit { SSL_CTX_free(pointer) }
    }

    private static let cache = Lock<[String: Context]>([:])
    private static let maxAgeNanos: Int64 = 300 * 1_000_000_000

    /// The context trusting `caFile` (PEM), or the system store when nil: cached, made anew
    /// once it is five minutes old. `.tls` when the trust source cannot be loaded.
    package static func context(caFile: String?) throws(OutboundError) -> Context {
        let key = caFile ?? ""
        let now = EventLoop.monotonicNanos()
        if let cached = cache.withLock({ $0[key] }), now - cached.created < maxAgeNanos { return cached }
        let fresh = try make(caFile: caFile)
        cache.withLock { $0[key] = fresh }
        return fresh
    }

    private static func make(caFile: String?) throws(OutboundError) -> Context {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw .tls("SSL_CTX_new: \(errorQueue())") }
        let context = Context(ctx)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        _ = cs_ssl_ctx_set_min_proto_version(ctx, TLS1_2_VERSION)
        // SSL_OP_IGNORE_UNEXPECTED_EOF (bit 7): peers that close without close_notify end a
        // read-until-close body instead of failing it (lengths and chunks still catch truncation).
        _ = SSL_CTX_set_options(ctx, 1 << 7)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw .tls("cannot load CA file \(caFile): \(errorQueue())")
            }
        } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
            throw .tls("cannot load the system trust store: \(errorQueue())")
        }
        return context
    }

    /// Sets up the peer checks of a client `ssl` for `host`: an IP literal must match an IP
    /// subjectAltName (no SNI is sent for it); a name must match a DNS name (no partial
    /// wildcards) and is sent as SNI.
    static func expectPeer(_ ssl: OpaquePointer, host: String) throws(OutboundError) {
        if HostResolver.isIPLiteral(host) {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else {
                throw .tls("cannot check certificates against \(host)")
            }
        } else {
            SSL_set_hostflags(ssl, 0x4)  // X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS (x509v3.h is not in the shim)
            guard SSL_set1_host(ssl, host) == 1 else { throw .tls("cannot check certificates against \(host)") }
            guard cs_ssl_set_tlsext_host_name(ssl, host) == 1 else { throw .tls("cannot set the server name (SNI)") }
        }
    }

    /// `certificate verify failed: <reason>` when the peer certificate of `ssl` failed
    /// verification (untrusted chain, expired, wrong name or IP…), nil otherwise.
    static func verifyFailure(_ ssl: OpaquePointer) -> String? {
        let verify = SSL_get_verify_result(ssl)
        guard verify != Int(X509_V_OK) else { return nil }
        return "certificate verify failed: \(String(cString: X509_verify_cert_error_string(verify)))"
    }

    /// This thread's queued OpenSSL errors as one line (emptying the queue).
    static func errorQueue() -> String {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            parts.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return parts.joined(separator: "; ")
    }
}
