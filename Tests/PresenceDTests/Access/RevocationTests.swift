import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Revocation (docs/protocol.md, "Revocation") over real sockets on every backend:
/// `POST /api/v1/disconnect` by user and by session (here and, through Redis, on another instance)
/// closes with 4403; MAX_CONNECTION_AGE closes with 4401, spread; a secret retired by a reload
/// closes what it opened with 4401.
final class RevocationTests: XCTestCase {
    static let apiToken = "server-api-token-0123456789"

    private func client(
        _ port: UInt16, _ user: String, session: String? = nil, secret: String = TestServer.secret,
        timeoutMillis: Int = 5_000
    ) throws -> TestWebSocket {
        let token = TokenMinter(secret: secret, audience: "presenced").mint(userID: user, sessionID: session, now: UnixTime.now()).token
        return try TestWebSocket(port: port, path: "/ws?token=" + token, receiveTimeoutMillis: timeoutMillis)
    }

    private func disconnect(_ port: UInt16, _ json: String, bearer: String? = RevocationTests.apiToken) throws -> (Int, [String: Any]) {
        let (head, body) = try ServerProbe.post(port, "/api/v1/disconnect", json: json, bearer: bearer)
        return (head.status, ServerProbe.object(body))
    }

    func testDisconnectByUserAndBySessionClosesWith4403() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.serverAPIToken = Self.apiToken }
            defer { server.stop() }
            let aliceA = try client(server.port, "alice", session: "s-1")
            let aliceB = try client(server.port, "alice", session: "s-2")
            let bob = try client(server.port, "bob", session: "s-3")
            try aliceA.join("family", expecting: ["alice"])
            try bob.join("family", expecting: ["alice", "bob"])
            try aliceA.expectPresence("bob", true, "family")

            // Not authorised: no token, a wrong one, a user's JWT.
            XCTAssertEqual(try disconnect(server.port, #"{"user_id":"alice"}"#, bearer: nil).0, 401)
            XCTAssertEqual(try disconnect(server.port, #"{"user_id":"alice"}"#, bearer: "wrong-token-0123456789").0, 401)
            XCTAssertEqual(try disconnect(server.port, #"{"user_id":"alice"}"#, bearer: server.token("alice")).0, 401)
            for bad in ["", "[]", #"{}"#, #"{"user_id":""}"#, #"{"user_id":1}"#, #"{"user_id":"a","session_id":"b"}"#, #"{"user":"a"}"#] {
                XCTAssertEqual(try disconnect(server.port, bad).0, 400, bad)
            }

            let (status, answer) = try disconnect(server.port, #"{"session_id":"s-2"}"#)
            XCTAssertEqual(status, 200, "\(backend)")
            XCTAssertEqual(answer["disconnected"] as? Int, 1)
            try aliceB.expectClose(4403)
            try aliceA.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try aliceA.nextJSON()["type"] as? String, "pong", "\(backend): the other session stays")

            let (_, byUser) = try disconnect(server.port, #"{"user_id":"alice"}"#)
            XCTAssertEqual(byUser["disconnected"] as? Int, 1)
            try aliceA.expectClose(4403)
            try bob.expectPresence("alice", false, "family")
            XCTAssertEqual(try disconnect(server.port, #"{"user_id":"nobody"}"#).1["disconnected"] as? Int, 0)
        }
    }

    func testTheServerAPIDoesNotExistWithoutItsToken() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        XCTAssertEqual(try disconnect(server.port, #"{"user_id":"alice"}"#).0, 404)
    }

    /// In Redis mode every instance closes the user's connections; the answer counts this one's.
    func testDisconnectReachesEveryInstance() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()
            func instance() throws -> TestServer {
                let server = try TestServer(backend: backend, echo: false) {
                    $0.redisURL = redis.url()
                    $0.serverAPIToken = Self.apiToken
                }
                let end = EventLoop.monotonicMillis() + 10_000
                while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
                return server
            }
            let a = try instance(), b = try instance()
            defer {
                a.stop()
                b.stop()
            }
            let onA = try client(a.port, "alice", timeoutMillis: 15_000)
            let onB = try client(b.port, "alice", timeoutMillis: 15_000)
            let carolOnB = try client(b.port, "carol", timeoutMillis: 15_000)
            let (status, answer) = try disconnect(a.port, #"{"user_id":"alice"}"#)
            XCTAssertEqual(status, 200)
            XCTAssertEqual(answer["disconnected"] as? Int, 1, "\(backend): this instance's count")
            try onA.expectClose(4403)
            try onB.expectClose(4403)
            try carolOnB.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try carolOnB.nextJSON()["type"] as? String, "pong")
        }
    }

    /// MAX_CONNECTION_AGE: 4401 between 90 % and 100 % of the age, at different times for
    /// connections opened together.
    func testOldConnectionsAreClosedWith4401Spread() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.maxConnectionAgeMillis = 1_500 }
            defer { server.stop() }
            let opened = EventLoop.monotonicMillis()
            let clients = try (0..<16).map { try client(server.port, "u\($0)") }
            // Each read on its own thread: the time each close arrives, not when the test got to it.
            let closes = Lock([(code: ReceivedFrame?, at: Int64)]())
            let done = DispatchSemaphore(value: 0)
            for ws in clients {
                Thread {
                    let frame = try? ws.receiveMessage()
                    closes.withLock { $0.append((frame, EventLoop.monotonicMillis() - opened)) }
                    done.signal()
                }.start()
            }
            for _ in clients { XCTAssertEqual(done.wait(timeout: .now() + 10), .success) }
            let results = closes.withLock { $0 }
            XCTAssertEqual(results.map(\.code), Array(repeating: .close(4401), count: clients.count), "\(backend)")
            let closedAt = results.map(\.at)
            XCTAssertGreaterThanOrEqual(closedAt.min()!, 1_300, "\(backend): \(closedAt)")
            XCTAssertLessThan(closedAt.max()!, 2_500, "\(backend): \(closedAt)")
            XCTAssertGreaterThan(closedAt.max()! - closedAt.min()!, 20, "\(backend): spread, not all at once: \(closedAt)")
            let young = try client(server.port, "young")
            try young.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try young.nextJSON()["type"] as? String, "pong")
        }
    }

    /// A reload that retires the secret a connection was opened with closes it with 4401; the
    /// connections of secrets still listed stay.
    func testARetiredSecretClosesWhatItOpened() throws {
        let secretA = "secret-A-0123456789-abcdefghijklmnop", secretB = "secret-B-0123456789-abcdefghijklmnop"
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.tokenSecret = secretA }
            defer { server.stop() }
            let hub = server.hub!
            let old = try client(server.port, "old", secret: secretA)
            hub.reload(secrets: [secretB, secretA], allowedOrigins: server.config.allowedOrigins)
            let new = try client(server.port, "new", secret: secretB)
            try old.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try old.nextJSON()["type"] as? String, "pong", "\(backend): A is still the previous secret")
            hub.reload(secrets: [secretB], allowedOrigins: server.config.allowedOrigins)
            try old.expectClose(4401)
            try new.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try new.nextJSON()["type"] as? String, "pong", "\(backend)")
        }
    }
}
