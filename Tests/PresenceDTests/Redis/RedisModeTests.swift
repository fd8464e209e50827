import Foundation
import Glibc
import RedisTestSupport
import TestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Two presenced instances sharing one real redis-server behave as one server
/// (docs/operations.md, "Scaling out").
final class RedisModeTests: XCTestCase {
    /// Receive timeout of the clients: generous, Redis round trips on a loaded CI machine.
    static let patience = 15_000

    private var redis: RedisServerProcess!

    override func setUpWithError() throws {
        redis = try RedisServerProcess()
    }

    override func tearDown() {
        redis = nil
    }

    /// An in-process instance in Redis mode; waits until Redis answers.
    private func instance(_ backend: IOBackendKind, ttl: Int64 = 30_000, grace: Int64 = 300) throws -> TestServer {
        let server = try TestServer(backend: backend, threads: 2, echo: false) { config in
            config.redisURL = self.redis.url()
            config.presenceTTLMillis = ttl
            config.presenceGraceMillis = grace
        }
        try waitUntil("Redis ready") { server.hub!.redisReady }
        return server
    }

    /// `/metrics` as name → value (unlabelled and labelled series alike).
    private func metrics(_ server: TestServer) throws -> [String: Double] {
        let socket = try TestSocket(port: server.port)
        try socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let (head, body) = try socket.readHTTPResponse()
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["content-type"], Metrics.contentType)
        var values: [String: Double] = [:]
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Double(parts[1]) { values[String(parts[0])] = v }
        }
        return values
    }

    private func waitUntil(_ what: String, timeoutMillis: Int64 = 10_000, _ condition: () -> Bool) throws {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while !condition() {
            if EventLoop.monotonicMillis() > end {
                XCTFail("timed out waiting for \(what)")
                throw SystemError(call: "wait for \(what)", errno: ETIMEDOUT)
            }
            pause(millis: 10)
        }
    }

    /// Whether `content`, sent by `sender` to "room" again and again, reaches `receiver` within
    /// 10 s (cross-instance delivery coming back after a Redis outage).
    private func deliveredAcross(from sender: TestWebSocket, to receiver: TestWebSocket, _ content: String) throws -> Bool {
        let start = EventLoop.monotonicMillis()
        while EventLoop.monotonicMillis() - start < 10_000 {
            try sender.sendText(#"{"type":"message","channel":"room","content":"\#(content)"}"#)
            var tv = timeval(tv_sec: 0, tv_usec: 300_000)
            setsockopt(receiver.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            while let m = try? receiver.nextJSON() {
                if m["type"] as? String == "message", m["content"] as? String == content { return true }
            }
        }
        return false
    }

    /// alice on `a` and bob on `b`, both in "room", alice told that bob came online.
    private func aliceAndBob(on a: TestServer, and b: TestServer) throws -> (TestWebSocket, TestWebSocket) {
        let alice = try a.client("alice", receiveTimeoutMillis: Self.patience)
        try alice.join("room", expecting: ["alice"])
        let bob = try b.client("bob", receiveTimeoutMillis: Self.patience)
        try bob.join("room", expecting: ["alice", "bob"])
        try alice.expectPresence("bob", true, "room")
        return (alice, bob)
    }

    func testMessagesTypingAndPresenceCrossInstances() throws {
        for backend in availableBackends {
            let a = try instance(backend), b = try instance(backend)
            defer {
                a.stop()
                b.stop()
            }
            let (alice, bob) = try aliceAndBob(on: a, and: b)

            try alice.sendText(#"{"type":"message","channel":"room","content":"hi from A"}"#)
            for ws in [alice, bob] {
                let m = try ws.nextJSON()
                XCTAssertEqual(m["type"] as? String, "message", "\(backend)")
                XCTAssertEqual(m["content"] as? String, "hi from A")
                XCTAssertEqual(m["sender"] as? String, "alice")
            }
            try bob.sendText(#"{"type":"typing","channel":"room","typing":true}"#)
            let t = try alice.nextJSON()
            XCTAssertEqual(t["type"] as? String, "typing", "\(backend)")
            XCTAssertEqual(t["user_id"] as? String, "bob")
            bob.expectSilence(millis: 200)  // typing goes to the other users only, and nothing twice

            // bob's tab closes while typing: alice hears typing stop, then — after the grace
            // period — bob go offline, once.
            bob.disconnect()
            let stop = try alice.nextJSON()
            XCTAssertEqual(stop["type"] as? String, "typing", "\(stop)")
            XCTAssertEqual(stop["typing"] as? Bool, false, "\(stop)")
            try alice.expectPresence("bob", false, "room")
            alice.expectSilence(millis: 500)
        }
    }

    /// A join reads presence only once this instance's subscription to the channel is taken: a
    /// message sent from another instance right after the joiner's snapshot arrives reaches it.
    /// (Before, about 1 join in 200 missed it: the snapshot came back before the SSUBSCRIBE.)
    func testAnEventFromElsewhereRightAfterAJoinIsNotMissed() throws {
        let a = try instance(availableBackends[0]), b = try instance(availableBackends[0])
        defer {
            a.stop()
            b.stop()
        }
        var missed: [Int] = []
        for i in 0..<200 {
            let channel = "fresh-\(i)"  // a channel instance A has not subscribed to yet
            let bob = try b.client("bob\(i)", receiveTimeoutMillis: Self.patience)
            try bob.join(channel, expecting: ["bob\(i)"])
            let alice = try a.client("alice\(i)", receiveTimeoutMillis: 2_000)
            try alice.join(channel, expecting: ["alice\(i)", "bob\(i)"])
            try bob.sendText(#"{"type":"message","channel":"\#(channel)","content":"right after"}"#)
            var got = false
            while !got, let m = try? alice.nextJSON() { got = m["type"] as? String == "message" }
            if !got { missed.append(i) }
            alice.disconnect()
            bob.disconnect()
        }
        XCTAssertEqual(missed, [], "joins that missed the message")
    }

    func testATokenUsedOnOneInstanceIsRefusedOnTheOther() throws {
        let backend = availableBackends[0]
        // Ready (as the test waits for it) means every loop's connection is up: tokens tried
        // straight after it, on whichever loop takes them, are checked in Redis, not in memory.
        let a = try instance(backend), b = try instance(backend)
        defer {
            a.stop()
            b.stop()
        }
        for user in ["carol", "dave", "erin", "frank", "grace", "heidi"] {
            let token = a.token(user)
            let first = try TestWebSocket(port: a.port, path: "/ws?token=" + token, receiveTimeoutMillis: Self.patience)
            defer { first.disconnect() }
            let socket = try TestSocket(port: b.port)
            try socket.write(
                "GET /ws?token=\(token) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            let (head, body) = try socket.readHTTPResponse()
            XCTAssertEqual(head.status, 401, user)
            XCTAssertTrue(String(decoding: body, as: UTF8.self).contains("replayed"), String(decoding: body, as: UTF8.self))
        }
        for server in [a, b] {
            XCTAssertEqual(try metrics(server)["presenced_tokens_checked_in_process_only_total"], 0, "every check went to Redis")
        }
    }

    /// A crashed instance's users go offline for the others within PRESENCE_TTL and a little,
    /// announced once on every surviving instance (two survivors here).
    func testUsersOfAKilledInstanceGoOfflineWithinTheTTL() throws {
        let ttl: Int64 = 3_000
        let a = try instance(availableBackends[0], ttl: ttl), c = try instance(availableBackends[0], ttl: ttl)
        defer {
            a.stop()
            c.stop()
        }
        let b = try DaemonProcess(environment: [
            "REDIS_URL": redis.url(), "WS_TOKEN_SECRET": TestServer.secret,
            "PRESENCE_TTL": "3s", "PRESENCE_GRACE": "300ms", "THREADS": "2",
        ])
        let alice = try a.client("alice", receiveTimeoutMillis: Self.patience)
        try alice.join("room", expecting: ["alice"])
        let erin = try c.client("erin", receiveTimeoutMillis: Self.patience)
        try erin.join("room", expecting: ["alice", "erin"])
        try alice.expectPresence("erin", true, "room")
        try b.waitUntilReady()
        let token = a.token("dave")
        let dave = try TestWebSocket(port: b.port, path: "/ws?token=" + token, receiveTimeoutMillis: Self.patience)
        try dave.join("room", expecting: ["alice", "dave", "erin"])
        try alice.expectPresence("dave", true, "room")
        try erin.expectPresence("dave", true, "room")

        let killedAt = EventLoop.monotonicMillis()
        b.crash()
        for survivor in [alice, erin] {
            var tv = timeval(tv_sec: Int(ttl / 1000) + 5, tv_usec: 0)
            setsockopt(survivor.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            try survivor.expectPresence("dave", false, "room")
        }
        let took = EventLoop.monotonicMillis() - killedAt
        XCTAssertLessThanOrEqual(took, ttl + 3_000, "offline announced \(took) ms after the crash")
        alice.expectSilence(millis: 1_000)  // once on each instance
        erin.expectSilence(millis: 100)
    }

    /// PRESENCE_GRACE across instances: bob reloads the page and comes back through the other
    /// instance within the grace period — nobody sees him go offline or come online again.
    func testAReconnectToAnotherInstanceWithinTheGraceDoesNotFlap() throws {
        let backend = availableBackends[0]
        let a = try instance(backend, grace: 1_500), b = try instance(backend, grace: 1_500)
        defer {
            a.stop()
            b.stop()
        }
        let (alice, bob) = try aliceAndBob(on: a, and: b)
        bob.disconnect()
        pause(millis: 300)
        let again = try a.client("bob", receiveTimeoutMillis: Self.patience)
        try again.join("room", expecting: ["alice", "bob"])
        alice.expectSilence(millis: 2_500)  // past the grace period: no offline, no second online
        // And a real leave still ends in one offline.
        again.disconnect()
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(alice.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        try alice.expectPresence("bob", false, "room")
    }

    /// Redis stops and comes back: both instances keep serving, and cross-instance delivery works
    /// again within 10 s.
    func testInstancesRecoverWhenRedisRestarts() throws {
        let backend = availableBackends[0]
        let a = try instance(backend), b = try instance(backend)
        defer {
            a.stop()
            b.stop()
        }
        let (alice, bob) = try aliceAndBob(on: a, and: b)

        redis.stop()
        try waitUntil("readyz 503") { !a.hub!.redisReady && !b.hub!.redisReady }
        // Local fan-out goes on without Redis.
        let carol = try a.client("carol", receiveTimeoutMillis: Self.patience)
        try carol.sendText(#"{"type":"join","channel":"room"}"#)
        _ = try carol.nextJSON()
        try alice.sendText(#"{"type":"message","channel":"room","content":"during the outage"}"#)
        var sawLocal = false
        for _ in 0..<4 {
            let m = try carol.nextJSON()
            if m["type"] as? String == "message" {
                sawLocal = true
                break
            }
        }
        XCTAssertTrue(sawLocal, "local fan-out while Redis is down")

        try redis.start()
        try waitUntil("Redis back", timeoutMillis: 10_000) { a.hub!.redisReady && b.hub!.redisReady }
        // Cross-instance delivery again: bob (on B) hears alice (on A).
        XCTAssertTrue(try deliveredAcross(from: alice, to: bob, "after"), "cross-instance delivery within 10 s of Redis' return")
        // Presence was put back into the (empty) restarted Redis: both users, seen from B.
        var listed: [String] = []
        for _ in 0..<50 {
            let socket = try TestSocket(port: b.port)
            try socket.write("GET /api/v1/presence?channel=room HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(b.token("ops"))\r\n\r\n")
            let (head, body) = try socket.readHTTPResponse()
            // 503 while the loop that took this request has not reconnected yet (/readyz follows loop 0).
            XCTAssertTrue([200, 503].contains(head.status), "\(head.status)")
            let list = try JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]] ?? []
            listed = list.compactMap { $0["user_id"] as? String }.sorted()
            if listed == ["alice", "bob", "carol"] { break }
            pause(millis: 100)
        }
        XCTAssertEqual(listed, ["alice", "bob", "carol"], "presence re-registered after Redis came back")
    }

    /// A token used while Redis was away (checked in this process only) stays used when Redis
    /// returns: it is not accepted a second time. Such tokens are counted, and the log says so
    /// once per outage (and when the shared check is back).
    func testATokenUsedDuringAnOutageIsNotAcceptedAgainAfterIt() throws {
        let logPath = NSTemporaryDirectory() + "presenced-replay-log-\(getpid()).jsonl"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let savedFD = Log.fileDescriptor
        Log.fileDescriptor = logFD
        defer {
            Log.fileDescriptor = savedFD
            close(logFD)
            unlink(logPath)
        }
        let a = try instance(availableBackends[0])
        defer { a.stop() }
        func upgrade(_ token: String) throws -> Int {
            let socket = try TestSocket(port: a.port)
            try socket.write(ClientHandshake(host: "127.0.0.1:\(a.port)", path: "/ws?token=" + token).requestBytes())
            return try socket.readHTTPResponse().0.status
        }
        let token = a.token("alice")
        for outage in 1...2 {
            redis.stop()
            try waitUntil("Redis gone") { !a.hub!.redisReady }
            let used = outage == 1 ? token : a.token("bob")
            XCTAssertEqual(try upgrade(used), 101)
            XCTAssertEqual(try metrics(a)["presenced_tokens_checked_in_process_only_total"], Double(outage))
            try redis.start()
            try waitUntil("Redis back") { a.hub!.redisReady }
            XCTAssertEqual(try upgrade(used), 401, "replayed after the outage")
            XCTAssertEqual(try upgrade(a.token("carol")), 101, "checked in Redis again")
        }
        let log = try String(contentsOfFile: logPath, encoding: .utf8)
        XCTAssertEqual(log.components(separatedBy: "single-use tokens are checked in this process only").count - 1, 2, log)
        XCTAssertEqual(log.components(separatedBy: "single-use tokens are checked across instances again").count - 1, 2, log)
    }

    /// Redis frozen (SIGSTOP) past the command timeout, then thawed: local fan-out never stops,
    /// `/readyz` turns 503 while Redis does not answer and 200 again after, cross-instance
    /// delivery comes back.
    func testAFrozenRedisDoesNotStopLocalFanOut() throws {
        let backend = availableBackends[0]
        let a = try instance(backend), b = try instance(backend)
        defer {
            a.stop()
            b.stop()
        }
        let (alice, bob) = try aliceAndBob(on: a, and: b)
        let carol = try a.client("carol", receiveTimeoutMillis: Self.patience)
        try carol.sendText(#"{"type":"join","channel":"room"}"#)
        _ = try carol.nextJSON()

        kill(redis.pid, SIGSTOP)
        defer { kill(redis.pid, SIGCONT) }
        try waitUntil("readyz 503 while Redis is frozen") { !a.hub!.redisReady }
        for i in 0..<5 {
            try alice.sendText(#"{"type":"message","channel":"room","content":"frozen \#(i)"}"#)
            var seen = false
            for _ in 0..<6 where !seen {
                let m = try carol.nextJSON()
                seen = m["type"] as? String == "message" && m["content"] as? String == "frozen \(i)"
            }
            XCTAssertTrue(seen, "local fan-out while Redis is frozen (\(i))")
        }

        kill(redis.pid, SIGCONT)
        try waitUntil("Redis answers again", timeoutMillis: 10_000) { a.hub!.redisReady && b.hub!.redisReady }
        XCTAssertTrue(try deliveredAcross(from: alice, to: bob, "thawed"), "cross-instance delivery within 10 s of Redis thawing")
    }

    /// `rediss://`: two instances (child processes trusting a CA made here through SSL_CERT_FILE)
    /// exchange messages through a TLS-only redis-server; the certificate is checked.
    func testCrossInstanceDeliveryOverTLS() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let certificate = try pki.issue("localhost", subjectAltName: "DNS:localhost,IP:127.0.0.1")
        let server = try RedisServerProcess(tls: .init(certificate: certificate.certificate, key: certificate.key, caFile: pki.caFile))
        defer { server.stop() }
        let environment = [
            "REDIS_URL": "rediss://localhost:\(server.port)", "WS_TOKEN_SECRET": TestServer.secret,
            "SSL_CERT_FILE": pki.caFile, "THREADS": "2",
        ]
        let a = try DaemonProcess(environment: environment), b = try DaemonProcess(environment: environment)
        try a.waitUntilReady()
        try b.waitUntilReady()
        let minter = TokenMinter(secret: TestServer.secret, audience: "presenced")
        let alice = try TestWebSocket(
            port: a.port, path: "/ws?token=" + minter.mint(userID: "alice", ttl: 60, now: UnixTime.now()).token,
            receiveTimeoutMillis: Self.patience)
        try alice.join("room", expecting: ["alice"])
        let bob = try TestWebSocket(
            port: b.port, path: "/ws?token=" + minter.mint(userID: "bob", ttl: 60, now: UnixTime.now()).token,
            receiveTimeoutMillis: Self.patience)
        try bob.join("room", expecting: ["alice", "bob"])
        try alice.expectPresence("bob", true, "room")
        try bob.sendText(#"{"type":"message","channel":"room","content":"over TLS"}"#)
        let m = try alice.nextJSON()
        XCTAssertEqual(m["content"] as? String, "over TLS", "\(m)")

        // The same server is refused when the CA is not trusted: /readyz stays 503.
        let untrusting = try DaemonProcess(environment: environment.merging(["SSL_CERT_FILE": "/dev/null"]) { $1 })
        pause(millis: 1_500)
        XCTAssertEqual(try untrusting.readyStatus(), 503)
    }

    /// `/metrics` shows Redis' state, traffic and round trips, and that it went away.
    func testMetricsShowRedisHealthErrorsAndRoundTrips() throws {
        let a = try instance(availableBackends[0])
        defer { a.stop() }
        let alice = try a.client("alice", receiveTimeoutMillis: Self.patience)
        try alice.join("room", expecting: ["alice"])
        let up = try metrics(a)
        XCTAssertEqual(up["presenced_redis_up"], 1)
        XCTAssertEqual(up["presenced_connections"], 1)
        XCTAssertGreaterThanOrEqual(up["presenced_redis_commands_total"] ?? 0, 3, "SET NX, join script, SSUBSCRIBE at least")
        XCTAssertGreaterThan(up["presenced_redis_rtt_seconds_count"] ?? 0, 0)
        XCTAssertEqual(up["presenced_redis_rtt_seconds_bucket{le=\"+Inf\"}"], up["presenced_redis_rtt_seconds_count"])

        redis.stop()
        try waitUntil("Redis down") { !a.hub!.redisReady }
        let down = try metrics(a)
        XCTAssertEqual(down["presenced_redis_up"], 0)
        XCTAssertGreaterThan(down["presenced_redis_disconnects_total"] ?? 0, up["presenced_redis_disconnects_total"] ?? 0)
        // Presence cannot be read from Redis now: 503, not an empty list.
        let socket = try TestSocket(port: a.port)
        try socket.write("GET /api/v1/presence?channel=room HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(a.token("ops"))\r\n\r\n")
        let (head, body) = try socket.readHTTPResponse()
        XCTAssertEqual(head.status, 503, String(decoding: body, as: UTF8.self))
    }
}
