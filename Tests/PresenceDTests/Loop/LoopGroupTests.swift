import Glibc
import Synchronization
import XCTest

@testable import PresenceD
@testable import PresenceLoop

/// LoopGroup on a listener passed in (socket activation): every loop accepts from its own
/// duplicate of the one socket, made non-blocking, and the loops take turns.
final class LoopGroupTests: XCTestCase {
    /// Counts accepts per loop and hangs up at once.
    private final class CountingHandler: ConnectionHandler {
        let counts: Lock<[Int]>
        init(loops: Int) { counts = Lock([Int](repeating: 0, count: loops)) }
        func connectionOpened(_ id: ConnectionID, loop: EventLoop) {
            counts.withLock { $0[loop.index] += 1 }
            loop.abort(id)
        }
        func connectionReceived(_ id: ConnectionID, _ bytes: UnsafeMutableRawBufferPointer, loop: EventLoop) {}
        func connectionDeadline(_ id: ConnectionID, loop: EventLoop) {}
        func connectionClosed(_ id: ConnectionID, loop: EventLoop) {}
        func outboundConnected(_ id: ConnectionID, loop: EventLoop) {}
        func outboundReceived(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer, loop: EventLoop) {}
        func outboundClosed(_ id: ConnectionID, error: Int32, loop: EventLoop) {}
    }

    func testEveryLoopTakesItsShareFromOnePassedListener() throws {
        for backend in availableBackends {
            // As systemd passes it: blocking.
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(listener) }
            var address = sockaddr_storage()
            let length = try Sockets.fillAddress("127.0.0.1", port: 0, into: &address)
            XCTAssertEqual(
                withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }, 0)
            XCTAssertEqual(listen(listener, 128), 0)
            let port = Sockets.localPort(listener)

            let handler = CountingHandler(loops: 2)
            let group = try LoopGroup(threads: 2, backend: backend, inherited: listener)
            XCTAssertEqual(group.port, port)
            XCTAssertNotEqual(fcntl(listener, F_GETFL) & O_NONBLOCK, 0, "\(backend): made non-blocking")
            let shared = UnsafeSendable(handler)
            try group.start { _ in shared.value }
            defer {
                group.stop()
                group.join()
            }

            let connections = 200
            for _ in 0..<connections {
                let client = try TestSocket(port: port, receiveTimeoutMillis: 2000)
                XCTAssertEqual(try client.read(), [], "\(backend): accepted and hung up")
            }
            let counts = handler.counts.withLock { $0 }
            XCTAssertEqual(counts.reduce(0, +), connections, "\(backend)")
            // Which loop wins a connection is the scheduler's call: on a busy machine a loop that
            // shares its core with other work took 5 of 200. Before the fix one loop took all 200.
            for (loop, count) in counts.enumerated() {
                XCTAssertGreaterThanOrEqual(count, 1, "\(backend): loop \(loop) takes connections too: \(counts)")
            }
        }
    }
}
