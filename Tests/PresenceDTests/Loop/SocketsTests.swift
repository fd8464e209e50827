import Glibc
import XCTest

@testable import PresenceD
@testable import PresenceLoop

final class SocketsTests: XCTestCase {
    /// Accepted connections get TCP_NODELAY from the listener (no setsockopt per accept).
    func testAcceptedSocketsInheritNoDelay() throws {
        let listener = try Sockets.listen(address: "127.0.0.1", port: 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = Sockets.localPort(listener).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        var accepted: Int32 = -1
        for _ in 0..<200 {
            accepted = accept(listener, nil, nil)
            if accepted >= 0 { break }
            pause(millis: 5)
        }
        XCTAssertGreaterThanOrEqual(accepted, 0)
        defer { close(accepted) }
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        XCTAssertEqual(getsockopt(accepted, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length), 0)
        XCTAssertEqual(value, 1)
    }
}
