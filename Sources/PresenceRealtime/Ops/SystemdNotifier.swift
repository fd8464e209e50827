import CSystem
import Glibc

/// sd_notify(3) without libsystemd: state lines (`READY=1`, `WATCHDOG=1`, `STOPPING=1`,
/// `RELOADING=1`, `STATUS=…`) as datagrams to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a
/// path, or `@name` in the abstract namespace). Without `NOTIFY_SOCKET` it does nothing.
final class SystemdNotifier: Sendable {
    private let fd: Int32
    private let address: sockaddr_un
    private let length: socklen_t

    /// Nil when `environment` has no usable `NOTIFY_SOCKET`.
    init?(environment: [String: String]) {
        guard let name = environment["NOTIFY_SOCKET"], !name.isEmpty else { return nil }
        var path = Array(name.utf8)
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }  // abstract namespace
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.address = address
        // An abstract name's length counts exactly its bytes; a path's includes the NUL.
        length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path[0] == 0 ? 0 : 1))
    }

    deinit { close(fd) }

    /// Sends one datagram of newline-separated `KEY=VALUE` lines; false when it could not be sent.
    @discardableResult
    func notify(_ lines: String...) -> Bool {
        let message = Array(lines.joined(separator: "\n").utf8)
        var target = address
        let sent = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { to in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), to, length) }
            }
        }
        return sent == message.count
    }

    /// `MONOTONIC_USEC=` for `RELOADING=1` (CLOCK_MONOTONIC in microseconds, as systemd wants).
    static func monotonicMicros() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    /// The watchdog interval systemd asks for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
    /// this process), in milliseconds; nil when there is no watchdog.
    static func watchdogMillis(environment: [String: String]) -> Int64? {
        if let pid = environment["WATCHDOG_PID"], Int32(pid) != getpid() { return nil }
        guard let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 else { return nil }
        return max(1, usec / 1000)
    }
}
