import Glibc
import Synchronization
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop

/// Records what the loop reports about one outbound connection (from the loop's thread).
private final class RecordingOutbound: OutboundHandler, @unchecked Sendable {
    struct Seen {
        var connected = false
        var received: [UInt8] = []
        var closedError: Int32?
    }
    let seen = Lock(Seen())
    func outboundConnected(_ id: ConnectionID, loop: EventLoop) { seen.withLock { $0.connected = true } }
    func outboundReceived(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer, loop: EventLoop) {
        seen.withLock { $0.received += bytes }
    }
    func outboundClosed(_ id: ConnectionID, error: Int32, loop: EventLoop) { seen.withLock { $0.closedError = error } }
}

final class OutboundConnectionTests: XCTestCase {
    private func waitUntil(_ what: String, timeoutMillis: Int64 = 3000, _ condition: () -> Bool) {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while !condition() {
            if EventLoop.monotonicMillis() > end { return XCTFail("timed out waiting for \(what)") }
            pause(millis: 5)
        }
    }

    private func loopbackAddress(port: UInt16) -> [UInt8] {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafeBytes(of: &address) { [UInt8]($0) }
    }

    /// Connects from a loop, sends before the connect completes, reads the peer's answer, and
    /// sees the peer's EOF — on each backend.
    func testConnectSendReceiveAndPeerClose() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, threads: 1)
            defer { server.stop() }
            let listener = try Sockets.listen(address: "127.0.0.1", port: 0)
            defer { close(listener) }
            let flags = fcntl(listener, F_GETFL)
            _ = fcntl(listener, F_SETFL, flags & ~O_NONBLOCK)
            let address = loopbackAddress(port: Sockets.localPort(listener))
            let handler = RecordingOutbound()
            server.group.broadcast { loop in
                let id = address.withUnsafeBytes {
                    try? loop.connect(
                        to: $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length: socklen_t($0.count), handler: handler
                    ).get()
                }
                if let id { loop.sendOutbound(id, SharedBytes.copying(Array("hello".utf8))) }
            }
            let peer = accept(listener, nil, nil)
            XCTAssertGreaterThanOrEqual(peer, 0, "\(backend)")
            var buffer = [UInt8](repeating: 0, count: 16)
            let n = recv(peer, &buffer, buffer.count, 0)
            XCTAssertEqual(Array(buffer.prefix(max(0, n))), Array("hello".utf8), "\(backend): bytes queued while connecting go out")
            waitUntil("connected") { handler.seen.withLock { $0.connected } }
            _ = send(peer, "world", 5, 0)
            waitUntil("answer") { handler.seen.withLock { $0.received.count == 5 } }
            XCTAssertEqual(handler.seen.withLock { $0.received }, Array("world".utf8), "\(backend)")
            close(peer)
            waitUntil("EOF") { handler.seen.withLock { $0.closedError != nil } }
            XCTAssertEqual(handler.seen.withLock { $0.closedError }, 0, "\(backend): orderly EOF")
        }
    }

    func testRefusedConnectIsReportedWithItsErrno() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, threads: 1)
            defer { server.stop() }
            // A port with no listener: bind one, note it, close it.
            let probe = try Sockets.listen(address: "127.0.0.1", port: 0)
            let port = Sockets.localPort(probe)
            close(probe)
            let address = loopbackAddress(port: port)
            let handler = RecordingOutbound()
            server.group.broadcast { loop in
                _ = address.withUnsafeBytes {
                    loop.connect(to: $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length: socklen_t($0.count), handler: handler)
                }
            }
            waitUntil("refusal") { handler.seen.withLock { $0.closedError != nil } }
            XCTAssertEqual(handler.seen.withLock { $0.closedError }, ECONNREFUSED, "\(backend)")
            XCTAssertFalse(handler.seen.withLock { $0.connected }, "\(backend)")
        }
    }

    func testScheduledWorkRunsOnTheLoopAndCanBeCancelled() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, threads: 1)
            defer { server.stop() }
            let fired = Lock<[String]>([])
            server.group.broadcast { loop in
                _ = loop.schedule(after: 60) { fired.withLock { $0.append("late") } }
                _ = loop.schedule(after: 10) { fired.withLock { $0.append("early") } }
                let cancelled = loop.schedule(after: 20) { fired.withLock { $0.append("cancelled") } }
                loop.cancelScheduled(cancelled)
            }
            waitUntil("timers") { fired.withLock { $0.count == 2 } }
            pause(millis: 50)
            XCTAssertEqual(fired.withLock { $0 }, ["early", "late"], "\(backend)")
        }
    }
}
