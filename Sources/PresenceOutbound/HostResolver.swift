import CSystem
import Glibc
import PresenceLoop

/// Host names to socket addresses with getaddrinfo, bounded in time: numeric hosts at once,
/// names on a helper thread whose answer is awaited with poll() on an eventfd, so a resolver that
/// hangs is abandoned (the thread ends on its own when glibc gives up). Blocks the calling thread:
/// `LoopStream` calls it on `LoopStream.resolverPool`, never on an event loop (numeric hosts
/// excepted, which never wait).
package enum HostResolver {
    /// One socket address from getaddrinfo, as raw bytes (family first).
    package struct SocketAddress: Sendable {
        var family: Int32
        var bytes: [UInt8]
    }

    /// The state shared with a helper thread; the eventfd closes when both sides are done.
    private final class Lookup: Sendable {
        let eventFD: Int32
        let result = Lock<Result<[SocketAddress], OutboundError>?>(nil)
        init(eventFD: Int32) { self.eventFD = eventFD }
        deinit { Glibc.close(eventFD) }
    }

    /// Every IPv4 and IPv6 address of `host` (a name, or an IP literal without brackets) for
    /// TCP to `port`; `.connect` when the name does not resolve, `.timeout` when no answer came
    /// within `timeoutMillis`.
    package static func resolve(host: String, port: UInt16, timeoutMillis: Int64) throws(OutboundError) -> [SocketAddress] {
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
        let end = EventLoop.monotonicMillis() + max(0, timeoutMillis)
        guard let thread = try? LoopThread.spawn(name: "resolve", job) else {
            return try getaddrinfo(host: host, port: port, numeric: false).get()
        }
        pthread_detach(thread)
        try waitReadable(efd, until: end)
        guard let answer = lookup.result.withLock({ $0 }) else { throw .timeout }
        return try answer.get()
    }

    /// Whether `host` is an IPv4 or IPv6 address literal (no brackets).
    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Waits until `fd` is readable; `.timeout` once `end` (monotonic milliseconds) has passed.
    private static func waitReadable(_ fd: Int32, until end: Int64) throws(OutboundError) {
        while true {
            let wait = end - EventLoop.monotonicMillis()
            guard wait > 0 else { throw .timeout }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&entry, 1, Int32(min(wait, Int64(Int32.max))))
            if rc > 0 { return }
            if rc == 0 { throw .timeout }
            if errno != EINTR { throw .connect(SystemError(call: "poll", errno: errno).description) }
        }
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
