import Foundation
import Glibc
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// CHANNEL_AUTH_URL (docs/protocol.md, "The access check") over real sockets on every backend,
/// against a real HTTP stand-in for family-hub's access endpoint: what it is asked, what each
/// answer means, that a join waiting for it is nothing yet, that one (user, channel) is asked once
/// however many joins arrive, the cache, the presence endpoint behind the same check, metrics, and
/// the start-up guard.
final class ChannelAccessTests: XCTestCase {
    private func server(
        _ backend: IOBackendKind, _ service: ChannelAccessStandIn, threads: Int = 2,
        configure: (inout Config) -> Void = { _ in }
    ) throws -> TestServer {
        try TestServer(backend: backend, threads: threads, echo: false) {
            $0.channelAuthURL = service.url
            $0.channelAuthToken = "access-token-for-tests"
            configure(&$0)
        }
    }

    /// A client whose token carries a role and a session (sent to the service).
    private func client(
        _ server: TestServer, _ user: String, role: String? = nil, session: String? = nil,
        channels: [String]? = nil
    ) throws -> TestWebSocket {
        let token = TokenMinter(secret: TestServer.secret, audience: "presenced")
            .mint(userID: user, role: role, sessionID: session, channels: channels, now: UnixTime.now()).token
        return try TestWebSocket(port: server.port, path: "/ws?token=" + token)
    }

    private func join(_ ws: TestWebSocket, _ channel: String) throws {
        try ws.sendText(#"{"type":"join","channel":"\#(channel)"}"#)
    }

    func testTheServiceDecidesAndIsAskedAsTheContractSays() throws {
        let service = try ChannelAccessStandIn(families: ["alice": ["family:1"]])
        for backend in availableBackends {
            let server = try server(backend, service)
            defer { server.stop() }
            let alice = try client(server, "alice", role: "child", session: "sess-a")
            let before = service.checks.count
            try alice.join("family:1", expecting: ["alice"])
            let check = try XCTUnwrap(service.checks.dropFirst(before).first)
            XCTAssertEqual(check.user, "alice")
            XCTAssertEqual(check.channel, "family:1")
            XCTAssertEqual(check.role, .some("child"))
            XCTAssertEqual(check.sessionID, .some("sess-a"))
            XCTAssertEqual(check.authorization, "Bearer access-token-for-tests")
            XCTAssertNotNil(check.requestID)
            XCTAssertTrue(TraceParent.isValid(check.traceparent ?? ""), "\(check)")

            // {"allowed":false} and 403 refuse; 500, 404, a body that is not the object, and no
            // answer within 2 s are unavailable.
            try join(alice, "family:2")
            try alice.expectError("forbidden_channel", channel: "family:2")
            try join(alice, "http403:x")
            try alice.expectError("forbidden_channel", channel: "http403:x")
            for channel in ["http500:x", "http404:x", "garbage:x"] {
                try join(alice, channel)
                try alice.expectError("unavailable", channel: channel)
            }
            let started = EventLoop.monotonicMillis()
            try join(alice, "silent:x")
            try alice.expectError("unavailable", channel: "silent:x")
            let waited = EventLoop.monotonicMillis() - started
            XCTAssertGreaterThanOrEqual(waited, 1_900, "\(backend): the check's 2 s timeout")
            XCTAssertLessThan(waited, 4_000, "\(backend)")

            // A token without role or session sends null for both.
            let bob = try client(server, "bob")
            try join(bob, "family:1")
            try bob.expectError("forbidden_channel", channel: "family:1")
            let bobCheck = try XCTUnwrap(service.checks.last { $0.user == "bob" })
            XCTAssertEqual(bobCheck.role, .some(nil))
            XCTAssertEqual(bobCheck.sessionID, .some(nil))
            // The connection is still usable after every refusal.
            try alice.sendText(#"{"type":"message","channel":"family:1","content":"still here"}"#)
            XCTAssertEqual(try alice.nextJSON()["content"] as? String, "still here")
        }
    }

    /// A refused join reaches nobody: no presence, no messages in, no sending.
    func testARefusedJoinIsNothing() throws {
        let service = try ChannelAccessStandIn(families: ["bob": ["family:B"]])
        for backend in availableBackends {
            let server = try server(backend, service)
            defer { server.stop() }
            let bob = try client(server, "bob")
            try bob.join("family:B", expecting: ["bob"])
            let mallory = try client(server, "mallory")
            try join(mallory, "family:B")
            try mallory.expectError("forbidden_channel", channel: "family:B")
            try bob.sendText(#"{"type":"message","channel":"family:B","content":"private"}"#)
            XCTAssertEqual(try bob.nextJSON()["content"] as? String, "private")
            try mallory.sendText(#"{"type":"message","channel":"family:B","content":"spam"}"#)
            try mallory.expectError("not_joined", channel: "family:B")
            try mallory.sendText(#"{"type":"typing","channel":"family:B","typing":true}"#)
            try mallory.expectError("not_joined", channel: "family:B")
            mallory.expectSilence()
            bob.expectSilence()
        }
    }

    /// While the check is in flight the join is nothing: no messages, no presence, not counted;
    /// a leave or a close meanwhile cancels it (the answer then does nothing).
    func testAJoinWaitingForTheCheckIsNothingUntilAdmitted() throws {
        let service = try ChannelAccessStandIn(
            families: ["alice": ["family:1"], "bob": ["family:1"], "carol": ["family:1"]],
            delayMillis: 600)
        for backend in availableBackends {
            let server = try server(backend, service) { $0.channelAuthCacheMillis = 0 }
            defer { server.stop() }
            let bob = try client(server, "bob")
            try bob.join("family:1", expecting: ["bob"])
            let alice = try client(server, "alice")
            try join(alice, "family:1")
            pause(millis: 100)
            try bob.sendText(#"{"type":"message","channel":"family:1","content":"before"}"#)
            XCTAssertEqual(try bob.nextJSON()["content"] as? String, "before")
            // Admitted: the snapshot, then only what is sent from now on.
            var seen: Set<String> = []
            for _ in 0..<2 {
                let m = try alice.nextJSON()
                XCTAssertEqual(m["type"] as? String, "presence", "\(backend): nothing before the admission: \(m)")
                seen.insert(m["user_id"] as? String ?? "?")
            }
            XCTAssertEqual(seen, ["alice", "bob"])
            try bob.expectPresence("alice", true, "family:1")

            // carol joins and leaves before the answer: bob never sees her, she gets nothing.
            let carol = try client(server, "carol")
            try join(carol, "family:1")
            try carol.sendText(#"{"type":"leave","channel":"family:1"}"#)
            pause(millis: 900)
            carol.expectSilence()
            bob.expectSilence()
            // dave's connection closes while his check is in flight: nothing either, no crash.
            service.allow("dave", "family:1")
            let dave = try client(server, "dave")
            try join(dave, "family:1")
            dave.disconnect()
            pause(millis: 900)
            bob.expectSilence()
            let members = try ServerProbe.get(
                server.port, "/api/v1/presence?channel=family:1", bearer: server.token("bob", channels: ["family:1"]))
            XCTAssertEqual(
                (try JSONSerialization.jsonObject(with: Data(members.body.utf8)) as? [[String: Any]])?.map { $0["user_id"] as? String },
                ["alice", "bob"], "\(backend): \(members.body)")
        }
    }

    /// Many joins of one (user, channel) at once — tabs, a reconnect storm — make one call, on
    /// whichever loop asks first; every join waits for that answer.
    func testManyJoinsOfOneChannelMakeOneCall() throws {
        let service = try ChannelAccessStandIn(families: ["alice": ["family:1"]], delayMillis: 400)
        for backend in availableBackends {
            let server = try server(backend, service)
            defer { server.stop() }
            let tabs = try (0..<12).map { _ in try client(server, "alice") }
            let before = service.count("alice", "family:1")
            for tab in tabs { try join(tab, "family:1") }
            for tab in tabs {
                let m = try tab.nextJSON()
                XCTAssertEqual(m["type"] as? String, "presence", "\(m)")
                XCTAssertEqual(m["user_id"] as? String, "alice")
            }
            XCTAssertEqual(service.count("alice", "family:1") - before, 1, "\(backend): one call for twelve joins")
            let metrics = try ServerProbe.metrics(server.port)
            XCTAssertEqual(metrics[#"presenced_channel_auth_checks_total{result="allowed"}"#], 1, "\(backend)")
            XCTAssertEqual(metrics["presenced_channel_auth_coalesced_total"], 11, "\(backend)")
            XCTAssertEqual(metrics["presenced_channel_auth_duration_seconds_count"], 1, "\(backend)")
            XCTAssertGreaterThanOrEqual(metrics[#"presenced_channel_auth_duration_seconds_bucket{le="2.5"}"#] ?? 0, 0)
        }
    }

    /// Answers are reused for CHANNEL_AUTH_CACHE; `unavailable` never is; a `channels` claim
    /// decides alone, without a call.
    func testAnswersAreCachedButNotUnavailable() throws {
        let service = try ChannelAccessStandIn(families: ["alice": ["family:1"]])
        for backend in availableBackends {
            let server = try server(backend, service) { $0.channelAuthCacheMillis = 60_000 }
            defer { server.stop() }
            let first = try client(server, "alice")
            try first.join("family:1", expecting: ["alice"])
            try join(first, "family:2")
            try first.expectError("forbidden_channel", channel: "family:2")
            let calls = service.checks.count
            let second = try client(server, "alice")
            try second.join("family:1", expecting: ["alice"])
            try join(second, "family:2")
            try second.expectError("forbidden_channel", channel: "family:2")
            XCTAssertEqual(service.checks.count, calls, "\(backend): both answers came from the cache")
            try join(second, "http500:x")
            try second.expectError("unavailable", channel: "http500:x")
            try join(second, "http500:x")
            try second.expectError("unavailable", channel: "http500:x")
            XCTAssertEqual(service.checks.count, calls + 2, "\(backend): unavailable is asked again")
            let metrics = try ServerProbe.metrics(server.port)
            XCTAssertEqual(metrics["presenced_channel_auth_cache_hits_total"], 2, "\(backend)")
            XCTAssertEqual(metrics[#"presenced_channel_auth_checks_total{result="refused"}"#], 1, "\(backend)")
            XCTAssertEqual(metrics[#"presenced_channel_auth_checks_total{result="unavailable"}"#], 2, "\(backend)")

            // A channels claim: no call, and the claim alone decides (even against the service).
            let claimed = try client(server, "alice", channels: ["family:9"])
            try claimed.join("family:9", expecting: ["alice"])
            try join(claimed, "family:1")
            try claimed.expectError("forbidden_channel", channel: "family:1")
            XCTAssertEqual(service.checks.count, calls + 2, "\(backend): a channels claim is never sent to the service")
        }
    }

    /// A channels claim belongs to its connection: the next connection in the freed slot without
    /// one is decided by the service, and a later one with the claim is held to it.
    func testAChannelsClaimEndsWithItsConnection() throws {
        let service = try ChannelAccessStandIn(families: ["alice": ["family:1"]])
        for backend in availableBackends {
            let server = try server(backend, service, threads: 1)  // one loop: the freed slot is the next one's
            defer { server.stop() }
            let claimed = try client(server, "alice", channels: ["family:9"])
            try claimed.join("family:9", expecting: ["alice"])
            claimed.disconnect()
            Thread.sleep(forTimeInterval: 0.3)  // the close is handled: its slot is free again
            let plain = try client(server, "alice")
            try plain.join("family:1", expecting: ["alice"])
            plain.disconnect()
            Thread.sleep(forTimeInterval: 0.3)
            let again = try client(server, "alice", channels: ["family:9"])
            try join(again, "family:1")
            try again.expectError("forbidden_channel", channel: "family:1")
        }
    }

    /// The cache's rules with explicit times: admissions for the configured time, refusals at
    /// most 5 s, unavailable never; a question in flight collects the waiters.
    func testCacheRules() {
        let cache = ChannelAccessCache(allowedMillis: 60_000)
        let key = ChannelAccessCache.Key(user: "u", channel: "c")
        let mailbox = Mailbox(backend: try! EpollBackend())
        let waiter = ChannelAccessCache.Waiter(loop: 0, mailbox: mailbox, done: { _ in })
        guard case .ask = cache.lookup(key, now: 0, waiter: waiter) else { return XCTFail("the first asks") }
        guard case .waiting = cache.lookup(key, now: 1, waiter: waiter) else { return XCTFail("the second waits") }
        XCTAssertNil(cache.cached(key, now: 1), "nothing cached while asking")
        XCTAssertEqual(cache.answer(key, .allowed, now: 10).count, 2)
        XCTAssertEqual(cache.cached(key, now: 60_009), .allowed)
        XCTAssertNil(cache.cached(key, now: 60_010))
        guard case .ask = cache.lookup(key, now: 70_000, waiter: waiter) else { return XCTFail("expired: ask again") }
        _ = cache.answer(key, .refused, now: 70_000)
        XCTAssertEqual(cache.cached(key, now: 74_999), .refused)
        XCTAssertNil(cache.cached(key, now: 75_000), "a refusal is kept 5 s at most")
        guard case .ask = cache.lookup(key, now: 80_000, waiter: waiter) else { return XCTFail("ask again") }
        _ = cache.answer(key, .unavailable, now: 80_000)
        XCTAssertNil(cache.cached(key, now: 80_000), "unavailable is never kept")
        let short = ChannelAccessCache(allowedMillis: 1_000)
        XCTAssertEqual(short.refusedMillis, 1_000, "a refusal never outlives an admission")
        let bounded = ChannelAccessCache(allowedMillis: 60_000, maxEntries: 100)
        for i in 0..<1_000 {
            let k = ChannelAccessCache.Key(user: "u\(i)", channel: "c")
            if case .ask = bounded.lookup(k, now: 0, waiter: waiter) { _ = bounded.answer(k, .allowed, now: 0) }
        }
        XCTAssertLessThanOrEqual(bounded.count, 100, "the table stays bounded")
    }

    /// `GET /api/v1/presence` is behind the same check: 403 when refused, 503 when unavailable.
    func testThePresenceEndpointIsBehindTheSameCheck() throws {
        let service = try ChannelAccessStandIn(families: ["alice": ["family:1"]])
        for backend in availableBackends {
            let server = try server(backend, service)
            defer { server.stop() }
            XCTAssertEqual(
                try ServerProbe.get(server.port, "/api/v1/presence?channel=family:1", bearer: server.token("alice")).head.status, 200)
            let (refused, body) = try ServerProbe.get(server.port, "/api/v1/presence?channel=family:2", bearer: server.token("alice"))
            XCTAssertEqual(refused.status, 403, "\(backend)")
            XCTAssertEqual(ServerProbe.object(body)["code"] as? String, "forbidden_channel")
            XCTAssertEqual(
                try ServerProbe.get(server.port, "/api/v1/presence?channel=http500:x", bearer: server.token("alice")).head.status, 503)
            // Cached: the same answers without a call.
            let calls = service.checks.count
            XCTAssertEqual(
                try ServerProbe.get(server.port, "/api/v1/presence?channel=family:2", bearer: server.token("alice")).head.status, 403)
            XCTAssertEqual(
                try ServerProbe.get(server.port, "/api/v1/presence?channel=family:1", bearer: server.token("alice")).head.status, 200)
            XCTAssertEqual(service.checks.count, calls)
        }
    }

    /// With AUTH_SERVICE_URL (browser tokens, no channels claim) the start needs CHANNEL_AUTH_URL
    /// or CHANNELS_OPEN=1 (exit 78 naming CHANNEL_AUTH_URL otherwise); with both, the service decides.
    func testTheStartUpGuard() throws {
        let base = ["WS_TOKEN_SECRET": TestServer.secret, "AUTH_SERVICE_URL": "http://127.0.0.1:1", "PATH": "/usr/bin:/bin"]
        let refused = try DaemonProcess.run([], environment: base)
        XCTAssertEqual(refused.status, 78)
        XCTAssertTrue(refused.err.hasPrefix("presenced: invalid CHANNEL_AUTH_URL: required with AUTH_SERVICE_URL"), refused.err)
        XCTAssertEqual(refused.err.split(separator: "\n").count, 1, "one line")
        XCTAssertEqual(try DaemonProcess.run(["check-config"], environment: base).status, 78)
        XCTAssertEqual(try DaemonProcess.run(["check-config"], environment: base.merging(["CHANNELS_OPEN": "1"]) { $1 }).status, 0)
        XCTAssertEqual(
            try DaemonProcess.run(["check-config"], environment: base.merging(["CHANNEL_AUTH_URL": "http://127.0.0.1:2/a"]) { $1 }).status,
            0)
        XCTAssertEqual(
            try DaemonProcess.run(["check-config"], environment: ["WS_TOKEN_SECRET": TestServer.secret]).status, 0,
            "without AUTH_SERVICE_URL family-hub mints the tokens (channels claim)")

        // Both set: the service decides and CHANNELS_OPEN is ignored (and said so).
        let service = try ChannelAccessStandIn(families: ["alice": ["family:1"]])
        let log = try TemporaryLogFile()
        let daemon = try DaemonProcess(
            environment: [
                "WS_TOKEN_SECRET": TestServer.secret, "AUTH_SERVICE_URL": "http://127.0.0.1:1",
                "CHANNEL_AUTH_URL": service.url, "CHANNELS_OPEN": "1", "LOG_LEVEL": "info",
            ],
            stdout: log.fd)
        let token = TokenMinter(secret: TestServer.secret, audience: "presenced").mint(userID: "alice", now: UnixTime.now()).token
        let alice = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token)
        try join(alice, "family:2")
        try alice.expectError("forbidden_channel", channel: "family:2")
        XCTAssertTrue(log.text().contains("CHANNELS_OPEN=1 is ignored"), log.text())
    }
}
