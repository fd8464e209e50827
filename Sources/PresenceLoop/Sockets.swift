import CSystem
import Glibc

/// A failed system call, with its name and errno, as one readable line.
package struct SystemError: Error, CustomStringConvertible {
    package var call: String
    package var errno: Int32
    package var description: String { "\(call): \(String(cString: strerror(errno)))" }

    package init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
}

/// Socket set-up helpers shared by both I/O backends and by tests.
package enum Sockets {
    /// A non-blocking TCP listener on `address:port` with SO_REUSEADDR and SO_REUSEPORT, so that
    /// every loop thread can own one listener on the same port and the kernel spreads accepts.
    package static func listen(address: String, port: UInt16, backlog: Int32 = 4096) throws -> Int32 {
        var storage = sockaddr_storage()
        let length = try fillAddress(address, port: port, into: &storage)
        let family = Int32(storage.ss_family)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        // Accepted sockets inherit it on Linux: no setsockopt per connection.
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw SystemError(call: "bind \(address):\(port)", errno: e)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw SystemError(call: "listen", errno: e)
        }
        return fd
    }

    /// The local port a socket is bound to (for listeners started on port 0).
    static func localPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        if storage.ss_family == sa_family_t(AF_INET6) {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the limit now in force.
    @discardableResult
    package static func raiseFileLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return UInt64(limit.rlim_cur)
    }

    /// Parses an IPv4 or IPv6 literal into a socket address; returns its length.
    package static func fillAddress(_ address: String, port: UInt16, into storage: inout sockaddr_storage) throws -> socklen_t {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr = v4
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee = sin } }
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        var v6 = in6_addr()
        let literal = address.hasPrefix("[") && address.hasSuffix("]") ? String(address.dropFirst().dropLast()) : address
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_addr = v6
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee = sin6 } }
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        throw SystemError(call: "address \(address)", errno: EINVAL)
    }
}
