import CSystem
import Glibc
import Synchronization
import WSCore

/// One response: status, headers, body (Content-Length or chunked, or until close; body capped at 1 MiB → error).
struct OutboundResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
}

/// Why an outbound exchange failed. `connect` covers resolving, connecting and a connection that
/// fails later (reset); `tls` the handshake and certificate checks; `protocolError` a request that
/// cannot be sent or a response that breaks HTTP/1.1 (or exceeds the body cap). Messages never
/// carry request headers or bodies.
enum OutboundError: Error, Sendable, Equatable, CustomStringConvertible {
    case timeout
    case connect(String)
    case tls(String)
    case protocolError(String)

    var description: String {
        switch self {
        case .timeout: return "timed out"
        case .connect(let message): return "connection failed: \(message)"
        case .tls(let message): return "TLS failed: \(message)"
        case .protocolError(let message): return "HTTP protocol error: \(message)"
        }
    }
}

/// Blocking HTTP/1.1 exchange: resolve (getaddrinfo), non-blocking connect with poll() timeout, TLS through OpenSSL (certificate verification ON with the system store, or `caFile` when given; host-name check with SSL_set1_host; SNI), write request, read response; one overall deadline (default 10 s) across all steps; Connection: close.
///
/// Runs on the calling thread and blocks it: call it from a `WorkerPool` thread, never from an
/// event loop. The socket stays non-blocking and every wait is a poll() bounded by what is left of
/// the deadline; a DNS lookup runs on a helper thread so a hung resolver cannot outlive it either.
/// TLS writes go through OpenSSL's socket BIO (write(2)): the process must ignore SIGPIPE, as
/// presenced's main does.
enum OutboundHTTP {
    /// The largest response body accepted.
    static let maxBodyBytes = 1 << 20
    /// The largest response head accepted.
    static let maxHeadBytes = 64 * 1024

    /// Sends `method url.path+path` with `headers` and `body` and reads the whole response.
    ///
    /// `path` is appended to `url.path` and must start with `/` (empty means `url.path` or `/`);
    /// it may carry a query. `Host`, `Connection: close` and (when there is a body, or for
    /// POST/PUT/PATCH) `Content-Length` are set here; such fields in `headers` are ignored, as are
    /// fields whose name is not a token; CR, LF and NUL in values become spaces.
    /// `caFile` (PEM) replaces the system trust store for https.
    static func perform(method: String, url: OutboundURL, path: String, headers: HTTPHeaders, body: [UInt8],
                        timeoutMillis: Int64 = 10_000, caFile: String? = nil) -> Result<OutboundResponse, OutboundError> {
        let deadline = Deadline(millis: timeoutMillis)
        do throws(OutboundError) {
            let request = try encodeRequest(method: method, url: url, path: path, headers: headers, body: body)
            let tls = url.isTLS ? try TLSContexts.context(caFile: caFile) : nil
            let addresses = try Resolver.resolve(host: url.host, port: url.port, deadline: deadline)
            let fd = try connect(addresses, url: url, deadline: deadline)
            let connection = Connection(fd: fd)
            defer { connection.close() }
            if let tls {
                try connection.startTLS(context: tls, host: url.host, deadline: deadline)
            }
            try connection.writeAll(request, deadline: deadline)
            return .success(try readResponse(connection, isHead: method == "HEAD", deadline: deadline))
        } catch {
            return .failure(error)
        }
    }

    // MARK: - Request

    /// The request bytes: request line, fields, `Connection: close` (unless `keepAlive`: HTTP/1.1
    /// connections persist by default), blank line, body.
    static func encodeRequest(method: String, url: OutboundURL, path: String, headers: HTTPHeaders,
                              body: [UInt8], keepAlive: Bool = false) throws(OutboundError) -> [UInt8] {
        guard !method.isEmpty, method.utf8.allSatisfy(HTTPHeaders.isTokenByte) else {
            throw .protocolError("invalid request method")
        }
        guard path.isEmpty || path.hasPrefix("/") else { throw .protocolError("request path must start with /") }
        var target = url.path + path
        if target.isEmpty { target = "/" }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .protocolError("invalid character in request target")
        }
        var out: [UInt8] = []
        out.reserveCapacity(512 + body.count)
        func line(_ text: String) {
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: [13, 10])
        }
        line("\(method) \(target) HTTP/1.1")
        line("Host: \(url.hostHeader)")
        let reserved = ["host", "connection", "content-length", "transfer-encoding"]
        for field in headers {
            guard HTTPHeaders.isValidName(field.name), !reserved.contains(field.name.lowercased()) else { continue }
            out.append(contentsOf: field.name.utf8)
            out.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
            for byte in field.value.utf8 {
                out.append(byte == 0 || byte == 10 || byte == 13 ? UInt8(ascii: " ") : byte)
            }
            out.append(contentsOf: [13, 10])
        }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) {
            line("Content-Length: \(body.count)")
        }
        if !keepAlive { line("Connection: close") }
        out.append(contentsOf: [13, 10])
        out.append(contentsOf: body)
        return out
    }

    // MARK: - Connect

    /// A non-blocking TCP connection to the first address that answers.
    private static func connect(_ addresses: [SocketAddress], url: OutboundURL,
                                deadline: Deadline) throws(OutboundError) -> Int32 {
        var lastError = "no address"
        for address in addresses {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastError = SystemError(call: "socket", errno: errno).description
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = address.bytes.withUnsafeBytes { raw in
                Glibc.connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            var failure: Int32 = rc == 0 ? 0 : errno
            if failure == EINPROGRESS || failure == EINTR {
                do throws(OutboundError) {
                    try waitFor(fd: fd, events: Int16(POLLOUT), deadline: deadline)
                } catch {
                    Glibc.close(fd)
                    throw error
                }
                var soError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                failure = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length) == 0 ? soError : errno
            }
            if failure == 0 { return fd }
            Glibc.close(fd)
            lastError = "\(url.hostHeader): \(String(cString: strerror(failure)))"
            if deadline.expired { throw .timeout }
        }
        throw .connect(lastError)
    }

    /// Waits until `fd` is ready for `events` (or has an error to report); `.timeout` past the deadline.
    static func waitFor(fd: Int32, events: Int16, deadline: Deadline) throws(OutboundError) {
        while true {
            let wait = deadline.remainingMillis
            guard wait > 0 else { throw .timeout }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&entry, 1, wait)
            if rc > 0 { return }
            if rc == 0 { throw .timeout }
            if errno != EINTR { throw .connect(SystemError(call: "poll", errno: errno).description) }
        }
    }

    // MARK: - Response

    /// Reads the head (skipping interim 1xx answers), then the body as its framing says.
    private static func readResponse(_ connection: Connection, isHead: Bool,
                                     deadline: Deadline) throws(OutboundError) -> OutboundResponse {
        var parser = HTTPResponseParser(maxHeadSize: maxHeadBytes)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var pending: ArraySlice<UInt8> = []
        var head: HTTPResponseHead
        while true {
            if pending.isEmpty {
                pending = []  // let go of `buffer` so reading into it does not copy it
                let n = try connection.read(into: &buffer, deadline: deadline)
                guard n > 0 else { throw .protocolError("connection closed before the response head was complete") }
                pending = buffer[0..<n]
            }
            let result = pending.withUnsafeBytes { parser.feed($0) }
            switch result {
            case .needMoreData:
                pending = []
                continue
            case .failure(let error):
                throw .protocolError("malformed response head: \(error)")
            case .complete(let parsed, let consumed):
                pending = pending.dropFirst(consumed)
                if parsed.status >= 100 && parsed.status < 200 && parsed.status != 101 {
                    parser.reset()
                    continue
                }
                head = parsed
            }
            break
        }

        // The body as its framing says (the same decoder as the loop's client).
        var decoder = HTTPBodyDecoder(framing: try HTTPBodyDecoder.framing(status: head.status, headers: head.headers,
                                                                           isHeadRequest: isHead, limit: maxBodyBytes),
                                      limit: maxBodyBytes)
        while !decoder.isComplete {
            if pending.isEmpty {
                let n = try connection.read(into: &buffer, deadline: deadline)
                if n == 0 {
                    try decoder.finish()
                    break
                }
                pending = buffer[0..<n]
            }
            let step: Result<Int, OutboundError> = pending.withUnsafeBytes { raw in
                Result { () throws(OutboundError) -> Int in try decoder.feed(raw) }
            }
            pending = pending.dropFirst(try step.get())
        }
        return OutboundResponse(status: head.status, headers: head.headers, body: decoder.body)
    }
}

// MARK: - Deadline

extension OutboundHTTP {
    /// A point on the monotonic clock that every step of one exchange must finish before.
    struct Deadline: Sendable {
        private let end: Int64

        init(millis: Int64) {
            end = Deadline.nowNanos() &+ max(0, min(millis, 86_400_000)) * 1_000_000
        }

        static func nowNanos() -> Int64 {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        }

        /// Milliseconds left, rounded up (0 once passed), as poll() takes them.
        var remainingMillis: Int32 {
            let left = end - Deadline.nowNanos()
            return left <= 0 ? 0 : Int32((left + 999_999) / 1_000_000)
        }

        var expired: Bool { Deadline.nowNanos() >= end }
    }
}

// MARK: - Resolution

extension OutboundHTTP {
    /// One socket address from getaddrinfo, as raw bytes (family first).
    struct SocketAddress: Sendable {
        var family: Int32
        var bytes: [UInt8]
    }

    /// getaddrinfo under the deadline: numeric hosts at once, names on a helper thread whose
    /// answer is awaited with poll() on an eventfd, so a resolver that hangs is abandoned (the
    /// thread ends on its own when glibc gives up).
    enum Resolver {
        /// The state shared with a helper thread; the eventfd closes when both sides are done.
        private final class Lookup: Sendable {
            let eventFD: Int32
            let result = Lock<Result<[SocketAddress], OutboundError>?>(nil)
            init(eventFD: Int32) { self.eventFD = eventFD }
            deinit { Glibc.close(eventFD) }
        }

        static func resolve(host: String, port: UInt16, deadline: Deadline) throws(OutboundError) -> [SocketAddress] {
            if isIPLiteral(host) { return try getaddrinfo(host: host, port: port, numeric: true).get() }
            let efd = eventfd(0, Int32(EFD_CLOEXEC))
            guard efd >= 0 else { return try getaddrinfo(host: host, port: port, numeric: false).get() }
            let lookup = Lookup(eventFD: efd)
            let job: @Sendable () -> Void = {
                let answer = getaddrinfo(host: host, port: port, numeric: false)
                lookup.result.withLock { $0 = answer }
                var one: UInt64 = 1
                _ = write(lookup.eventFD, &one, 8)
            }
            guard let thread = try? LoopThread.spawn(name: "resolve", job) else {
                return try getaddrinfo(host: host, port: port, numeric: false).get()
            }
            pthread_detach(thread)
            try waitFor(fd: efd, events: Int16(POLLIN), deadline: deadline)
            guard let answer = lookup.result.withLock({ $0 }) else { throw .timeout }
            return try answer.get()
        }

        static func isIPLiteral(_ host: String) -> Bool {
            var v4 = in_addr(), v6 = in6_addr()
            return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
        }

        private static func getaddrinfo(host: String, port: UInt16, numeric: Bool) -> Result<[SocketAddress], OutboundError> {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0)
            var list: UnsafeMutablePointer<addrinfo>?
            let rc = Glibc.getaddrinfo(host, String(port), &hints, &list)
            guard rc == 0 else {
                let reason = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
                return .failure(.connect("cannot resolve \(host): \(reason)"))
            }
            defer { freeaddrinfo(list) }
            var out: [SocketAddress] = []
            var entry = list
            while let current = entry {
                let info = current.pointee
                if let address = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 {
                    let bytes = [UInt8](UnsafeRawBufferPointer(start: address, count: Int(info.ai_addrlen)))
                    out.append(SocketAddress(family: info.ai_family, bytes: bytes))
                }
                entry = info.ai_next
            }
            return out.isEmpty ? .failure(.connect("no address for \(host)")) : .success(out)
        }
    }
}

// MARK: - Connection

extension OutboundHTTP {
    /// One non-blocking socket, plain or wrapped in OpenSSL, read and written under a deadline.
    final class Connection {
        let fd: Int32
        private var ssl: OpaquePointer?

        init(fd: Int32) { self.fd = fd }

        func close() {
            if let ssl { SSL_free(ssl) }
            ssl = nil
            Glibc.close(fd)
        }

        /// The TLS client handshake: peer verification by `context`, name or IP check against
        /// `host`, SNI for names.
        func startTLS(context: TLSContexts.Context, host: String, deadline: Deadline) throws(OutboundError) {
            ERR_clear_error()
            guard let ssl = SSL_new(context.pointer) else { throw .tls("SSL_new: \(TLSContexts.errorQueue())") }
            self.ssl = ssl
            guard SSL_set_fd(ssl, fd) == 1 else { throw .tls("SSL_set_fd: \(TLSContexts.errorQueue())") }
            try TLSContexts.expectPeer(ssl, host: host)
            while true {
                ERR_clear_error()
                let rc = SSL_connect(ssl)
                if rc == 1 { return }
                let code = SSL_get_error(ssl, rc)
                let saved = errno
                switch code {
                case SSL_ERROR_WANT_READ: try waitFor(fd: fd, events: Int16(POLLIN), deadline: deadline)
                case SSL_ERROR_WANT_WRITE: try waitFor(fd: fd, events: Int16(POLLOUT), deadline: deadline)
                default:
                    if let failure = TLSContexts.verifyFailure(ssl) { throw .tls(failure) }
                    let queue = TLSContexts.errorQueue()
                    if code == SSL_ERROR_SYSCALL && queue.isEmpty {
                        throw .tls(saved == 0 ? "connection closed during the handshake" : String(cString: strerror(saved)))
                    }
                    throw .tls("handshake: \(queue.isEmpty ? "error \(code)" : queue)")
                }
            }
        }

        /// Writes every byte of `bytes`.
        func writeAll(_ bytes: [UInt8], deadline: Deadline) throws(OutboundError) {
            var offset = 0
            while offset < bytes.count {
                let result: (Int, Int32, Int32) = bytes.withUnsafeBytes { raw in
                    let start = raw.baseAddress! + offset, count = raw.count - offset
                    if let ssl {
                        ERR_clear_error()
                        let rc = SSL_write(ssl, start, Int32(min(count, Int(Int32.max))))
                        return (Int(rc), rc > 0 ? 0 : SSL_get_error(ssl, rc), errno)
                    }
                    let rc = send(fd, start, count, Int32(MSG_NOSIGNAL))
                    return (rc, 0, errno)
                }
                let (n, sslCode, savedErrno) = result
                if n > 0 { offset += n; continue }
                if ssl != nil {
                    switch sslCode {
                    case SSL_ERROR_WANT_READ: try waitFor(fd: fd, events: Int16(POLLIN), deadline: deadline)
                    case SSL_ERROR_WANT_WRITE: try waitFor(fd: fd, events: Int16(POLLOUT), deadline: deadline)
                    case SSL_ERROR_SYSCALL where TLSContexts.peekError() == 0:
                        throw .connect("write: \(String(cString: strerror(savedErrno == 0 ? EPIPE : savedErrno)))")
                    default: throw .tls("write: \(TLSContexts.errorQueue())")
                    }
                } else if savedErrno == EAGAIN || savedErrno == EWOULDBLOCK {
                    try waitFor(fd: fd, events: Int16(POLLOUT), deadline: deadline)
                } else if savedErrno != EINTR {
                    throw .connect("write: \(String(cString: strerror(savedErrno)))")
                }
            }
        }

        /// Reads what is available into `buffer` (waiting for something); 0 at the end of the stream.
        func read(into buffer: inout [UInt8], deadline: Deadline) throws(OutboundError) -> Int {
            while true {
                let capacity = buffer.count
                let result: (Int, Int32, Int32) = buffer.withUnsafeMutableBytes { raw in
                    if let ssl {
                        ERR_clear_error()
                        let rc = SSL_read(ssl, raw.baseAddress, Int32(capacity))
                        return (Int(rc), rc > 0 ? 0 : SSL_get_error(ssl, rc), errno)
                    }
                    let rc = recv(fd, raw.baseAddress, capacity, 0)
                    return (rc, 0, errno)
                }
                let (n, sslCode, savedErrno) = result
                if ssl != nil {
                    if n > 0 { return n }
                    switch sslCode {
                    case SSL_ERROR_ZERO_RETURN: return 0
                    case SSL_ERROR_WANT_READ: try waitFor(fd: fd, events: Int16(POLLIN), deadline: deadline)
                    case SSL_ERROR_WANT_WRITE: try waitFor(fd: fd, events: Int16(POLLOUT), deadline: deadline)
                    case SSL_ERROR_SYSCALL where TLSContexts.peekError() == 0:
                        if savedErrno == 0 { return 0 }
                        throw .connect("read: \(String(cString: strerror(savedErrno)))")
                    default: throw .tls("read: \(TLSContexts.errorQueue())")
                    }
                } else {
                    if n >= 0 { return n }
                    if savedErrno == EAGAIN || savedErrno == EWOULDBLOCK {
                        try waitFor(fd: fd, events: Int16(POLLIN), deadline: deadline)
                    } else if savedErrno != EINTR {
                        throw .connect("read: \(String(cString: strerror(savedErrno)))")
                    }
                }
            }
        }
    }
}

// MARK: - TLS contexts

extension OutboundHTTP {
    /// Client SSL_CTXs (TLS ≥ 1.2, peer verification on), one per trust source (the system store
    /// or a CA file), rebuilt every few minutes so a renewed CA file or store is picked up.
    enum TLSContexts {
        /// An owned SSL_CTX; OpenSSL contexts are safe to share between threads once set up.
        final class Context: @unchecked Sendable {
            let pointer: OpaquePointer
            let created: Int64
            init(_ pointer: OpaquePointer) {
                self.pointer = pointer
                created = Deadline.nowNanos()
            }
            deinit { SSL_CTX_free(pointer) }
        }

        private static let cache = Lock<[String: Context]>([:])
        private static let maxAgeNanos: Int64 = 300 * 1_000_000_000

        static func context(caFile: String?) throws(OutboundError) -> Context {
            let key = caFile ?? ""
            let now = Deadline.nowNanos()
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
            // SSL_CTX_set_min_proto_version is a macro: SSL_CTRL_SET_MIN_PROTO_VERSION (123), TLS1_2_VERSION.
            _ = SSL_CTX_ctrl(ctx, 123, Int(TLS1_2_VERSION), nil)
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
        /// wildcards) and is sent as SNI. Shared by `Connection` and `TLSClientEngine`.
        static func expectPeer(_ ssl: OpaquePointer, host: String) throws(OutboundError) {
            if Resolver.isIPLiteral(host) {
                guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else {
                    throw .tls("cannot check certificates against \(host)")
                }
            } else {
                SSL_set_hostflags(ssl, 0x4)  // X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS (x509v3.h is not in the shim)
                guard SSL_set1_host(ssl, host) == 1 else { throw .tls("cannot check certificates against \(host)") }
                // SSL_set_tlsext_host_name is a macro: SSL_CTRL_SET_TLSEXT_HOSTNAME (55), TLSEXT_NAMETYPE_host_name (0).
                let named = host.withCString { SSL_ctrl(ssl, 55, 0, UnsafeMutableRawPointer(mutating: $0)) }
                guard named == 1 else { throw .tls("cannot set the server name (SNI)") }
            }
        }

        /// `certificate verify failed: <reason>` when the peer certificate of `ssl` failed
        /// verification (untrusted chain, expired, wrong name or IP…), nil otherwise.
        static func verifyFailure(_ ssl: OpaquePointer) -> String? {
            let verify = SSL_get_verify_result(ssl)
            guard verify != Int(X509_V_OK) else { return nil }
            return "certificate verify failed: \(String(cString: X509_verify_cert_error_string(verify)))"
        }

        /// The earliest queued OpenSSL error code of this thread, without removing it (0: none).
        static func peekError() -> UInt { UInt(ERR_peek_error()) }

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
}
