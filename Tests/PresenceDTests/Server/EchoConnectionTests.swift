import Glibc
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Real WebSocket clients over loopback against the echo application, on every backend.
final class EchoConnectionTests: XCTestCase {
    private func eachBackend(configure: (inout Config) -> Void = { _ in }, _ body: (TestServer, IOBackendKind) throws -> Void) throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, configure: configure)
            defer { server.stop() }
            try body(server, backend)
        }
    }

    func testEchoesTextAndBinaryOfEverySize() throws {
        try eachBackend { server, backend in
            let ws = try TestWebSocket(port: server.port)
            for size in [0, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
                let text = String(repeating: "é", count: size / 2)
                try ws.sendText(text)
                XCTAssertEqual(try ws.receiveMessage(), .text(text), "\(backend) text \(size)")
                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                try ws.send(.binary, bytes)
                XCTAssertEqual(try ws.receiveMessage(), .binary(bytes), "\(backend) binary \(size)")
            }
        }
    }

    func testFragmentedMessageWithInterleavedPing() throws {
        try eachBackend { server, backend in
            let ws = try TestWebSocket(port: server.port)
            try ws.send(.text, Array("Hello, ".utf8), fin: false)
            try ws.send(.ping, [1, 2, 3])
            try ws.send(.continuation, Array("wor".utf8), fin: false)
            try ws.send(.continuation, Array("ld".utf8), fin: true)
            XCTAssertEqual(try ws.receive(), .pong([1, 2, 3]), "\(backend)")
            XCTAssertEqual(try ws.receive(), .text("Hello, world"), "\(backend)")
        }
    }

    func testCloseIsAnsweredWithTheSameCodeAndTheConnectionEnds() throws {
        try eachBackend { server, backend in
            let ws = try TestWebSocket(port: server.port)
            try ws.send(.close, [0x0F, 0xA0] + Array("bye".utf8))  // 4000
            XCTAssertEqual(try ws.receive(), .close(4000), "\(backend)")
            XCTAssertEqual(try ws.receive(), .eof, "\(backend)")
        }
    }

    func testProtocolViolationsCloseWithTheirCodes() throws {
        try eachBackend(configure: { $0.maxMessageBytes = 1000 }) { server, backend in
            // Unmasked client frame: 1002.
            let a = try TestWebSocket(port: server.port)
            try a.socket.write([0x81, 0x02, 0x68, 0x69])
            XCTAssertEqual(try a.receive(), .close(1002), "\(backend) unmasked")
            // Invalid UTF-8 in a text frame: 1007.
            let b = try TestWebSocket(port: server.port)
            try b.send(.text, [0x68, 0xC0, 0xAF])
            XCTAssertEqual(try b.receive(), .close(1007), "\(backend) utf8")
            // Over the message size limit: 1009.
            let c = try TestWebSocket(port: server.port)
            try c.send(.binary, [UInt8](repeating: 7, count: 1001))
            XCTAssertEqual(try c.receive(), .close(1009), "\(backend) too big")
            // Reserved opcode: 1002.
            let d = try TestWebSocket(port: server.port)
            try d.send(WebSocketOpcode(rawValue: 0x2)!, [1])
            try d.socket.write([0x83, 0x80, 0, 0, 0, 0])
            XCTAssertEqual(try d.receive(), .binary([1]), "\(backend)")
            XCTAssertEqual(try d.receive(), .close(1002), "\(backend) reserved opcode")
        }
    }

    /// One client that never reads while it keeps sending: the others keep echoing promptly,
    /// and the stuck one is closed once its backlog passes the outbound cap.
    func testClientThatNeverReadsDoesNotDelayOthers() throws {
        try eachBackend(configure: {
            $0.maxOutboundBytes = 1 << 20
            $0.closeTimeoutMillis = 10_000
        }) { server, backend in
            let stuck = try TestWebSocket(port: server.port)
            stuck.socket.setReceiveBuffer(64 * 1024)
            let others = try (0..<4).map { _ in try TestWebSocket(port: server.port) }
            let chunk = [UInt8](repeating: 0x41, count: 64 * 1024)
            // Fill the stuck client's path: kernel buffers on both sides and the server's queue.
            let writer = LoopThread.detached {
                for _ in 0..<200 { if (try? stuck.send(.binary, chunk)) == nil { return } }
            }
            for round in 0..<200 {
                for (i, ws) in others.enumerated() {
                    let text = "round \(round) client \(i)"
                    let start = EventLoop.monotonicMillis()
                    try ws.sendText(text)
                    XCTAssertEqual(try ws.receiveMessage(), .text(text), "\(backend)")
                    XCTAssertLessThan(EventLoop.monotonicMillis() - start, 1000, "\(backend): an echo waited on the stuck client")
                }
            }
            writer.join()
            // The stuck client was cut off: draining it now yields part of its echoes, then close 4008.
            var echoed = 0
            var closeCode: UInt16?
            drain: while true {
                switch try stuck.receive() {
                case .binary(let bytes): echoed += bytes.count
                case .close(let code):
                    closeCode = code
                    break drain
                case .eof: break drain
                case let other:
                    XCTFail("\(backend): \(other)")
                    break drain
                }
            }
            XCTAssertEqual(closeCode, 4008, "\(backend)")
            XCTAssertLessThan(echoed, 200 * chunk.count, "\(backend): everything was echoed, nothing was cut off")
        }
    }

    func testManyConcurrentClients() throws {
        try eachBackend { server, backend in
            let clients = try (0..<300).map { _ in try TestWebSocket(port: server.port) }
            for (i, ws) in clients.enumerated() { try ws.sendText("hello \(i)") }
            for (i, ws) in clients.enumerated() { XCTAssertEqual(try ws.receiveMessage(), .text("hello \(i)"), "\(backend)") }
        }
    }
}

extension LoopThread {
    /// A joinable test thread.
    final class Handle: @unchecked Sendable {
        let thread: pthread_t
        init(_ t: pthread_t) { thread = t }
        func join() { pthread_join(thread, nil) }
    }
    static func detached(_ body: @escaping @Sendable () -> Void) -> Handle {
        Handle(try! spawn(name: "test", body))
    }
}
