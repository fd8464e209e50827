import Foundation
import Glibc
import TestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// The holes issue 16's review found, one test each
/// (docs/operations.md, "Trust boundaries (many families on one deployment)"), over real sockets on
/// every backend where a socket is involved. Each of these failed against the code before its fix.
final class TrustBoundaryTests: XCTestCase {
    static let secret = "trust-boundary-secret-0123456789abcdef"

    /// One request on a fresh connection (optionally from another loopback source address).
    private func exchange(
        _ port: UInt16, _ request: String, source: String? = nil,
        timeoutMillis: Int = 10_000
    ) throws -> (head: HTTPResponseHead, body: String) {
        try Self.exchange(port, request, source: source, timeoutMillis: timeoutMillis)
    }

    private static func exchange(
        _ port: UInt16, _ request: String, source: String? = nil,
        timeoutMillis: Int = 10_000
    ) throws -> (head: HTTPResponseHead, body: String) {
        let socket = try TestSocket(port: port, source: source, receiveTimeoutMillis: timeoutMillis)
        try socket.write(request)
        let (head, body) = try socket.readHTTPResponse()
        return (head, String(decoding: body, as: UTF8.self))
    }

    private func devTokenRequest(host: String, extra: String = "") -> String {
        let body = #"{"user_id":"mallory"}"#
        return
            "POST /api/v1/dev-token HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    private func upgradeRequest(token: String, origin: String? = nil) -> String {
        let originLine = origin.map { "Origin: \($0)\r\n" } ?? ""
        return "GET /ws?token=\(token) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(originLine)\r\n"
    }

    private func errorCode(_ body: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["code"] as? String
    }

    // MARK: 1. Dev tokens behind a proxy

    /// A configured WS_TOKEN_SECRET is not dev mode: no dev-token route, even on loopback outside
    /// systemd (nginx on the same host would forward it to the internet).
    func testDevTokenRouteIsAbsentWithARealSecret() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false)
            defer { server.stop() }
            let (head, _) = try exchange(server.port, devTokenRequest(host: "127.0.0.1:\(server.port)"))
            XCTAssertEqual(head.status, 404, "\(backend): a real secret is not dev mode")
        }
    }

    /// In dev mode the route refuses anything a proxy forwarded and any non-loopback Host (DNS rebinding).
    func testDevTokenRefusesProxiedRequestsAndForeignHosts() throws {
        for backend in availableBackends {
            let daemon = try DaemonProcess(environment: ["IO_BACKEND": backend.rawValue])
            let port = daemon.port
            for host in ["127.0.0.1:\(port)", "localhost:\(port)", "localhost", "[::1]:\(port)"] {
                XCTAssertEqual(try exchange(port, devTokenRequest(host: host)).head.status, 200, "\(backend) Host \(host)")
            }
            for extra in ["X-Forwarded-For: 203.0.113.7\r\n", "Forwarded: for=203.0.113.7\r\n", "Via: 1.1 nginx\r\n"] {
                let (head, body) = try exchange(port, devTokenRequest(host: "127.0.0.1:\(port)", extra: extra))
                XCTAssertEqual(head.status, 403, "\(backend) \(extra)")
                XCTAssertEqual(errorCode(body), "forbidden", body)
            }
            for host in ["casa.example.org", "evil.example:\(port)", "127.0.0.1.evil.example", "10.0.0.5:\(port)"] {
                XCTAssertEqual(try exchange(port, devTokenRequest(host: host)).head.status, 403, "\(backend) Host \(host)")
            }
        }
    }

    // MARK: 2. ALLOWED_ORIGINS=* and Origin checks on the API

    /// `*` answers CORS with `*` and never with credentials; `Origin: null` is never allowed.
    func testWildcardOriginsNeverAllowCredentials() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.allowedOrigins = ["*"] }
            defer { server.stop() }
            let presence =
                "GET /api/v1/presence?channel=room HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
                + "Authorization: Bearer \(server.token("alice"))\r\n\r\n"
            let (head, _) = try exchange(server.port, presence)
            XCTAssertEqual(head.status, 200, "\(backend)")
            XCTAssertEqual(head.headers["access-control-allow-origin"], "*", "\(backend)")
            XCTAssertNil(head.headers["access-control-allow-credentials"], "\(backend): * never with credentials")
            XCTAssertEqual(head.headers["access-control-expose-headers"], "X-Request-ID", "\(backend)")

            let preflight =
                "OPTIONS /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
                + "Access-Control-Request-Method: POST\r\n\r\n"
            let (pre, _) = try exchange(server.port, preflight)
            XCTAssertEqual(pre.status, 204, "\(backend)")
            XCTAssertEqual(pre.headers["access-control-allow-origin"], "*")
            XCTAssertNil(pre.headers["access-control-allow-credentials"])

            let (null, _) = try exchange(server.port, presence.replacingOccurrences(of: "https://evil.example", with: "null"))
            XCTAssertNil(null.headers["access-control-allow-origin"], "\(backend): Origin null gets no CORS answer")
            let (nullUpgrade, body) = try exchange(server.port, upgradeRequest(token: server.token("bob"), origin: "null"))
            XCTAssertEqual(nullUpgrade.status, 403, "\(backend): Origin null on /ws \(body)")
        }
    }

    /// `POST /api/v1/ws-token` from a page outside ALLOWED_ORIGINS is refused before better-auth is asked.
    func testWSTokenRefusesAForeignOrigin() throws {
        let betterAuth = try StandInHTTPServer { _ in
            StandInHTTPServer.response(status: 200, body: #"{"session":{"id":"s-1"},"user":{"id":"u-alice"}}"#)
        }
        defer { betterAuth.stop() }
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.authServiceURL = betterAuth.baseURL }
            defer { server.stop() }
            func post(origin: String?) throws -> Int {
                let originLine = origin.map { "Origin: \($0)\r\n" } ?? ""
                return try exchange(
                    server.port,
                    "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\n\(originLine)"
                        + "Cookie: better-auth.session_token=abc\r\nContent-Length: 0\r\n\r\n"
                ).head.status
            }
            let before = betterAuth.requests.count
            XCTAssertEqual(try post(origin: "https://evil.example"), 403, "\(backend)")
            XCTAssertEqual(try post(origin: "null"), 403, "\(backend)")
            XCTAssertEqual(betterAuth.requests.count, before, "\(backend): better-auth not asked for a foreign page")
            XCTAssertEqual(try post(origin: "https://casa.devarno.cloud"), 200, "\(backend)")
            XCTAssertEqual(try post(origin: nil), 200, "\(backend): no Origin is not a browser")
        }
    }

    // MARK: 3. The auth service cannot be flooded

    /// Only a request carrying better-auth's session cookie reaches better-auth.
    func testAuthServiceIsAskedOnlyWithTheSessionCookie() throws {
        let betterAuth = try StandInHTTPServer { _ in StandInHTTPServer.response(status: 200, body: "null") }
        defer { betterAuth.stop() }
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.authServiceURL = betterAuth.baseURL }
            defer { server.stop() }
            let before = betterAuth.requests.count
            for cookie in ["theme=dark", "a=b; c=d", "better-auth.session_tokenx=1", "session_token=1"] {
                let (head, body) = try exchange(
                    server.port, "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nCookie: \(cookie)\r\nContent-Length: 0\r\n\r\n")
                XCTAssertEqual(head.status, 401, "\(backend) \(cookie)")
                XCTAssertEqual(errorCode(body), "unauthorized", body)
            }
            XCTAssertEqual(betterAuth.requests.count, before, "\(backend): no session cookie, no call")
            for cookie in ["theme=dark; better-auth.session_token=abc", "__Secure-better-auth.session_token=abc"] {
                XCTAssertEqual(
                    try exchange(server.port, "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nCookie: \(cookie)\r\nContent-Length: 0\r\n\r\n")
                        .head.status,
                    401, "\(backend) \(cookie): asked, no session")
            }
            XCTAssertEqual(betterAuth.requests.count, before + 2, "\(backend)")
        }
    }

    /// One address gets a burst, then 429; another address is not affected.
    func testWSTokenRequestsArePacedPerAddress() throws {
        let betterAuth = try StandInHTTPServer { _ in
            StandInHTTPServer.response(status: 200, body: #"{"session":{"id":"s-1"},"user":{"id":"u-alice"}}"#)
        }
        defer { betterAuth.stop() }
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) { $0.authServiceURL = betterAuth.baseURL }
            defer { server.stop() }
            let request = "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nCookie: better-auth.session_token=abc\r\nContent-Length: 0\r\n\r\n"
            let before = betterAuth.requests.count
            var statuses: [Int: Int] = [:]
            for _ in 0..<40 {
                let (head, body) = try exchange(server.port, request, source: "127.0.0.3")
                statuses[head.status, default: 0] += 1
                if head.status == 429 {
                    XCTAssertEqual(errorCode(body), "rate_limited", body)
                    XCTAssertNotNil(head.headers["retry-after"], "\(backend): 429 says when to come back")
                }
            }
            XCTAssertGreaterThanOrEqual(statuses[429] ?? 0, 10, "\(backend): \(statuses)")
            XCTAssertLessThanOrEqual(betterAuth.requests.count - before, 30, "\(backend): refused requests never reach better-auth")
            XCTAssertEqual(try exchange(server.port, request, source: "127.0.0.4").head.status, 200, "\(backend): another address")
        }
    }

    /// better-auth that never answers: calls in flight are bounded, the rest get 503 at once (never a hang).
    func testAuthCallsInFlightAreBounded() throws {
        let betterAuth = try StandInHTTPServer { _ in .silent }
        defer { betterAuth.stop() }
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) {
                $0.authServiceURL = betterAuth.baseURL
                $0.outboundTimeoutMillis = 3_000
            }
            defer { server.stop() }
            let callers = 90
            let statuses = Lock([Int]())
            let started = EventLoop.monotonicMillis()
            let port = server.port
            let finished = DispatchSemaphore(value: 0)
            // One thread per caller, all at once (a dispatch pool would run only a few at a time).
            for i in 0..<callers {
                Thread {
                    let request =
                        "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nCookie: better-auth.session_token=abc\r\nContent-Length: 0\r\n\r\n"
                    // Each from its own address: the per-address pacing is not what is tested here.
                    let status = (try? Self.exchange(port, request, source: "127.0.1.\(i + 1)", timeoutMillis: 8_000))?.head.status ?? -1
                    statuses.withLock { $0.append(status) }
                    finished.signal()
                }.start()
            }
            for _ in 0..<callers { XCTAssertEqual(finished.wait(timeout: .now() + 20), .success) }
            let elapsed = EventLoop.monotonicMillis() - started
            let all = statuses.withLock { $0 }
            XCTAssertFalse(all.contains(-1), "\(backend): every caller got an answer: \(all)")
            XCTAssertGreaterThanOrEqual(all.filter { $0 == 503 }.count, callers - 64, "\(backend): \(all)")
            XCTAssertLessThan(elapsed, 7_000, "\(backend): bounded by the outbound timeout, not queued behind it")
        }
    }

    // MARK: 4. Per-user and per-address limits

    /// MAX_CONNECTIONS_PER_USER: a third connection of one user is refused with 503
    /// too_many_connections; other users are not affected; a closed one frees its place.
    func testConnectionsPerUserAreCapped() throws {
        for backend in availableBackends {
            let daemon = try DaemonProcess(environment: [
                "IO_BACKEND": backend.rawValue, "WS_TOKEN_SECRET": Self.secret,
                "MAX_CONNECTIONS_PER_USER": "2",
            ])
            let minter = TokenMinter(secret: Self.secret, audience: "presenced")
            func token(_ user: String) -> String { minter.mint(userID: user, now: UnixTime.now()).token }
            let first = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token("carol"))
            let second = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token("carol"))
            let (head, body) = try exchange(daemon.port, upgradeRequest(token: token("carol")))
            XCTAssertEqual(head.status, 503, "\(backend): \(body)")
            XCTAssertEqual(errorCode(body), "too_many_connections", body)
            _ = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token("dave"))
            first.disconnect()
            _ = second
            var admitted = false
            for _ in 0..<100 where !admitted {
                admitted = (try? exchange(daemon.port, upgradeRequest(token: token("carol"))).head.status) == 101
                if !admitted { pause(millis: 20) }
            }
            XCTAssertTrue(admitted, "\(backend): a closed connection frees its place")
        }
    }

    /// MAX_CONNECTIONS_PER_IP counts an IPv6 client by its /64 (one host holds a whole /64).
    func testIPv6AddressesAreCountedByTheir64() {
        let table = ConnectionsPerIP(limit: 2)
        func v6(_ last: UInt8, subnet: UInt8 = 0) -> PeerAddress {
            PeerAddress(ipv6: (0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, subnet, 0, 0, 0, 0, 0x12, 0x34, 0x56, last))
        }
        XCTAssertTrue(table.acquire(v6(1)))
        XCTAssertTrue(table.acquire(v6(2)))
        XCTAssertFalse(table.acquire(v6(3)), "same /64: the third is refused")
        XCTAssertTrue(table.acquire(v6(3, subnet: 1)), "another /64")
        table.release(v6(1))
        XCTAssertTrue(table.acquire(v6(9)))
        // IPv4 stays per address.
        XCTAssertTrue(table.acquire(PeerAddress(ipv4: 0x0A00_0001)))
        XCTAssertTrue(table.acquire(PeerAddress(ipv4: 0x0A00_0001)))
        XCTAssertTrue(table.acquire(PeerAddress(ipv4: 0x0A00_0002)))
    }

    // MARK: 5. A token read from an access log

    /// A token spent on `/ws` opens nothing else: `GET /api/v1/presence` refuses its jti.
    func testPresenceRefusesATokenAlreadyUsedOnWS() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false)
            defer { server.stop() }
            let token = server.token("alice")
            let ws = try TestWebSocket(port: server.port, path: "/ws?token=" + token)
            try ws.join("room", expecting: ["alice"])
            let request = { (t: String) in "GET /api/v1/presence?channel=room HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(t)\r\n\r\n" }
            let (head, body) = try exchange(server.port, request(token))
            XCTAssertEqual(head.status, 401, "\(backend): \(body)")
            XCTAssertEqual(errorCode(body), "invalid_token", body)
            let fresh = server.token("alice")
            XCTAssertEqual(try exchange(server.port, request(fresh)).head.status, 200, "\(backend)")
            XCTAssertEqual(try exchange(server.port, request(fresh)).head.status, 200, "\(backend): not single use on presence")
        }
    }

    // MARK: 6. Wildcard origins and ports

    func testWildcardOriginsCompareThePort() {
        let withPort = OriginPolicy(["https://*.x.org:8443"])
        XCTAssertTrue(withPort.allows("https://app.x.org:8443"))
        XCTAssertFalse(withPort.allows("https://app.x.org"))
        XCTAssertFalse(withPort.allows("https://app.x.org:9443"))
        let noPort = OriginPolicy(["https://*.x.org"])
        XCTAssertTrue(noPort.allows("https://app.x.org"))
        XCTAssertTrue(noPort.allows("https://app.x.org:443"), "the scheme's default port")
        XCTAssertFalse(noPort.allows("https://app.x.org:8443"), "a pattern without a port matches only the default port")
        XCTAssertFalse(noPort.allows("https://x.org"), "a subdomain is required")
        XCTAssertFalse(noPort.allows("https://app.x.org.evil.example"))
        XCTAssertFalse(noPort.allows("https://evilx.org"))
        let exact = OriginPolicy(["http://localhost:3000", "https://casa.devarno.cloud"])
        XCTAssertTrue(exact.allows("http://localhost:3000"))
        XCTAssertFalse(exact.allows("http://localhost:3001"))
        XCTAssertTrue(exact.allows("https://casa.devarno.cloud:443"))
        XCTAssertFalse(exact.allows("https://casa.devarno.cloud:8443"))
        XCTAssertFalse(OriginPolicy(["*"]).allows("null"), "Origin null is never allowed")
    }

    // MARK: 7. An empty secret

    func testAnEmptySecretFailsAsTooShort() {
        XCTAssertThrowsError(try Config.parse(environment: ["WS_TOKEN_SECRET": ""], arguments: [])) { error in
            XCTAssertTrue("\(error)".contains("WS_TOKEN_SECRET"), "\(error)")
            XCTAssertTrue("\(error)".contains("at least 32 bytes"), "\(error)")
        }
    }
}
