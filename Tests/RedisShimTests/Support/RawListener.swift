#if canImport(Glibc)
import Glibc
#endif

/// A bare loopback TCP listener for the few cases a real server cannot produce: garbage bytes,
/// a reply nobody asked for, a peer that never answers. Blocking; the test thread drives it.
final class RawListener {
    private let fd: Int32
    private var accepted: [Int32] = []
    let port: UInt16

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket")
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        var length = size
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, size) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        precondition(ok, "bind/listen")
        self.fd = fd
        port = UInt16(bigEndian: addr.sin_port)
    }

    deinit {
        for c in accepted { close(c) }
        close(fd)
    }

    /// Accepts the next connection (already in the backlog once the client saw it connected).
    func accept() -> Int32 {
        let c = Glibc.accept(fd, nil, nil)
        precondition(c >= 0, "accept")
        accepted.append(c)
        return c
    }

    func write(_ c: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
