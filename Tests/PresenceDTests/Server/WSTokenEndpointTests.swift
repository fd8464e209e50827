import Foundation
import TestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// `POST /api/v1/ws-token` against a real HTTP stand-in for better-auth.
final class WSTokenEndpointTests: XCTestCase {
    private func post(_ server: TestServer, cookie: String?, extra: String = "") throws -> (HTTPResponseHead, String) {
        let socket = try TestSocket(port: server.port, receiveTimeoutMillis: 10_000)
        let cookieLine = cookie.map { "Cookie: \($0)\r\n" } ?? ""
        try socket.write(
            "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nX-Request-ID: req-42\r\n\(cookieLine)\(extra)Content-Length: 2\r\n\r\n{}")
        let (head, body) = try socket.readHTTPResponse()
        return (head, String(decoding: body, as: UTF8.self))
    }

    func testSessionsBecomeTokensAndEveryFailureHasItsStatus() throws {
        let betterAuth = try StandInHTTPServer { request in
            let cookie = request.header("cookie") ?? ""
            if cookie.contains("alice") {
                return StandInHTTPServer.response(
                    status: 200,
                    body:
                        #"{"session":{"id":"s-1","userId":"u-alice"},"user":{"id":"u-alice","name":"Alice","role":"admin","banned":false}}"#
                )
            }
            if cookie.contains("banned") {
                return StandInHTTPServer.response(
                    status: 200, body: #"{"session":{"id":"s-2"},"user":{"id":"u-bad","banned":true,"banExpires":null}}"#)
            }
            if cookie.contains("slow") { return .silent }
            if cookie.contains("broken") { return StandInHTTPServer.response(status: 500, body: "oops") }
            return StandInHTTPServer.response(status: 200, body: "null")
        }
        defer { betterAuth.stop() }
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) {
                $0.authServiceURL = betterAuth.baseURL
                $0.outboundTimeoutMillis = 700
            }
            defer { server.stop() }

            let (ok, body) = try post(server, cookie: "better-auth.session_token=alice-cookie")
            XCTAssertEqual(ok.status, 200, "\(backend) \(body)")
            XCTAssertEqual(ok.headers["x-request-id"], "req-42")
            let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [String: String]
            let token = json["token"]!
            XCTAssertTrue(json["expires_at"]!.hasSuffix("Z"))
            let claims = try TokenVerifier(secrets: [TestServer.secret], audience: "presenced").verify(token, now: UnixTime.now()).get()
            XCTAssertEqual(claims.userID, "u-alice")
            XCTAssertEqual(claims.sessionID, "s-1")
            XCTAssertEqual(claims.role, .admin)
            XCTAssertLessThanOrEqual(claims.expiresAt - claims.issuedAt, 300)
            // The token opens a WebSocket (once).
            let ws = try TestWebSocket(port: server.port, path: "/ws?token=" + token)
            try ws.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try ws.receiveMessage(), .text(#"{"type":"pong"}"#))

            // What better-auth was sent: the cookie verbatim, the request id, a traceparent.
            let seen = betterAuth.requests.last!
            XCTAssertEqual(seen.requestLine, "GET /api/auth/get-session HTTP/1.1")
            XCTAssertEqual(seen.header("cookie"), "better-auth.session_token=alice-cookie")
            XCTAssertEqual(seen.header("x-request-id"), "req-42")
            XCTAssertTrue(TraceParent.isValid(seen.header("traceparent") ?? ""), seen.header("traceparent") ?? "none")

            XCTAssertEqual(try post(server, cookie: "better-auth.session_token=nobody").0.status, 401, "\(backend)")
            XCTAssertEqual(try post(server, cookie: nil).0.status, 401, "\(backend)")
            let (banned, bannedBody) = try post(server, cookie: "better-auth.session_token=banned")
            XCTAssertEqual(banned.status, 403, "\(backend)")
            XCTAssertTrue(bannedBody.contains(#""code":"banned""#), bannedBody)
            XCTAssertEqual(try post(server, cookie: "better-auth.session_token=broken").0.status, 502, "\(backend)")
            let start = Date()
            XCTAssertEqual(try post(server, cookie: "better-auth.session_token=slow").0.status, 504, "\(backend)")
            XCTAssertLessThan(Date().timeIntervalSince(start), 3)

            // Bytes that arrive while the answer is pending are not taken for anything else.
            let socket = try TestSocket(port: server.port)
            try socket.write(
                "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nCookie: better-auth.session_token=slow\r\nContent-Length: 2\r\n\r\n{}")
            pause(millis: 100)
            try socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let everything = String(decoding: try socket.readToEnd(), as: UTF8.self)
            XCTAssertTrue(everything.hasPrefix("HTTP/1.1 504 "), "\(backend): \(everything.prefix(80))")
            XCTAssertEqual(everything.components(separatedBy: "HTTP/1.1 ").count, 2, "exactly one response, then close")
        }
    }

    func testDisabledWithoutAuthServiceURL() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        XCTAssertEqual(try post(server, cookie: "x=y").0.status, 404)
    }
}
