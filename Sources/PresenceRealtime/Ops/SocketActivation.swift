import CSystem
import Glibc

/// systemd socket activation, as sd_listen_fds(3) reads it: `LISTEN_PID` (this process) and
/// `LISTEN_FDS` (how many descriptors, from 3). presenced serves one listening TCP socket.
package enum SocketActivation {
    static let firstDescriptor: Int32 = 3

    /// A passed descriptor presenced cannot serve.
    package struct Refusal: Error, CustomStringConvertible {
        var reason: String
        package var description: String { "socket activation: \(reason)" }
    }

    /// The passed listening socket, or nil when nothing was passed to this process. The
    /// variables are removed from the process environment (children must not take them).
    package static func listener(environment: [String: String]) throws(Refusal) -> Int32? {
        defer { for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) } }
        guard let pid = environment["LISTEN_PID"].flatMap(Int32.init), pid == getpid(),
            let count = environment["LISTEN_FDS"].flatMap(Int32.init), count > 0
        else { return nil }
        guard count == 1 else { throw Refusal(reason: "LISTEN_FDS=\(count): presenced serves exactly one socket") }
        let fd = firstDescriptor
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) == 0 else {
            throw Refusal(reason: "descriptor 3 is not a socket (\(String(cString: strerror(errno))))")
        }
        guard value == Int32(SOCK_STREAM.rawValue) else { throw Refusal(reason: "descriptor 3 is not a stream socket") }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0, value == 1 else {
            throw Refusal(reason: "descriptor 3 is not listening (ListenStream= in the .socket unit)")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }
}
