import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Handshake timeout, server pings, and closing a peer that stops answering them.
final class TimeoutTests: XCTestCase {
    func testSilentConnectionIsDroppedAfterTheHandshakeTimeout() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend) { $0.handshakeTimeoutMillis = 300 }
            defer { server.stop() }
            let socket = try TestSocket(port: server.port)
            try socket.write("GET / HTTP/1.1\r\nHost: x\r\n")  // never finishes the head
            let start = EventLoop.monotonicMillis()
            XCTAssertEqual(try socket.readToEnd(), [], "\(backend)")
            let waited = EventLoop.monotonicMillis() - start
            XCTAssertGreaterThanOrEqual(waited, 200, "\(backend)")
            XCTAssertLessThan(waited, 3000, "\(backend)")
        }
    }

    func testServerPingsAndClosesAPeerThatNeverAnswers() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend) { $0.pingIntervalMillis = 200 }
            defer { server.stop() }
            let ws = try TestWebSocket(port: server.port)
            var pings = 0
            var closeCode: UInt16?
            loop: while true {
                switch try ws.receive() {
                case .ping: pings += 1
                case .close(let code):
                    closeCode = code
                    break loop
                case .eof: break loop
                default: continue
                }
            }
            XCTAssertEqual(pings, 2, "\(backend)")
            XCTAssertEqual(closeCode, 1008, "\(backend)")
        }
    }

    func testAnsweredPingsKeepTheConnection() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend) { $0.pingIntervalMillis = 100 }
            defer { server.stop() }
            let ws = try TestWebSocket(port: server.port)
            var pings = 0
            while pings < 6 {
                let frame = try ws.receive()
                guard case .ping(let payload) = frame else { return XCTFail("\(backend): \(frame)") }
                try ws.send(.pong, payload)
                pings += 1
            }
            try ws.sendText("still here")
            XCTAssertEqual(try ws.receiveMessage(), .text("still here"), "\(backend)")
        }
    }
}
