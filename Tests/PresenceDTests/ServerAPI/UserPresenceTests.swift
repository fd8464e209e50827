import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// `GET /api/v1/presence?user=U1,U2,…` (docs/protocol.md, "User presence") over real sockets on
/// every backend: authorisation, validation, request order, online / offline / never seen,
/// `last_seen` within a second of the close; in Redis mode across two instances, and a crashed
/// instance's user going offline within PRESENCE_TTL.
final class UserPresenceTests: XCTestCase {
    /// Long enough to tell the close time from the end of the grace period.
    static let grace: Int64 = 1_500

    func testAuthorisationAndValidation() throws {
        for backend in availableBackends {
            let server = try PresenceDetails.instance(backend, redis: nil, grace: Self.grace)
            defer { server.stop() }
            let port = server.port
            XCTAssertEqual(try PresenceDetails.users(port, "alice", bearer: nil).status, 401, "\(backend)")
            XCTAssertEqual(try PresenceDetails.users(port, "alice", bearer: "wrong-token-0123456789").status, 401)
            XCTAssertEqual(try PresenceDetails.users(port, "alice", bearer: server.token("alice")).status, 401, "a user's JWT")
            let (_, unauthorized) = try ServerProbe.exchange(port, "GET /api/v1/presence?user=alice HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertTrue(unauthorized.contains(#""code":"unauthorized""#), unauthorized)
            let tooMany = (0...UserPresence.maxQueryUsers).map { "u\($0)" }.joined(separator: ",")
            for bad in [
                "", ",", "a,,b", "a,", tooMany, "a%01b", String(repeating: "x", count: UserPresence.maxUserIDBytes + 1),
                "alice&channel=room",
            ] {
                let (status, _, body) = try PresenceDetails.users(port, bad)
                XCTAssertEqual(status, 400, "\(backend) \(bad.prefix(40)): \(body)")
                XCTAssertTrue(body.contains(#""code":"bad_request""#), body)
            }
            let most = (0..<UserPresence.maxQueryUsers).map { "u\($0)" }.joined(separator: ",")
            let (status, answers, body) = try PresenceDetails.users(port, most)
            XCTAssertEqual(status, 200, body)
            XCTAssertEqual(answers.map(\.user), (0..<UserPresence.maxQueryUsers).map { "u\($0)" }, "request order")
            let (_, post) = try ServerProbe.exchange(
                port,
                "POST /api/v1/presence?user=a HTTP/1.1\r\nHost: x\r\n"
                    + "Authorization: Bearer \(PresenceDetails.apiToken)\r\nContent-Length: 0\r\n\r\n")
            XCTAssertTrue(post.contains("method_not_allowed"), post)
        }
    }

    /// Without SERVER_API_TOKEN there is no server API: the query is the JWT presence endpoint's,
    /// which wants a token, then a channel.
    func testWithoutTheServerAPITokenTheQueryGoesToTheJWTEndpoint() throws {
        let server = try PresenceDetails.instance(availableBackends[0], redis: nil, grace: Self.grace, apiToken: nil)
        defer { server.stop() }
        XCTAssertEqual(try ServerProbe.get(server.port, "/api/v1/presence?user=alice", bearer: PresenceDetails.apiToken).head.status, 401)
        let (head, body) = try ServerProbe.get(server.port, "/api/v1/presence?user=alice", bearer: server.token("reader"))
        XCTAssertEqual(head.status, 400, body)
        XCTAssertTrue(body.contains("invalid_channel"), body)
    }

    func testOnlineOfflineAndNeverSeenEmbedded() throws {
        for backend in availableBackends {
            let server = try PresenceDetails.instance(backend, redis: nil, grace: Self.grace)
            defer { server.stop() }
            try onlineOfflineAndNeverSeen(a: server, b: server, "\(backend) embedded")
        }
    }

    func testOnlineOfflineAndNeverSeenAcrossRedisInstances() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()  // fresh: no presence left by the previous backend's run
            let a = try PresenceDetails.instance(backend, redis: redis, grace: Self.grace)
            let b = try PresenceDetails.instance(backend, redis: redis, grace: Self.grace)
            defer {
                a.stop()
                b.stop()
            }
            try onlineOfflineAndNeverSeen(a: a, b: b, "\(backend) Redis")
        }
    }

    /// alice connects on `a` (joining no channel), asked about on `b`; she opens a second
    /// connection on `b`, closes the first (still online), then the second (offline, last_seen
    /// = that close).
    private func onlineOfflineAndNeverSeen(a: TestServer, b: TestServer, _ label: String) throws {
        let query = "ghost,alice,bob"
        let before = try PresenceDetails.users(b.port, query)
        XCTAssertEqual(before.status, 200, before.body)
        XCTAssertEqual(
            before.answers,
            [
                .init(user: "ghost", online: false, lastSeen: nil), .init(user: "alice", online: false, lastSeen: nil),
                .init(user: "bob", online: false, lastSeen: nil),
            ], "\(label): \(before.body)")

        let first = try PresenceDetails.client(a.port, "alice")
        try PresenceDetails.waitForUsers(b.port, query) { $0.map(\.online) == [false, true, false] }
        let online = try PresenceDetails.users(a.port, query)
        XCTAssertEqual(online.answers[1], .init(user: "alice", online: true, lastSeen: nil), "\(label): \(online.body)")
        XCTAssertTrue(online.body.contains(#"{"user_id":"alice","online":true,"last_seen":null}"#), online.body)

        let second = try PresenceDetails.client(b.port, "alice")
        pause(millis: 200)  // the second connection's presence applied (Redis: its script sent)
        first.disconnect()
        pause(millis: Self.grace + 700)
        let stillOnline = try PresenceDetails.users(a.port, "alice")
        XCTAssertEqual(stillOnline.answers, [.init(user: "alice", online: true, lastSeen: nil)], "\(label): one connection left")

        let closedAt = UnixTime.nowMillis()
        second.disconnect()
        let answers = try PresenceDetails.waitForUsers(a.port, query) { $0.count == 3 && !$0[1].online }
        XCTAssertGreaterThanOrEqual(UnixTime.nowMillis() - closedAt, Self.grace - 100, "\(label): online through the grace period")
        let seen = answers[1].lastSeen.flatMap(PresenceDetails.millis(iso8601:))
        XCTAssertNotNil(seen, "\(label): \(answers)")
        XCTAssertLessThanOrEqual(abs((seen ?? 0) - closedAt), 1_000, "\(label): last_seen \(seen ?? 0) vs close \(closedAt)")
        XCTAssertEqual(answers[0], .init(user: "ghost", online: false, lastSeen: nil), label)
        XCTAssertEqual(answers[2], .init(user: "bob", online: false, lastSeen: nil), label)
        // Every instance answers the same.
        XCTAssertEqual(try PresenceDetails.users(b.port, query).answers, answers, label)
    }

    /// A crashed instance (SIGKILL, no cleanup) drops out within PRESENCE_TTL: its user goes
    /// offline for the server API — last_seen its last sign of life, before the crash — and for
    /// channel members (an `online:false` with that last_seen).
    func testTheUserOfACrashedInstanceGoesOfflineWithinTheTTL() throws {
        let ttl: Int64 = 3_000
        let redis = try RedisServerProcess()
        let a = try PresenceDetails.instance(availableBackends[0], redis: redis, ttl: ttl, grace: 300)
        defer { a.stop() }
        let b = try DaemonProcess(environment: [
            "REDIS_URL": redis.url(), "WS_TOKEN_SECRET": TestServer.secret,
            "PRESENCE_TTL": "3s", "PRESENCE_GRACE": "300ms", "THREADS": "2",
        ])
        try b.waitUntilReady()
        let alice = try PresenceDetails.client(a.port, "alice")
        _ = try alice.joinSnapshot("room", count: 1)
        let connectedAt = UnixTime.nowMillis()
        let dave = try PresenceDetails.client(b.port, "dave", name: "Dave")
        XCTAssertEqual(try dave.joinSnapshot("room", count: 2).count, 2)
        XCTAssertEqual(try alice.nextPresenceText(), #"{"type":"presence","user_id":"dave","name":"Dave","online":true,"channel":"room"}"#)
        try PresenceDetails.waitForUsers(a.port, "dave") { $0.first?.online == true }
        pause(millis: ttl / 3 + 500)  // at least one refresh of dave's entries

        let crashedAt = UnixTime.nowMillis()
        let crashedAtMono = EventLoop.monotonicMillis()
        b.crash()
        let answers = try PresenceDetails.waitForUsers(a.port, "dave", timeoutMillis: ttl + 5_000) { $0.first?.online == false }
        let took = EventLoop.monotonicMillis() - crashedAtMono
        XCTAssertLessThanOrEqual(took, ttl + 3_000, "offline \(took) ms after the crash")
        let seen = answers.first?.lastSeen.flatMap(PresenceDetails.millis(iso8601:))
        XCTAssertNotNil(seen, "\(answers)")
        if let seen {
            XCTAssertGreaterThanOrEqual(seen, connectedAt - 1_000, "last_seen \(seen): while dave was connected")
            XCTAssertLessThanOrEqual(seen, crashedAt + 500, "last_seen \(seen): no later than the crash \(crashedAt)")
        }

        var tv = timeval(tv_sec: Int(ttl / 1000) + 5, tv_usec: 0)
        setsockopt(alice.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let offline = try alice.nextPresenceText()
        let prefix = #"{"type":"presence","user_id":"dave","name":"Dave","online":false,"channel":"room","last_seen":""#
        XCTAssertTrue(offline.hasPrefix(prefix), offline)
        let frameSeen = PresenceDetails.millis(iso8601: String(offline.dropFirst(prefix.count).dropLast(2)))
        XCTAssertNotNil(frameSeen, offline)
        if let frameSeen {
            XCTAssertGreaterThanOrEqual(frameSeen, connectedAt - 1_000, offline)
            XCTAssertLessThanOrEqual(frameSeen, crashedAt + 500, offline)
        }
    }

    /// The time of a last connection is remembered across an instance's restart in Redis mode
    /// (it lives in Redis), and a user seen on one instance is known to a fresh one.
    func testLastSeenOutlivesTheInstanceInRedisMode() throws {
        let redis = try RedisServerProcess()
        let a = try PresenceDetails.instance(availableBackends[0], redis: redis, grace: Self.grace)
        let erin = try PresenceDetails.client(a.port, "erin")
        try PresenceDetails.waitForUsers(a.port, "erin") { $0.first?.online == true }
        let closedAt = UnixTime.nowMillis()
        erin.disconnect()
        try PresenceDetails.waitForUsers(a.port, "erin") { $0.first?.online == false }
        a.stop()
        let fresh = try PresenceDetails.instance(availableBackends[0], redis: redis, grace: Self.grace)
        defer { fresh.stop() }
        let answer = try PresenceDetails.users(fresh.port, "erin").answers.first
        XCTAssertEqual(answer?.online, false)
        XCTAssertLessThanOrEqual(
            abs((answer?.lastSeen.flatMap(PresenceDetails.millis(iso8601:)) ?? 0) - closedAt), 1_000, "\(String(describing: answer))")
    }
}
