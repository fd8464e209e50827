import Foundation
import Glibc
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// `AuthServiceClient` on a real event loop's HTTP client against real stand-in better-auth
/// servers (plain HTTP in-process, HTTPS through Python's `ssl`).
final class AuthServiceClientTests: StandInServerTestCase {
    /// One loop the lookups run on.
    private var loopServer: TestServer!

    override func setUpWithError() throws {
        try super.setUpWithError()
        loopServer = try TestServer(backend: availableBackends[0], threads: 1)
    }

    static let userBody = """
        {"session":{"id":"sess-1","userId":"u-42","expiresAt":"2099-01-01T00:00:00.000Z"},\
        "user":{"id":"u-42","name":"Ada","email":"ada@example.org","role":"admin","banned":false,"banExpires":null}}
        """

    override func tearDown() {
        super.tearDown()  // stops the servers first, so no lookup still waits on one
        loopServer.stop()
    }

    private func server(status: Int, body: String) throws -> StandInHTTPServer {
        try startServer { _ in StandInHTTPServer.response(status: status, body: body) }
    }

    /// Runs one lookup on the loop with a fresh HTTP client and waits for its answer (and
    /// whether it came on the loop's thread, from a later event than the call).
    private func lookup(
        _ client: AuthServiceClient, cookie: String = "better-auth.session_token=abc.def; theme=dark",
        requestID: String = "0af7651916cd43dd8448eb211c80319c",
        traceparent: String = "", caFile: String? = nil
    ) -> (SessionLookup, onLoop: Bool) {
        let box = Box()
        let semaphore = DispatchSemaphore(value: 0)
        loopServer.group.broadcast { loop in
            let http = LoopHTTPClient(loop: loop, caFile: caFile)
            var insideCall = true
            client.lookup(cookie: cookie, requestID: requestID, traceparent: traceparent, client: http) { result in
                withExtendedLifetime(http) {}
                box.set(result, onLoop: EventLoop.current === loop && !insideCall)
                semaphore.signal()
            }
            insideCall = false
        }
        XCTAssertEqual(semaphore.wait(timeout: .now() + 20), .success, "lookup never answered")
        return box.get()
    }

    /// Hands one result from the loop thread to the test thread.
    private final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (SessionLookup, Bool) = (.failed("unset"), false)
        func set(_ result: SessionLookup, onLoop: Bool) { lock.withLock { value = (result, onLoop) } }
        func get() -> (SessionLookup, onLoop: Bool) { lock.withLock { (value.0, onLoop: value.1) } }
    }

    // MARK: - Plain HTTP

    func testUserSessionForwardsCookieRequestIDAndTraceparent() throws {
        let server = try server(status: 200, body: Self.userBody)
        let client = AuthServiceClient(baseURL: server.baseURL)
        let (result, onLoop) = lookup(client)
        XCTAssertEqual(result, .user(id: "u-42", name: "Ada", role: "admin", sessionID: "sess-1"))
        XCTAssertTrue(onLoop, "done runs on the loop's thread, from a later event")

        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(server.requests.count, 1)
        XCTAssertEqual(request.requestLine, "GET /api/auth/get-session HTTP/1.1")
        XCTAssertEqual(request.values("Cookie"), ["better-auth.session_token=abc.def; theme=dark"])
        XCTAssertEqual(request.header("Host"), "127.0.0.1:\(server.port)")
        XCTAssertEqual(request.header("X-Request-ID"), "0af7651916cd43dd8448eb211c80319c")
        XCTAssertEqual(request.header("Accept"), "application/json")
        XCTAssertEqual(request.header("User-Agent"), "presenced")
        XCTAssertNotEqual(request.header("Connection"), "close", "the loop's client keeps connections")
        XCTAssertNil(request.header("Content-Length"))
        let traceparent = try XCTUnwrap(request.header("traceparent"))
        XCTAssertTrue(TraceParent.isValid(traceparent), traceparent)
        XCTAssertTrue(traceparent.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-"), "trace id comes from the request id")
        XCTAssertTrue(traceparent.hasSuffix("-01"))
    }

    func testCallerTraceparentIsForwardedWhenWellFormed() throws {
        let server = try server(status: 200, body: Self.userBody)
        let client = AuthServiceClient(baseURL: server.baseURL)
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        _ = lookup(client, requestID: "not-hex", traceparent: given)
        XCTAssertEqual(server.requests.first?.header("traceparent"), given)
        _ = lookup(client, requestID: "not-hex", traceparent: "garbage")
        let made = try XCTUnwrap(server.requests.last?.header("traceparent"))
        XCTAssertTrue(TraceParent.isValid(made), made)
    }

    func testBasePathIsAPrefix() throws {
        let server = try server(status: 200, body: Self.userBody)
        let client = AuthServiceClient(baseURL: server.baseURL + "/auth/")
        XCTAssertEqual(lookup(client).0, .user(id: "u-42", name: "Ada", role: "admin", sessionID: "sess-1"))
        XCTAssertEqual(server.requests.first?.requestLine, "GET /auth/api/auth/get-session HTTP/1.1")
    }

    func testNullBodyIsNoSession() throws {
        let server = try server(status: 200, body: "null")
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: server.baseURL)).0, .noSession)
    }

    func testObjectWithoutUserIsNoSession() throws {
        let server = try server(status: 200, body: #"{"session":null,"user":null}"#)
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: server.baseURL)).0, .noSession)
    }

    func test401IsNoSession() throws {
        let server = try server(status: 401, body: #"{"message":"Unauthorized"}"#)
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: server.baseURL)).0, .noSession)
    }

    func testBannedUserWithoutExpiryIsBanned() throws {
        let server = try server(
            status: 200, body: #"{"session":{"id":"s"},"user":{"id":"u","banned":true,"banReason":"spam","banExpires":null}}"#)
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: server.baseURL)).0, .banned)
    }

    func testBanExpiringInTheFutureIsBanned() throws {
        let server = try server(
            status: 200, body: #"{"session":{"id":"s"},"user":{"id":"u","banned":true,"banExpires":"2099-12-31T23:59:59.000Z"}}"#)
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: server.baseURL)).0, .banned)
    }

    func testBanThatExpiredIsUser() throws {
        let server = try server(
            status: 200,
            body: #"{"session":{"id":"s"},"user":{"id":"u","name":"Bo","banned":true,"banExpires":"2020-01-01T00:00:00.000Z"}}"#)
        XCTAssertEqual(
            lookup(AuthServiceClient(baseURL: server.baseURL)).0,
            .user(id: "u", name: "Bo", role: nil, sessionID: "s"))
    }

    func test500IsFailed() throws {
        let server = try server(status: 500, body: #"{"message":"boom"}"#)
        guard case .failed(let message) = lookup(AuthServiceClient(baseURL: server.baseURL)).0 else {
            return XCTFail("expected failed")
        }
        XCTAssertTrue(message.contains("500"), message)
    }

    func testGarbageBodyIsFailed() throws {
        let server = try server(status: 200, body: "<html>oops</html>")
        guard case .failed = lookup(AuthServiceClient(baseURL: server.baseURL)).0 else {
            return XCTFail("expected failed")
        }
    }

    func testMalformedResponseIsFailed() throws {
        let server = try startServer { _ in .raw(Array("HTTP/1.1 2000 What\r\n\r\n".utf8)) }
        guard case .failed(let message) = lookup(AuthServiceClient(baseURL: server.baseURL)).0 else {
            return XCTFail("expected failed")
        }
        XCTAssertFalse(message.contains("session_token"), "the cookie never appears in errors")
    }

    func testChunkedResponseBody() throws {
        let body = Array(Self.userBody.utf8)
        var wire = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        var offset = 0
        for size in [1, 17, 64, 1000] where offset < body.count {
            let piece = body[offset..<min(body.count, offset + size)]
            wire += String(piece.count, radix: 16) + ";ext=1\r\n" + String(decoding: piece, as: UTF8.self) + "\r\n"
            offset += piece.count
        }
        wire += "0\r\nX-Trailer: yes\r\n\r\n"
        let bytes = Array(wire.utf8)
        let server = try startServer { _ in .raw(bytes) }
        XCTAssertEqual(
            lookup(AuthServiceClient(baseURL: server.baseURL)).0,
            .user(id: "u-42", name: "Ada", role: "admin", sessionID: "sess-1"))
    }

    func testSilentServerTimesOut() throws {
        let server = try startServer { _ in .silent }
        let client = AuthServiceClient(baseURL: server.baseURL, timeoutMillis: 500)
        let start = Date()
        XCTAssertEqual(lookup(client).0, .timedOut)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.45)
        XCTAssertLessThan(elapsed, 1.5)
    }

    func testSlowDripHitsTheOverallDeadline() throws {
        let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull".utf8)
        let server = try startServer { _ in .drip(reply, everyMillis: 50) }
        let client = AuthServiceClient(baseURL: server.baseURL, timeoutMillis: 500)
        let start = Date()
        XCTAssertEqual(lookup(client).0, .timedOut)
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.5)
    }

    func testNothingListeningIsFailed() throws {
        let port = try unusedPort()
        let start = Date()
        guard case .failed(let message) = lookup(AuthServiceClient(baseURL: "http://127.0.0.1:\(port)")).0 else {
            return XCTFail("expected failed")
        }
        XCTAssertTrue(message.contains("refused"), message)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    func testInvalidBaseURLFails() {
        let (result, onLoop) = lookup(AuthServiceClient(baseURL: "ftp://example.org"))
        XCTAssertEqual(result, .failed("invalid AUTH_SERVICE_URL"))
        XCTAssertTrue(onLoop)
    }

    func testOnlyTheSessionCookieIsWorthACall() {
        let client = AuthServiceClient(baseURL: "http://127.0.0.1:1")
        XCTAssertTrue(client.carriesSession("better-auth.session_token=a"))
        XCTAssertTrue(client.carriesSession("theme=dark; better-auth.session_token=a"))
        XCTAssertTrue(client.carriesSession("__Secure-better-auth.session_token=a"))
        XCTAssertTrue(client.carriesSession(" __Host-better-auth.session_token=a ; x=y"))
        XCTAssertFalse(client.carriesSession("theme=dark"))
        XCTAssertFalse(client.carriesSession("better-auth.session_tokens=a"))
        XCTAssertFalse(client.carriesSession("xbetter-auth.session_token=a"))
        XCTAssertFalse(client.carriesSession(""))
        let custom = AuthServiceClient(baseURL: "http://127.0.0.1:1", sessionCookie: "casa.sid")
        XCTAssertTrue(custom.carriesSession("casa.sid=1"))
        XCTAssertFalse(custom.carriesSession("better-auth.session_token=a"))
    }

    // MARK: - Interpretation

    func testBanExpiresAsMilliseconds() {
        let now: Int64 = 1_750_000_000_000
        func answer(_ expires: String) -> SessionLookup {
            let body = #"{"session":{"id":"s"},"user":{"id":"u","banned":true,"banExpires":\#(expires)}}"#
            return AuthServiceClient.interpret(
                .success(OutboundResponse(status: 200, headers: [:], body: Array(body.utf8))), nowMillis: now)
        }
        XCTAssertEqual(answer("\(now + 60_000)"), .banned)
        XCTAssertEqual(answer("\(now - 60_000)"), .user(id: "u", name: nil, role: nil, sessionID: "s"))
        XCTAssertEqual(answer(#""2025-06-15T15:06:40.000+02:00""#), .user(id: "u", name: nil, role: nil, sessionID: "s"))
        XCTAssertEqual(answer(#""not a date""#), .banned, "an unreadable expiry keeps the ban")
    }

    func testTransportErrorsMapToFailedAndTimedOut() {
        XCTAssertEqual(AuthServiceClient.interpret(.failure(.timeout), nowMillis: 0), .timedOut)
        XCTAssertEqual(AuthServiceClient.interpret(.failure(.tls("x")), nowMillis: 0), .failed("TLS failed: x"))
        let redirect = OutboundResponse(status: 302, headers: ["Location": "/login"], body: [])
        XCTAssertEqual(AuthServiceClient.interpret(.success(redirect), nowMillis: 0), .failed("auth service answered 302"))
    }

    // MARK: - HTTPS

    func testHTTPSWithCAFile() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let issued = try pki.issue("server", subjectAltName: "DNS:localhost,IP:127.0.0.1")
        let server = try PythonTLSServer(certificate: issued.certificate, key: issued.key, body: Self.userBody)
        defer { server.stop() }
        let expected = SessionLookup.user(id: "u-42", name: "Ada", role: "admin", sessionID: "sess-1")
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: "https://127.0.0.1:\(server.port)"), caFile: pki.caFile).0, expected)
        XCTAssertEqual(lookup(AuthServiceClient(baseURL: "https://localhost:\(server.port)"), caFile: pki.caFile).0, expected)
    }

    func testHTTPSRefusesCertificateForAnotherHost() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let issued = try pki.issue("other", subjectAltName: "DNS:other.example")
        let server = try PythonTLSServer(certificate: issued.certificate, key: issued.key, body: Self.userBody)
        defer { server.stop() }
        for host in ["127.0.0.1", "localhost"] {
            let client = AuthServiceClient(baseURL: "https://\(host):\(server.port)")
            guard case .failed(let message) = lookup(client, caFile: pki.caFile).0 else { return XCTFail("expected failed for \(host)") }
            XCTAssertTrue(message.contains("certificate verify failed"), message)
        }
    }

    func testHTTPSRefusesAnUntrustedCA() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let issued = try pki.issue("server", subjectAltName: "DNS:localhost,IP:127.0.0.1")
        let server = try PythonTLSServer(certificate: issued.certificate, key: issued.key, body: Self.userBody)
        defer { server.stop() }
        guard case .failed(let message) = lookup(AuthServiceClient(baseURL: "https://127.0.0.1:\(server.port)")).0 else {
            return XCTFail("the system store must not trust a test CA")
        }
        XCTAssertTrue(message.contains("certificate verify failed"), message)
    }

    /// A loopback port nobody listens on (bound, then released).
    private func unusedPort() throws -> UInt16 {
        let probe = try StandInHTTPServer { _ in .silent }
        let port = probe.port
        probe.stop()
        return port
    }
}
