import Foundation
import Glibc

/// The listening half of the tests' stand-in servers: a socket on 127.0.0.1 (port chosen by the
/// kernel) and a thread that hands every accepted connection to `accepted`.
///
/// `stop()` only shuts the socket down; the accept thread closes it when `accept` fails. Closing
/// it in `stop()` let the number be reused by the next test's socket while the thread was still
/// about to call `accept` on it: a stopped server then took a later test's connection and reset
/// it ("Connection reset by peer" in a CI run).
package final class StandInListener: @unchecked Sendable {
    package let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    private var closed = false

    package init(_ accepted: @escaping @Sendable (Int32) -> Void) throws {
        (fd, port) = try Self.listenOnLoopback()
        Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    lock.withLock {
                        closed = true
                        close(fd)
                    }
                    return
                }
                if lock.withLock({ stopped }) {
                    close(client)
                    continue  // the shut-down socket fails the next accept
                }
                accepted(client)
            }
        }.start()
    }

    /// Stops accepting (idempotent).
    package func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            if !closed { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// A listening TCP socket on 127.0.0.1 at a port the kernel picks (blocking, close-on-exec).
    private static func listenOnLoopback() throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }
}
