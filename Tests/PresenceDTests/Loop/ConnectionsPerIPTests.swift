import Glibc
import XCTest

@testable import PresenceD
@testable import PresenceLoop

/// The shared per-address connection count behind MAX_CONNECTIONS_PER_IP.
final class ConnectionsPerIPTests: XCTestCase {
    func testAcquireStopsAtTheLimitPerAddressAndReleaseFreesAPlace() {
        let table = ConnectionsPerIP(limit: 3)
        let a = PeerAddress(ipv4: 0x7F00_0001), b = PeerAddress(ipv4: 0x7F00_0002)
        for _ in 0..<3 { XCTAssertTrue(table.acquire(a)) }
        XCTAssertFalse(table.acquire(a))
        XCTAssertEqual(table.count(a), 3)
        XCTAssertTrue(table.acquire(b), "another address has its own count")
        table.release(a)
        XCTAssertTrue(table.acquire(a))
        for _ in 0..<3 { table.release(a) }
        table.release(a)  // one too many: stays at zero, never negative
        XCTAssertEqual(table.count(a), 0)
        for _ in 0..<3 { XCTAssertTrue(table.acquire(a)) }
        XCTAssertFalse(table.acquire(a))
        XCTAssertNil(ConnectionsPerIP.make(limit: 0))
    }

    func testCountsHoldUnderConcurrentLoops() {
        let table = ConnectionsPerIP(limit: 1_000_000)
        let addresses = (0..<64).map { PeerAddress(ipv4: 0x0A00_0000 | UInt32($0)) }
        let threads = (0..<4).map { _ in
            LoopThread.detached {
                for _ in 0..<2000 { for a in addresses { _ = table.acquire(a) } }
                for _ in 0..<1000 { for a in addresses { table.release(a) } }
            }
        }
        for t in threads { t.join() }
        for a in addresses { XCTAssertEqual(table.count(a), 4000) }
    }

    func testAddressesAreKeyedAsIPv6WithIPv4Mapped() {
        XCTAssertEqual(PeerAddress(ipv4: 0x7F00_0001).description, "127.0.0.1")
        let mapped = PeerAddress(ipv6: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1))
        XCTAssertEqual(mapped, PeerAddress(ipv4: 0x7F00_0001), "::ffff:127.0.0.1 counts as 127.0.0.1")
        let v6 = PeerAddress(ipv6: (0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1))
        XCTAssertEqual(v6.description, "2001:db8:0:0:0:0:0:1")
        XCTAssertNotEqual(v6, PeerAddress(ipv6: (0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)))
    }

    /// The peer of a real IPv6 loopback connection is read from the socket.
    func testPeerOfAnIPv6Socket() throws {
        let listener = try Sockets.listen(address: "::1", port: 0)
        defer { close(listener) }
        let client = try TestSocket(port: Sockets.localPort(listener), host: "::1")
        var fd: Int32 = -1
        for _ in 0..<100 where fd < 0 {
            fd = accept(listener, nil, nil)
            if fd < 0 { usleep(10_000) }
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(PeerAddress.peer(of: fd), PeerAddress(ipv6: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)))
        XCTAssertEqual(PeerAddress.peer(of: fd)?.description, "0:0:0:0:0:0:0:1")
        _ = client
    }
}
