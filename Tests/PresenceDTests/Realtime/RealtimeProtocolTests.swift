import Foundation
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// The realtime protocol (docs/protocol.md) with real clients over loopback, on every backend.
final class RealtimeProtocolTests: XCTestCase {
    private func eachBackend(
        threads: Int = 2, configure: (inout Config) -> Void = { _ in },
        _ body: (TestServer, IOBackendKind) throws -> Void
    ) throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, threads: threads, echo: false, configure: configure)
            defer { server.stop() }
            try body(server, backend)
        }
    }

    // MARK: Helpers

    private func send(_ ws: TestWebSocket, _ json: String) throws { try ws.sendText(json) }

    private func expectError(_ ws: TestWebSocket, _ code: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try ws.nextJSON(file: file, line: line)
        XCTAssertEqual(m["type"] as? String, "error", "\(m)", file: file, line: line)
        XCTAssertEqual(m["code"] as? String, code, "\(m)", file: file, line: line)
    }

    private func upgradeStatus(_ server: TestServer, query: String, headers: String = "") throws -> (Int, String) {
        let socket = try TestSocket(port: server.port)
        try socket.write(
            "GET /ws\(query) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(headers)\r\n"
        )
        let (head, body) = try socket.readHTTPResponse()
        return (head.status, String(decoding: body, as: UTF8.self))
    }

    // MARK: Upgrade policy

    func testUpgradeStatuses() throws {
        try eachBackend(configure: { $0.allowedOrigins = ["https://casa.devarno.cloud", "https://*.example.org"] }) { server, backend in
            XCTAssertEqual(try upgradeStatus(server, query: "").0, 401, "\(backend) no token")
            XCTAssertEqual(try upgradeStatus(server, query: "?token=abc.def.ghi").0, 401, "\(backend) garbage")
            let forged = TokenMinter(secret: String(repeating: "x", count: 40), audience: "presenced")
                .mint(userID: "u", now: UnixTime.now()).token
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + forged).0, 401, "\(backend) other secret")
            let expired = TokenMinter(secret: TestServer.secret, audience: "presenced").mint(
                userID: "u", ttl: 10, now: UnixTime.now() - 100
            ).token
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + expired).0, 401, "\(backend) expired")
            let other = TokenMinter(secret: TestServer.secret, audience: "elsewhere").mint(userID: "u", now: UnixTime.now()).token
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + other).0, 401, "\(backend) audience")

            let token = server.token("alice")
            let (forbidden, body) = try upgradeStatus(server, query: "?token=" + token, headers: "Origin: https://evil.example.com\r\n")
            XCTAssertEqual(forbidden, 403, "\(backend) origin")
            XCTAssertTrue(body.contains(#""code":"#), body)
            // The refused origin did not spend the token; a subdomain wildcard admits it.
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + token, headers: "Origin: https://app.example.org\r\n").0, 101)
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + token).0, 401, "\(backend) replayed")
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + server.token("bob")).0, 101, "\(backend) no Origin = not a browser")
            XCTAssertEqual(
                try upgradeStatus(server, query: "?token=" + server.token("bob"), headers: "Origin: https://casa.devarno.cloud\r\n").0, 101)
            XCTAssertEqual(
                try upgradeStatus(server, query: "?token=" + server.token("bob"), headers: "Origin: http://app.example.org\r\n").0, 403,
                "scheme must match")
        }
    }

    /// Every token rejection reason, over the wire: 401 with code invalid_token.
    func testEveryTokenRejectionReasonIs401() throws {
        try eachBackend { server, backend in
            let secret = Array(TestServer.secret.utf8)
            let now = UnixTime.now()
            func signed(_ payload: String, header: String = JWT.standardHeader) -> String {
                JWT.sign(header: header, payload: payload, secret: secret)
            }
            func claims(sub: String = "u", iat: Int64 = now, exp: Int64? = nil, extra: String = "") -> String {
                #"{"sub":"\#(sub)","aud":"presenced","iat":\#(iat),"exp":\#(exp ?? iat + 60),"jti":"\#(TokenMinter.randomJTI())"\#(extra)}"#
            }
            let cases: [(String, String)] = [
                ("missing", ""),
                ("malformed", "?token=not-a-jwt"),
                ("algorithm", "?token=" + signed(claims(), header: #"{"alg":"none","typ":"JWT"}"#)),
                (
                    "signature",
                    "?token="
                        + JWT.sign(
                            header: JWT.standardHeader, payload: claims(), secret: Array("another-secret-of-at-least-32-bytes!".utf8))
                ),
                ("expired", "?token=" + signed(claims(iat: now - 200, exp: now - 100))),
                ("not_yet_valid", "?token=" + signed(claims(extra: #","nbf":\#(now + 60)"#))),
                ("issued_in_future", "?token=" + signed(claims(iat: now + 60, exp: now + 120))),
                ("lifetime", "?token=" + signed(claims(iat: now, exp: now + 301))),
                ("audience", "?token=" + signed(#"{"sub":"u","aud":"other","iat":\#(now),"exp":\#(now + 60),"jti":"j1"}"#)),
                ("claims", "?token=" + signed(#"{"aud":"presenced","iat":\#(now),"exp":\#(now + 60),"jti":"j2"}"#)),
            ]
            for (reason, query) in cases {
                let (status, body) = try upgradeStatus(server, query: query)
                XCTAssertEqual(status, 401, "\(backend) \(reason)")
                XCTAssertTrue(body.contains(#""code":"invalid_token""#) && body.contains(reason), "\(backend) \(reason): \(body)")
            }
            let once = "?token=" + signed(claims())
            XCTAssertEqual(try upgradeStatus(server, query: once).0, 101, "\(backend)")
            let (replayed, body) = try upgradeStatus(server, query: once)
            XCTAssertEqual(replayed, 401)
            XCTAssertTrue(body.contains("replayed"), body)
        }
    }

    func testCapacityRefusesWith503() throws {
        try eachBackend(configure: { $0.maxConnections = 1 }) { server, backend in
            let first = try server.client("a")
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + server.token("b")).0, 503, "\(backend)")
            _ = first
        }
    }

    // MARK: Presence

    func testPresenceWithTwoUsersAndTwoTabs() throws {
        try eachBackend(configure: { $0.presenceGraceMillis = 300 }) { server, backend in
            let a1 = try server.client("alice")
            try a1.join("room", expecting: ["alice"])
            let b1 = try server.client("bob")
            try b1.join("room", expecting: ["alice", "bob"])
            try a1.expectPresence("bob", true, "room")
            // Alice's second tab: it sees both; nobody hears of alice again.
            let a2 = try server.client("alice")
            try a2.join("room", expecting: ["alice", "bob"])
            b1.expectSilence()
            a1.expectSilence()
            // One tab closes: alice is still online.
            try a1.send(.close, [0x03, 0xE8])
            XCTAssertEqual(try a1.receive(), .close(1000))
            b1.expectSilence(millis: 600)
            // The last tab closes: after the grace period bob hears alice went offline.
            try a2.send(.close, [0x03, 0xE8])
            try b1.expectPresence("alice", false, "room")
            _ = backend
        }
    }

    func testQuickReconnectWithinGraceDoesNotFlap() throws {
        try eachBackend(configure: { $0.presenceGraceMillis = 1500 }) { server, _ in
            let b = try server.client("bob")
            try b.join("room", expecting: ["bob"])
            let a = try server.client("alice")
            try a.join("room", expecting: ["alice", "bob"])
            try b.expectPresence("alice", true, "room")
            try a.send(.close, [0x03, 0xE8])
            let again = try server.client("alice")
            try again.join("room", expecting: ["alice", "bob"])
            b.expectSilence(millis: 2000)
        }
    }

    func testLeaveAndErrors() throws {
        try eachBackend { server, backend in
            let a = try server.client("alice", channels: ["allowed"])
            try send(a, #"{"type":"leave","channel":"room"}"#)
            try expectError(a, "not_joined")
            try send(a, #"{"type":"message","channel":"room","content":"hi"}"#)
            try expectError(a, "not_joined")
            try send(a, #"{"type":"typing","channel":"room","typing":true}"#)
            try expectError(a, "not_joined")
            try send(a, #"{"type":"join","channel":"room"}"#)
            try expectError(a, "forbidden_channel")
            try send(a, #"{"type":"join","channel":"bad channel!"}"#)
            try expectError(a, "invalid_channel")
            try send(a, #"{"type":"dance"}"#)
            try expectError(a, "unknown_type")
            try send(a, #"{"type":"join""#)
            try expectError(a, "bad_json")
            try send(a, #"{"type":"join","channel":5}"#)
            try expectError(a, "bad_json")
            try send(a, #"{"type":"join","channel":"allowed","extra":1}"#)
            try expectError(a, "bad_json")
            try send(a, String(repeating: "[", count: 5000))
            try expectError(a, "bad_json")
            try send(a, #"{"type":"ping","n":1e999999}"#)
            try expectError(a, "bad_json")
            try a.send(.binary, [1, 2, 3])
            try expectError(a, "bad_json")
            try a.join("allowed", expecting: ["alice"])
            try send(a, #"{"type":"message","channel":"allowed","content":"\#(String(repeating: "é", count: 2049))"}"#)
            try expectError(a, "too_large")
            try send(a, #"{"type":"ping"}"#)
            XCTAssertEqual(try a.nextJSON()["type"] as? String, "pong", "\(backend)")
            try send(a, #"{"type":"leave","channel":"allowed"}"#)
            try send(a, #"{"type":"leave","channel":"allowed"}"#)
            try expectError(a, "not_joined")
        }
    }

    func testChannelLimitPerConnection() throws {
        try eachBackend(threads: 1, configure: { $0.messageRate = 0 }) { server, _ in
            let a = try server.client("alice")
            for i in 0..<64 { try a.join("c\(i)", expecting: ["alice"]) }
            try send(a, #"{"type":"join","channel":"c64"}"#)
            try expectError(a, "too_large")
        }
    }

    // MARK: Messages

    func testMessageReachesEveryMemberOnEveryLoopInOrder() throws {
        try eachBackend(configure: { $0.messageRate = 0 }) { server, backend in
            // Several connections, so that the two loops both hold members.
            let sender = try server.client("alice")
            try sender.join("room", expecting: ["alice"])
            var others: [TestWebSocket] = []
            for i in 0..<5 {
                let ws = try server.client("u\(i)")
                var expected = ["alice"] + (0...i).map { "u\($0)" }
                expected.sort()
                try ws.join("room", expecting: expected)
                others.append(ws)
                try sender.expectPresence("u\(i)", true, "room")
                for earlier in others.dropLast() { try earlier.expectPresence("u\(i)", true, "room") }
            }
            let outsider = try server.client("zed")
            for n in 0..<1000 { try send(sender, #"{"type":"message","channel":"room","content":"m\#(n)"}"#) }
            var lastID = ""
            for ws in [sender] + others {
                for n in 0..<1000 {
                    let m = try ws.nextJSON()
                    XCTAssertEqual(m["type"] as? String, "message")
                    XCTAssertEqual(m["content"] as? String, "m\(n)", "\(backend): out of order or lost")
                    XCTAssertEqual(m["sender"] as? String, "alice")
                    XCTAssertEqual(m["channel"] as? String, "room")
                    let id = m["id"] as! String
                    if ws === sender {
                        XCTAssertGreaterThan(id, lastID, "ids are time-ordered")
                        lastID = id
                    }
                    let ts = m["timestamp"] as! String
                    XCTAssertEqual(ts.count, 24, ts)  // 2026-11-28T10:24:41.123Z
                    XCTAssertTrue(ts.hasSuffix("Z"))
                }
            }
            outsider.expectSilence()
        }
    }

    func testRateLimit() throws {
        try eachBackend(configure: { $0.messageRate = 5 }) { server, backend in
            let a = try server.client("alice")
            for _ in 0..<10 { try send(a, #"{"type":"ping"}"#) }
            for _ in 0..<10 { XCTAssertEqual(try a.nextJSON()["type"] as? String, "pong") }
            try send(a, #"{"type":"ping"}"#)
            try expectError(a, "rate_limited")
            pause(millis: 500)  // 2–3 tokens come back
            try send(a, #"{"type":"ping"}"#)
            let m = try a.nextJSON()
            XCTAssertEqual(m["type"] as? String, "pong", "\(backend) \(m)")
        }
    }

    /// docs/protocol.md, "Rate limit": refusals alone never close; 5 s of refusals no more than 1 s
    /// apart close with 1008. A burst is answered rate_limited (with the message's channel and
    /// nonce) and the connection stays; a client that pauses over a second between bursts stays
    /// too.
    func testOnlyFiveSecondsOfContinuedRefusalsCloseWith1008() throws {
        try eachBackend(configure: { $0.messageRate = 1 }) { server, backend in
            let burst = try server.client("burst")
            try burst.join("room", expecting: ["burst"])
            for i in 0..<10 { try send(burst, #"{"type":"message","channel":"room","content":"x","nonce":"n\#(i)"}"#) }
            var refused: [[String: Any]] = []
            var delivered = 0
            for _ in 0..<10 {
                let m = try burst.nextJSON()
                if m["type"] as? String == "message" { delivered += 1 } else { refused.append(m) }
            }
            XCTAssertGreaterThan(refused.count, 0, "\(backend)")
            XCTAssertEqual(refused.first?["code"] as? String, "rate_limited")
            XCTAssertEqual(refused.first?["channel"] as? String, "room")
            XCTAssertNotNil(refused.first?["nonce"] as? String, "\(backend): the refused send's nonce comes back")

            let pausing = try server.client("pausing")
            let flooding = try server.client("flooding")
            let started = EventLoop.monotonicMillis()
            var floodClosedAt: Int64?
            var round = 0
            while EventLoop.monotonicMillis() - started < 7_000 {
                // The flooder sends every 200 ms; the pauser only in every 8th round (1.6 s apart).
                if floodClosedAt == nil {
                    try? send(flooding, #"{"type":"ping"}"#)
                    try? send(flooding, #"{"type":"ping"}"#)
                }
                if round % 8 == 0 { for _ in 0..<4 { try send(pausing, #"{"type":"ping"}"#) } }
                round += 1
                pause(millis: 200)
                if floodClosedAt == nil {
                    var tv = timeval(tv_sec: 0, tv_usec: 1_000)
                    setsockopt(flooding.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    while let frame = try? flooding.receive() {
                        if case .close(let code) = frame {
                            XCTAssertEqual(code, 1008, "\(backend)")
                            floodClosedAt = EventLoop.monotonicMillis() - started
                            break
                        }
                    }
                }
            }
            let closedAt = try XCTUnwrap(floodClosedAt, "\(backend): the flooder was never closed")
            XCTAssertGreaterThanOrEqual(closedAt, 4_900, "\(backend): not before 5 s of refusals")
            XCTAssertLessThan(closedAt, 6_500, "\(backend)")
            try send(pausing, #"{"type":"ping"}"#)
            pause(millis: 1_100)
            try send(pausing, #"{"type":"ping"}"#)
            var sawPong = false
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(pausing.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            while let frame = try? pausing.receiveMessage() {
                if case .close = frame { return XCTFail("\(backend): a client pausing between bursts was closed") }
                if case .text(let t) = frame, t.contains("pong") { sawPong = true }
            }
            XCTAssertTrue(sawPong, "\(backend): the pausing client is still served")
            _ = delivered
        }
    }

    // MARK: Typing

    func testTypingGoesToOtherUsersAndStopsAfterFiveSeconds() throws {
        try eachBackend { server, backend in
            let a1 = try server.client("alice")
            try a1.join("room", expecting: ["alice"])
            let a2 = try server.client("alice")
            try a2.join("room", expecting: ["alice"])
            let b = try server.client("bob")
            try b.join("room", expecting: ["alice", "bob"])
            try a1.expectPresence("bob", true, "room")
            try a2.expectPresence("bob", true, "room")
            try send(a1, #"{"type":"typing","channel":"room","typing":true}"#)
            let start = Date()
            var m = try b.nextJSON()
            XCTAssertEqual(m["type"] as? String, "typing")
            XCTAssertEqual(m["user_id"] as? String, "alice")
            XCTAssertEqual(m["typing"] as? Bool, true)
            a2.expectSilence()  // not to the sender's own tabs
            m = try b.nextJSON()  // the server ends it
            XCTAssertEqual(m["typing"] as? Bool, false, "\(backend)")
            let waited = Date().timeIntervalSince(start)
            XCTAssertGreaterThan(waited, 4.5)
            XCTAssertLessThan(waited, 6.5)
            // An explicit stop is delivered too.
            try send(a1, #"{"type":"typing","channel":"room","typing":true}"#)
            XCTAssertEqual(try b.nextJSON()["typing"] as? Bool, true)
            try send(a1, #"{"type":"typing","channel":"room","typing":false}"#)
            XCTAssertEqual(try b.nextJSON()["typing"] as? Bool, false)
        }
    }

    /// A connection that drops while typing ends it for the others; the next connection in its
    /// slot starts with nothing typing (typing is kept beside the sessions, by slot).
    func testDroppingWhileTypingEndsItAndTheSlotStartsClean() throws {
        try eachBackend { server, backend in
            let b = try server.client("bob")
            try b.join("room", expecting: ["bob"])
            let a = try server.client("alice")
            try a.join("room", expecting: ["alice", "bob"])
            try b.expectPresence("alice", true, "room")
            try send(a, #"{"type":"typing","channel":"room","typing":true}"#)
            XCTAssertEqual(try b.nextJSON()["typing"] as? Bool, true, "\(backend)")
            a.disconnect()
            let stop = try b.nextJSON()
            XCTAssertEqual(stop["type"] as? String, "typing", "\(backend) \(stop)")
            XCTAssertEqual(stop["user_id"] as? String, "alice")
            XCTAssertEqual(stop["typing"] as? Bool, false)
            // The freed slot is taken by the next connection: past the 5 s auto-stop, nothing
            // about typing comes for it.
            let c = try server.client("carol")
            try send(c, #"{"type":"join","channel":"room"}"#)
            let seen = b.messages(within: 5_500)
            XCTAssertTrue(
                seen.contains { $0["type"] as? String == "presence" && $0["user_id"] as? String == "carol" },
                "\(backend) \(seen)")
            XCTAssertFalse(seen.contains { $0["type"] as? String == "typing" }, "\(backend) \(seen)")
        }
    }

    // MARK: Robustness

    func testMalformedInputNeverDisconnectsOthers() throws {
        try eachBackend { server, backend in
            let good = try server.client("good")
            try good.join("room", expecting: ["good"])
            let bad = try server.client("bad")
            let garbage: [String] = [
                "", "null", "[]", "{}", "\"x\"", #"{"type":null}"#, #"{"type":"join","channel":"a","channel":"b"}"#,
                #"{"type":"message","channel":"room","content":"\ud800"}"#, #"{"type":"typing","channel":"room","typing":"yes"}"#,
                String(repeating: "{\"a\":", count: 3000), "{\"type\":\"ping\"} trailing",
            ]
            for g in garbage {
                try send(bad, g)
                let m = try bad.nextJSON()
                XCTAssertEqual(m["type"] as? String, "error", "\(backend) \(g.prefix(40))")
            }
            // Invalid UTF-8 closes only that connection, with 1007.
            try bad.send(.text, [0x7B, 0xFF, 0x7D])
            XCTAssertEqual(try bad.receive(), .close(1007))
            try send(good, #"{"type":"message","channel":"room","content":"still fine"}"#)
            XCTAssertEqual(try good.nextJSON()["content"] as? String, "still fine")
        }
    }

    func testOversizedMessageClosesWith1009() throws {
        try eachBackend(configure: { $0.maxMessageBytes = 1000 }) { server, _ in
            let a = try server.client("alice")
            try a.sendText(String(repeating: "a", count: 1001))
            XCTAssertEqual(try a.receive(), .close(1009))
        }
    }

    // MARK: Backpressure and drain

    /// A member that never reads is cut off once its backlog passes the cap (the others see it
    /// go offline); the channel's other members keep receiving every message, in order, meanwhile.
    /// (The 4008 close frame itself is checked with a readable window in EchoConnectionTests.)
    func testSlowReaderNeverStallsTheChannel() throws {
        try eachBackend(configure: {
            $0.messageRate = 0
            $0.maxOutboundBytes = 64 * 1024
            $0.presenceGraceMillis = 0
        }) { server, backend in
            let slow = try server.client("slow")
            slow.socket.setReceiveBuffer(16 * 1024)
            try slow.join("room", expecting: ["slow"])
            let sender = try server.client("sender")
            try sender.join("room", expecting: ["sender", "slow"])
            let reader = try server.client("reader")
            try reader.join("room", expecting: ["reader", "sender", "slow"])
            try sender.expectPresence("reader", true, "room")
            let content = String(repeating: "x", count: 4000)
            var sawSlowLeave = [false, false]
            for n in 0..<2500 {  // well past what the kernel buffers on loopback (a few MiB)
                try send(sender, #"{"type":"message","channel":"room","content":"\#(n) \#(content)"}"#)
                for (i, ws) in [sender, reader].enumerated() {
                    var m = try ws.nextJSON()
                    if m["type"] as? String == "presence" {
                        XCTAssertEqual(m["user_id"] as? String, "slow")
                        XCTAssertEqual(m["online"] as? Bool, false)
                        sawSlowLeave[i] = true
                        m = try ws.nextJSON()
                    }
                    XCTAssertEqual((m["content"] as? String)?.hasPrefix("\(n) "), true, "\(backend)")
                }
            }
            XCTAssertEqual(sawSlowLeave, [true, true], "\(backend): the slow reader was never cut off")
        }
    }

    func testDrainClosesEveryClientWith1001AndRefusesUpgrades() throws {
        try eachBackend { server, backend in
            let clients = try (0..<6).map { try server.client("u\($0)") }
            server.hub!.drain(windowMillis: 0)
            for ws in clients { XCTAssertEqual(try ws.receive(), .close(1001), "\(backend)") }
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + server.token("late")).0, 503)
            let socket = try TestSocket(port: server.port)
            try socket.write("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try socket.readHTTPResponse().head.status, 503)
        }
    }
}
