import Glibc
import Synchronization
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Hostile clients (issue 8) against a live in-process server on every backend, each with a
/// well-behaved client checked alongside: slowloris, header floods, half-open floods, the per-IP
/// cap, join/leave churn, oversized and never-ending messages, ping floods. (A client that never
/// reads — 4008 while the others stay fast — is `EchoConnectionTests.testClientThatNeverReadsDoesNotDelayOthers`.)
final class HostileClientTests: XCTestCase {
    private func eachBackend(
        echo: Bool = true, configure: (inout Config) -> Void = { _ in },
        _ body: (TestServer, IOBackendKind) throws -> Void
    ) throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: echo, configure: configure)
            defer { server.stop() }
            try body(server, backend)
        }
    }

    /// One echo round trip; returns its milliseconds.
    @discardableResult
    private func roundTrip(_ ws: TestWebSocket, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> Int64 {
        let start = EventLoop.monotonicMillis()
        try ws.sendText(text)
        XCTAssertEqual(try ws.receiveMessage(), .text(text), file: file, line: line)
        return EventLoop.monotonicMillis() - start
    }

    /// Whether the server ended the connection: EOF or reset, as opposed to a receive timeout.
    private func sawServerClose(_ socket: TestSocket) throws -> Bool {
        do {
            let chunk = try socket.read()
            XCTAssertEqual(chunk, [], "the server owes this client nothing but the close")
            return true
        } catch let error as SystemError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return false
        } catch let error as SystemError where error.errno == ECONNRESET {
            return true
        }
    }

    private var openFDs: Int { ProcessStats.read()!.openFDs }
    private var residentBytes: Int { ProcessStats.read()!.residentBytes }

    // MARK: Slowloris and header floods

    /// One header byte per second: the connection is cut at the handshake timeout (the deadline
    /// set at accept is never pushed back by input), and another client is served all along.
    func testSlowlorisIsClosedAtTheHandshakeTimeoutWhileOthersAreServed() throws {
        try eachBackend(configure: { $0.handshakeTimeoutMillis = 2500 }) { server, backend in
            let normal = try TestWebSocket(port: server.port)
            let slow = try TestSocket(port: server.port, receiveTimeoutMillis: 1000)
            let head = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".utf8)
            let start = EventLoop.monotonicMillis()
            var sent = 0
            var closedAfter: Int64?
            while closedAfter == nil && sent < head.count {
                if (try? slow.write([head[sent]])) == nil {
                    closedAfter = EventLoop.monotonicMillis() - start
                    break
                }
                sent += 1
                // Waits up to a second: a timeout means the connection is still open.
                if try sawServerClose(slow) { closedAfter = EventLoop.monotonicMillis() - start }
                XCTAssertLessThan(try roundTrip(normal, "while the slowloris sent \(sent)"), 500, "\(backend)")
            }
            guard let closedAfter else { return XCTFail("\(backend): the whole head went out a byte a second, never cut") }
            XCTAssertGreaterThanOrEqual(closedAfter, 2400, "\(backend)")
            XCTAssertLessThan(closedAfter, 4500, "\(backend)")
            XCTAssertLessThan(sent, 6, "\(backend)")
            try roundTrip(normal, "after")
        }
    }

    /// A head past the parser's bound (one endless field, or too many fields) gets 431, garbage
    /// gets 400, and each connection is closed; the server never holds more than the bound.
    func testHeaderFloodsGet431AndAreClosed() throws {
        try eachBackend { server, backend in
            let normal = try TestWebSocket(port: server.port)
            let floods: [(String, Int)] = [
                ("GET / HTTP/1.1\r\nHost: x\r\nX-Flood: " + String(repeating: "a", count: 256 * 1024), 431),
                ("GET / HTTP/1.1\r\nHost: x\r\n" + (0..<300).map { "X-\($0): 1\r\n" }.joined() + "\r\n", 431),
                ("GET / HTTP/1.1\r\n" + String(repeating: "X-Long: " + String(repeating: "b", count: 1000) + "\r\n", count: 64), 431),
                ("\u{1}\u{2}\u{3} not http\r\n\r\n", 400),
            ]
            for (request, status) in floods {
                let socket = try TestSocket(port: server.port)
                try socket.write(request)  // the server reads on (and discards) after refusing
                let (head, _) = try socket.readHTTPResponse()
                XCTAssertEqual(head.status, status, "\(backend) \(request.prefix(30))")
                XCTAssertEqual(head.headers["connection"], "close", "\(backend)")
                XCTAssertEqual(try socket.readToEnd(), [], "\(backend): closed after the answer")
                XCTAssertLessThan(try roundTrip(normal, "after a flood"), 500, "\(backend)")
            }
        }
    }

    /// 10,000 connections that send nothing, against a real presenced process (its descriptors
    /// and this process's stay under the 20,000 limit apart): a member beside them still gets its
    /// messages at once, all 10,000 are closed at the 10 s handshake timeout, and the daemon's
    /// descriptors return to where they were.
    func testTenThousandHalfOpenConnectionsDoNotStopOthersAndAreReaped() throws {
        let count = 10_000
        for backend in availableBackends {
            let daemon = try DaemonProcess(environment: [
                "IO_BACKEND": backend.rawValue, "WS_TOKEN_SECRET": TestServer.secret,
                "MESSAGE_RATE": "0",
            ])
            let daemonFDs = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd").count) ?? -1 }
            let token = TokenMinter(secret: TestServer.secret, audience: "presenced").mint(userID: "alice", ttl: 60, now: UnixTime.now())
                .token
            let member = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token)
            try member.join("family", expecting: ["alice"])
            let baseline = daemonFDs()
            let start = EventLoop.monotonicMillis()
            var idle: [TestSocket] = []
            idle.reserveCapacity(count)
            for _ in 0..<count { idle.append(try TestSocket(port: daemon.port, receiveTimeoutMillis: 15_000)) }
            let openedAfter = EventLoop.monotonicMillis() - start
            var accepted = daemonFDs() - baseline
            for _ in 0..<300 where accepted < count {
                pause(millis: 10)
                accepted = daemonFDs() - baseline
            }
            XCTAssertGreaterThanOrEqual(accepted, count, "\(backend): not all half-open connections were accepted")
            var slowest: Int64 = 0
            for i in 0..<50 {
                let sent = EventLoop.monotonicMillis()
                try member.sendText(#"{"type":"message","channel":"family","content":"beside \#(i)"}"#)
                XCTAssertEqual(try member.nextJSON()["content"] as? String, "beside \(i)", "\(backend)")
                slowest = max(slowest, EventLoop.monotonicMillis() - sent)
            }
            XCTAssertLessThan(slowest, 500, "\(backend)")
            for (i, socket) in idle.enumerated() {
                XCTAssertTrue(try sawServerClose(socket), "\(backend): half-open connection \(i) still open")
            }
            let reapedAfter = EventLoop.monotonicMillis() - start
            XCTAssertGreaterThanOrEqual(reapedAfter, 9_900, "\(backend)")
            XCTAssertLessThan(reapedAfter, openedAfter + 10_000 + 3_000, "\(backend)")
            idle.removeAll()
            var left = daemonFDs() - baseline
            for _ in 0..<300 where left > 0 {
                pause(millis: 10)
                left = daemonFDs() - baseline
            }
            XCTAssertLessThanOrEqual(left, 0, "\(backend): descriptors not released")
            try member.sendText(#"{"type":"message","channel":"family","content":"after"}"#)
            XCTAssertEqual(try member.nextJSON()["content"] as? String, "after", "\(backend)")
            print(
                "half-open \(backend): opened \(count) in \(openedAfter) ms, slowest message beside them \(slowest) ms, all closed after \(reapedAfter) ms, daemon fds left \(left)"
            )
        }
    }

    // MARK: Per-IP cap

    /// MAX_CONNECTIONS_PER_IP over two loops: the (cap+1)th connection from 127.0.0.1 is closed at
    /// accept (and counted in /metrics), 127.0.0.2 still connects, and a closed connection frees its place.
    func testPerIPCapRefusesTheNextConnectionFromThatAddressOnly() throws {
        let cap = 8
        try eachBackend(echo: false, configure: { $0.maxConnectionsPerIP = cap }) { server, backend in
            func connect(_ user: String, from source: String) throws -> TestWebSocket {
                try TestWebSocket(port: server.port, path: "/ws?token=" + server.token(user), source: source, receiveTimeoutMillis: 2000)
            }
            func alive(_ ws: TestWebSocket) throws {
                try ws.sendText(#"{"type":"ping"}"#)
                XCTAssertEqual(try ws.nextJSON()["type"] as? String, "pong", "\(backend)")
            }
            var held = try (0..<cap).map { try connect("u\($0)", from: "127.0.0.1") }
            let upgrade =
                "GET /ws?token=\(server.token("late"))&x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            for attempt in 0..<5 {
                let refused = try TestSocket(port: server.port, source: "127.0.0.1", receiveTimeoutMillis: 3000)
                let start = EventLoop.monotonicMillis()
                try? refused.write(upgrade)
                XCTAssertTrue(try sawServerClose(refused), "\(backend): connection \(cap + 1 + attempt) was served")
                XCTAssertLessThan(EventLoop.monotonicMillis() - start, 1000, "\(backend): refused at once")
            }
            let other = try connect("other", from: "127.0.0.2")
            try alive(other)
            for ws in held { try alive(ws) }
            // The refusals are counted (scraped from the other address: 127.0.0.1 is full).
            let scrape = try TestSocket(port: server.port, source: "127.0.0.2")
            try scrape.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let metrics = String(decoding: try scrape.readHTTPResponse().body, as: UTF8.self)
            XCTAssertTrue(metrics.contains("\npresenced_connections_refused_per_ip_total 5\n"), "\(backend)")
            // One leaves: its place is free once the server has closed its socket.
            held.removeLast()
            var admitted: TestWebSocket?
            for i in 0..<100 where admitted == nil {
                admitted = try? connect("again\(i)", from: "127.0.0.1")
                if admitted == nil { pause(millis: 20) }
            }
            guard let admitted else { return XCTFail("\(backend): the freed place was never given back") }
            try alive(admitted)
        }
    }

    // MARK: Realtime churn

    /// One client joining and leaving 5,000 times as fast as it can: another pair's messages all
    /// arrive, in order and promptly. With no rate limit the whole storm goes through the hub;
    /// with the default one the churner is closed with 1008 (its policy) and the others do not notice.
    func testJoinLeaveChurnStormDoesNotDisturbOthers() throws {
        for rate in [0, 20] {
            try eachBackend(echo: false, configure: { $0.messageRate = rate }) { server, backend in
                let label = "\(backend) rate \(rate)"
                // Alice keeps within the limit herself: 200 at full speed, or 60 at ~16 a second.
                let count = rate > 0 ? 60 : 200
                let alice = try server.client("alice")
                try alice.join("room", expecting: ["alice"])
                let bob = try server.client("bob")
                try bob.join("room", expecting: ["alice", "bob"])
                try alice.expectPresence("bob", true, "room")
                let churner = try server.client("mallory", receiveTimeoutMillis: 20_000)
                let churnerClose = Lock<UInt16?>(nil)
                let churnReader = LoopThread.detached {
                    while true {
                        switch try? churner.receive() {
                        case .close(let code)?:
                            churnerClose.withLock { $0 = code ?? 1005 }
                            return
                        case .eof?, nil: return
                        default: continue
                        }
                    }
                }
                // With a rate limit the storm goes on (refused) until the limit closes it: 5 s of
                // continued refusals (docs/protocol.md, "Rate limit"); without one, 3000 join/leave
                // pairs (each join answers a snapshot and `joined`: ~1 MB the churner must read as
                // fast as it writes).
                let churnWriter = LoopThread.detached {
                    let end = EventLoop.monotonicMillis() + 9_000
                    var n = 0
                    while n < 3000 || (rate > 0 && EventLoop.monotonicMillis() < end) {
                        guard (try? churner.sendText(#"{"type":"join","channel":"room"}"#)) != nil,
                            (try? churner.sendText(#"{"type":"leave","channel":"room"}"#)) != nil
                        else { return }
                        n += 1
                        if n >= 3000 { usleep(20_000) }
                    }
                }
                // Alice's own copies and mallory's presence: drained aside.
                let aliceReader = LoopThread.detached {
                    var messages = 0
                    while messages < count, let frame = try? alice.receiveMessage() {
                        if case .text(let t) = frame, t.contains(#""type":"message""#) { messages += 1 }
                        if case .eof = frame { return }
                    }
                }
                var slowest: Int64 = 0
                for n in 0..<count {
                    if rate > 0 { pause(millis: 60) }
                    let start = EventLoop.monotonicMillis()
                    try alice.sendText(#"{"type":"message","channel":"room","content":"m\#(n)"}"#)
                    while true {
                        let m = try bob.nextJSON()
                        if m["type"] as? String == "presence" { continue }  // mallory coming and going
                        XCTAssertEqual(m["type"] as? String, "message", "\(label): \(m)")
                        XCTAssertEqual(m["content"] as? String, "m\(n)", "\(label): lost or out of order")
                        break
                    }
                    slowest = max(slowest, EventLoop.monotonicMillis() - start)
                }
                churnWriter.join()
                aliceReader.join()
                XCTAssertLessThan(slowest, 1000, "\(label): a message waited on the churn")
                if rate > 0 {
                    churnReader.join()
                    XCTAssertEqual(churnerClose.withLock { $0 }, 1008, "\(label): the churner is closed by the rate limit")
                } else {
                    churner.disconnect()
                    churnReader.join()
                    XCTAssertNil(churnerClose.withLock { $0 }, "\(label): without a limit the churner is served")
                }
                // Both still talk.
                try bob.sendText(#"{"type":"message","channel":"room","content":"still here"}"#)
                var m = try alice.nextJSON()
                while m["type"] as? String != "message" { m = try alice.nextJSON() }
                XCTAssertEqual(m["content"] as? String, "still here", label)
                print(
                    "churn \(label): slowest of \(count) messages beside the storm \(slowest) ms, churner close \(String(describing: churnerClose.withLock { $0 }))"
                )
            }
        }
    }

    // MARK: Oversized and never-ending messages

    /// A frame announcing 1 GiB is refused at its header (1009) without waiting for the payload.
    func testOversizedFrameIsClosedWith1009AtItsHeader() throws {
        try eachBackend(configure: { $0.maxMessageBytes = 65536 }) { server, backend in
            let ws = try TestWebSocket(port: server.port)
            try ws.socket.write([0x82, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4] + [UInt8](repeating: 9, count: 100))
            XCTAssertEqual(try ws.receive(), .close(1009), "\(backend)")
        }
    }

    /// Continuation frames forever: 1009 once the total passes MAX_MESSAGE_BYTES, and the server
    /// does not hold what follows (32 MiB are sent; its memory grows by far less).
    func testNeverEndingFragmentedMessageIsClosedWith1009WithoutBuffering() throws {
        try eachBackend(configure: {
            $0.maxMessageBytes = 65536
            $0.closeTimeoutMillis = 10_000
        }) { server, backend in
            let normal = try TestWebSocket(port: server.port)
            let ws = try TestWebSocket(port: server.port)
            let rssBefore = residentBytes
            let chunk = [UInt8](repeating: 0x61, count: 16 * 1024)
            let sentBytes = Atomic<Int>(0)
            let writer = LoopThread.detached {
                guard (try? ws.send(.text, chunk, fin: false)) != nil else { return }
                for _ in 0..<2048 {
                    guard (try? ws.send(.continuation, chunk, fin: false)) != nil else { return }
                    sentBytes.add(chunk.count, ordering: .relaxed)
                }
            }
            XCTAssertEqual(try ws.receive(), .close(1009), "\(backend)")
            writer.join()
            let grew = residentBytes - rssBefore
            XCTAssertGreaterThan(sentBytes.load(ordering: .relaxed), 16 << 20, "\(backend): the flood was not sent")
            // Under a sanitizer freed memory sits in quarantine: RSS says nothing about buffering.
            if !DaemonProcess.sanitizerOptions.contains(where: { ProcessInfo.processInfo.environment[$0] != nil }) {
                XCTAssertLessThan(grew, 16 << 20, "\(backend): the server buffered the flood")
            }
            XCTAssertLessThan(try roundTrip(normal, "after"), 500, "\(backend)")
            print(
                "fragment flood \(backend): sent \(sentBytes.load(ordering: .relaxed) >> 20) MiB of fragments in all, RSS grew \(grew >> 10) KiB"
            )
        }
    }

    // MARK: Ping floods

    /// 10,000 pings from a client that reads are all answered, in order; 100,000 from one that
    /// never reads end with 4008 once its pongs pass MAX_OUTBOUND_BYTES (pongs are not a way
    /// around the outbound cap); another client is served throughout.
    func testPingFloodIsAnsweredOrClosedByPolicy() throws {
        try eachBackend(configure: {
            $0.maxOutboundBytes = 64 * 1024
            $0.closeTimeoutMillis = 10_000
        }) { server, backend in
            let normal = try TestWebSocket(port: server.port)
            let reader = try TestWebSocket(port: server.port)
            let pinger = LoopThread.detached {
                for n in 0..<10_000 {
                    let payload = withUnsafeBytes(of: UInt32(n).bigEndian) { Array($0) }
                    if (try? reader.send(.ping, payload)) == nil { return }
                }
            }
            for n in 0..<10_000 {
                let expected = withUnsafeBytes(of: UInt32(n).bigEndian) { Array($0) }
                let frame = try reader.receive()
                guard frame == .pong(expected) else {
                    XCTFail("\(backend): pong \(n): \(frame)")
                    break
                }
            }
            pinger.join()
            XCTAssertLessThan(try roundTrip(normal, "after 10k pings"), 500, "\(backend)")

            let deaf = try TestWebSocket(port: server.port, receiveTimeoutMillis: 10_000)
            deaf.socket.setReceiveBuffer(16 * 1024)
            let payload = [UInt8](repeating: 0x70, count: 125)
            let flooder = LoopThread.detached {
                for _ in 0..<100_000 { if (try? deaf.send(.ping, payload)) == nil { return } }
            }
            var slowest: Int64 = 0
            for i in 0..<50 { slowest = max(slowest, try roundTrip(normal, "beside the flood \(i)")) }
            flooder.join()
            var pongs = 0
            var closeCode: UInt16?
            drain: while true {
                switch try deaf.receive() {
                case .pong: pongs += 1
                case .close(let code):
                    closeCode = code
                    break drain
                case let other:
                    XCTFail("\(backend): \(other)")
                    break drain
                }
            }
            XCTAssertEqual(closeCode, 4008, "\(backend): \(pongs) pongs, then no slow-consumer close")
            XCTAssertLessThan(pongs, 100_000, "\(backend)")
            XCTAssertLessThan(slowest, 1000, "\(backend)")
            print(
                "ping flood \(backend): 10000/10000 answered; deaf client got \(pongs) of 100000 pongs then \(String(describing: closeCode)); slowest echo beside it \(slowest) ms"
            )
        }
    }
}
