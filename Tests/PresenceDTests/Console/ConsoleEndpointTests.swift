import Foundation
@testable import PresenceD
@testable import PresenceJSON
@testable import PresenceLoop
@testable import PresenceRealtime
import RedisTestSupport
import WSCore
import XCTest

/// The console's HTTP side on an in-process server: the page's files and their security
/// headers, the dev-token route (on in dev mode, absent with a real secret, when off or in Redis mode), the
/// admin stats route (absent unset, 401 on a wrong or missing token, the fields with the right one).
final class ConsoleEndpointTests: XCTestCase {
    private let admin = "admin-token-for-tests-0123456789"

    private func request(_ server: TestServer, _ text: String) throws -> (HTTPResponseHead, String) {
        let socket = try TestSocket(port: server.port)
        try socket.write(text)
        let (head, body) = try socket.readHTTPResponse()
        return (head, String(decoding: body, as: UTF8.self))
    }

    private func post(_ server: TestServer, _ path: String, _ body: String, type: String = "application/json") throws -> (HTTPResponseHead, String) {
        try request(server, "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    private func object(_ body: String) throws -> [String: JSONValue] {
        guard case .object(let o) = try Array(body.utf8).withUnsafeBytes({ bytes throws(JSONError) in try JSONValue.parse(bytes) }) else {
            throw SystemError(call: "not a JSON object: \(body)", errno: 0)
        }
        return o
    }

    func testPageFilesCarryTheSecurityHeaders() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        let expected: [(String, String, String)] = [
            ("/", "text/html; charset=utf-8", "<!doctype html>"), ("/console", "text/html; charset=utf-8", "<!doctype html>"),
            ("/console.js", "text/javascript; charset=utf-8", #"import { PresenceClient } from "/presence-client.js";"#),
            ("/console.css", "text/css; charset=utf-8", ":root"),
            ("/presence-client.js", "text/javascript; charset=utf-8", "export class PresenceClient extends Emitter"),
        ]
        for (path, type, start) in expected {
            let (head, body) = try request(server, "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(head.status, 200, path)
            XCTAssertEqual(head.headers["content-type"], type, path)
            XCTAssertEqual(head.headers["content-security-policy"],
                           "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'", path)
            XCTAssertEqual(head.headers["x-frame-options"], "DENY", path)
            XCTAssertEqual(head.headers["x-content-type-options"], "nosniff", path)
            XCTAssertEqual(head.headers["referrer-policy"], "no-referrer", path)
            XCTAssertEqual(head.headers["cache-control"], "no-store", path)
            XCTAssertNotNil(head.headers["x-request-id"], path)
            XCTAssertTrue(body.contains(start), "\(path): \(body.prefix(80))")
        }
        let (upgrade, _) = try request(server, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        XCTAssertEqual(upgrade.status, 404, "an upgrade to / is a wrong path, not a page request")
        let (post, _) = try request(server, "DELETE /console HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(post.status, 405)
        let socket = try TestSocket(port: server.port)
        try socket.write("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let headOnly = String(decoding: try socket.readToEnd(), as: UTF8.self)
        XCTAssertTrue(headOnly.hasPrefix("HTTP/1.1 200 "), headOnly)
        XCTAssertTrue(headOnly.contains("Content-Length: \(ConsoleAssets.html.count)\r\n"), headOnly)
        XCTAssertTrue(headOnly.hasSuffix("\r\n\r\n"), "HEAD has no body: \(headOnly)")
    }

    /// No inline script or style, nothing from another host: what the CSP would block anyway.
    func testPageHasNoInlineCodeAndNoExternalResources() {
        let html = ConsoleAssets.htmlText
        XCTAssertEqual(html.components(separatedBy: "<script").count - 1, 1)
        XCTAssertTrue(html.contains(#"<script type="module" src="/console.js"></script>"#))
        XCTAssertFalse(html.contains("<style"))
        XCTAssertFalse(html.contains("style=\""))
        XCTAssertNil(html.range(of: #"\son[a-z]+="#, options: .regularExpression), "an inline event handler")
        for text in [html, ConsoleAssets.cssText, ConsoleAssets.javascriptText, ConsoleClientLibrary.text] {
            XCTAssertFalse(text.contains("http://") && !text.contains("http://www.w3.org/2000/svg"), "an absolute URL")
            XCTAssertFalse(text.contains("https://"), "an absolute URL")
        }
        for script in [ConsoleAssets.javascriptText, ConsoleClientLibrary.text] {
            XCTAssertFalse(script.contains("innerHTML"), "text must go in as textContent")
            XCTAssertFalse(script.contains("eval("))
        }
    }

    /// The library the console imports is the committed build of clients/js (which
    /// clients/js/test/build.test.mjs checks against a fresh build of its source).
    func testEmbeddedClientLibraryIsTheBuiltOne() throws {
        let built = DaemonProcess.repository.appendingPathComponent("clients/js/dist/index.js")
        let text = try String(contentsOf: built, encoding: .utf8)
        XCTAssertTrue(ConsoleClientLibrary.text == text,
                      "ConsoleClientLibrary.swift differs from clients/js/dist/index.js: run clients/js/scripts/build.sh")
        XCTAssertEqual(ConsoleClientLibrary.javascript, Array(text.utf8))
    }

    func testDevTokenIsOnInEmbeddedModeAndMintsASingleUseToken() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false) { $0.tokenSecret = nil }
        defer { server.stop() }
        let (head, body) = try post(server, "/api/v1/dev-token", #"{"user_id":"alice.b-2_x"}"#)
        XCTAssertEqual(head.status, 200, body)
        let o = try object(body)
        guard case .string(let token)? = o["token"], case .string(let expires)? = o["expires_at"] else { return XCTFail(body) }
        XCTAssertTrue(expires.hasSuffix("Z") && expires.count == 24, expires)
        let claims = try server.hub!.verifier.verify(token, now: UnixTime.now()).get()
        XCTAssertEqual(claims.userID, "alice.b-2_x")
        XCTAssertEqual(claims.expiresAt - UnixTime.now(), 60, accuracy: 2)
        // Single use on /ws, like every token.
        let socket = try TestWebSocket(port: server.port, path: "/ws?token=" + token)
        try socket.sendText(#"{"type":"join","channel":"c"}"#)
        XCTAssertEqual(try socket.receiveMessage(), .text(#"{"type":"presence","user_id":"alice.b-2_x","online":true,"channel":"c"}"#))
        XCTAssertThrowsError(try TestWebSocket(port: server.port, path: "/ws?token=" + token), "a dev token is single use")

        for bad in [#"{"user_id":""}"#, #"{"user_id":"a b"}"#, #"{"user_id":"\#(String(repeating: "x", count: 65))"}"#,
                    #"{"user_id":7}"#, #"{"name":"x"}"#, "[]", "{", #"{"user_id":"é"}"#] {
            let (status, text) = try post(server, "/api/v1/dev-token", bad)
            XCTAssertEqual(status.status, 400, "\(bad): \(text)")
            XCTAssertEqual(try object(text)["code"], .string("bad_request"), bad)
        }
        let (plain, _) = try post(server, "/api/v1/dev-token", #"{"user_id":"a"}"#, type: "text/plain")
        XCTAssertEqual(plain.status, 415, "a cross-site form cannot post JSON without a preflight")
        let (get, _) = try request(server, "GET /api/v1/dev-token HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(get.status, 405)
    }

    /// The body may arrive after the head, in pieces; what follows it is not taken for a request
    /// (a request with a body is answered, then the connection closes, as for ws-token).
    func testDevTokenBodyInPieces() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false) { $0.tokenSecret = nil }
        defer { server.stop() }
        let socket = try TestSocket(port: server.port)
        let body = #"{"user_id":"bob"}"#
        try socket.write("POST /api/v1/dev-token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n{\"us")
        pause(millis: 50)
        try socket.write(String(body.dropFirst(4)) + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let all = String(decoding: try socket.readToEnd(), as: UTF8.self)
        XCTAssertTrue(all.hasPrefix("HTTP/1.1 200 ") && all.contains(#"{"token":"eyJ"#), all)
        XCTAssertTrue(all.contains("Connection: close"), all)
        XCTAssertEqual(all.components(separatedBy: "HTTP/1.1 ").count, 2, "exactly one response, then close: \(all)")
        // A body over the limit is not read: answered, then the connection closes.
        let big = String(repeating: "x", count: WebSocketServer.maxBodyBytes + 1)
        let (tooBig, text) = try post(server, "/api/v1/dev-token", big)
        XCTAssertEqual(tooBig.status, 400, text)
        XCTAssertEqual(tooBig.headers["connection"], "close")
    }

    func testDevTokenIsAbsentWhenOffAndInRedisMode() throws {
        let off = try TestServer(backend: availableBackends[0], echo: false) { $0.tokenSecret = nil; $0.consoleDevTokens = .off }
        defer { off.stop() }
        let (head, body) = try post(off, "/api/v1/dev-token", #"{"user_id":"alice"}"#)
        XCTAssertEqual(head.status, 404)
        XCTAssertEqual(try object(body)["code"], .string("not_found"))
        // Redis mode (nothing listens there: the route does not need Redis), auto: off.
        let redis = try TestServer(backend: availableBackends[0], echo: false) { $0.tokenSecret = nil; $0.redisURL = "redis://127.0.0.1:1" }
        defer { redis.stop() }
        XCTAssertEqual(try post(redis, "/api/v1/dev-token", #"{"user_id":"alice"}"#).0.status, 404)
        let forced = try TestServer(backend: availableBackends[0], echo: false) {
            $0.tokenSecret = nil
            $0.redisURL = "redis://127.0.0.1:1"
            $0.consoleDevTokens = .on
        }
        defer { forced.stop() }
        XCTAssertEqual(try post(forced, "/api/v1/dev-token", #"{"user_id":"alice"}"#).0.status, 200)
        // A real secret is never dev mode, whatever the variable says.
        let configured = try TestServer(backend: availableBackends[0], echo: false) { $0.consoleDevTokens = .on }
        defer { configured.stop() }
        XCTAssertEqual(try post(configured, "/api/v1/dev-token", #"{"user_id":"alice"}"#).0.status, 404)
    }

    func testAdminStatsIsAbsentWithoutTheVariable() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        for auth in ["", "Authorization: Bearer \(admin)\r\n"] {
            let (head, body) = try request(server, "GET /api/v1/admin/stats HTTP/1.1\r\nHost: x\r\n\(auth)\r\n")
            XCTAssertEqual(head.status, 404, body)
        }
    }

    func testAdminStatsRefusesAWrongOrMissingToken() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false) { $0.consoleAdminToken = self.admin }
        defer { server.stop() }
        for auth in ["", "Authorization: Bearer wrong\r\n", "Authorization: Bearer \(admin)x\r\n", "Authorization: Bearer \(admin.dropLast())\r\n",
                     "Authorization: \(admin)\r\n", "Authorization: Basic \(admin)\r\n"] {
            let (head, body) = try request(server, "GET /api/v1/admin/stats HTTP/1.1\r\nHost: x\r\n\(auth)\r\n")
            XCTAssertEqual(head.status, 401, auth)
            XCTAssertEqual(try object(body)["code"], .string("unauthorized"))
            XCTAssertNotNil(try object(body)["error"])
        }
    }

    func testAdminStatsReportsTheInstance() throws {
        let server = try TestServer(backend: availableBackends[0], threads: 2, echo: false) {
            $0.consoleAdminToken = self.admin
            $0.tokenSecret = nil // dev mode: dev tokens on
        }
        defer { server.stop() }
        var clients: [TestWebSocket] = []
        for (user, channel) in [("a", "big"), ("b", "big"), ("c", "big"), ("d", "small")] {
            let client = try server.client(user)
            try client.sendText(#"{"type":"join","channel":"\#(channel)"}"#)
            _ = try client.receiveMessage()
            clients.append(client)
        }
        let (head, body) = try request(server, "GET /api/v1/admin/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(admin)\r\n\r\n")
        XCTAssertEqual(head.status, 200, body)
        XCTAssertEqual(head.headers["content-type"], "application/json")
        let o = try object(body)
        XCTAssertEqual(o["mode"], .string("embedded"))
        XCTAssertEqual(o["connections"], .number(4))
        XCTAssertEqual(o["io_backend"], .string(availableBackends[0].rawValue))
        XCTAssertEqual(o["dev_tokens"], .bool(true))
        guard case .string(let id)? = o["instance_id"] else { return XCTFail(body) }
        XCTAssertEqual(id.count, 16)
        guard case .number(let uptime)? = o["uptime_seconds"] else { return XCTFail(body) }
        XCTAssertGreaterThanOrEqual(uptime, 0)
        guard case .array(let loops)? = o["loops"] else { return XCTFail(body) }
        XCTAssertEqual(loops.count, 2)
        var perLoop = 0.0
        for (i, loop) in loops.enumerated() {
            guard case .object(let l) = loop, case .number(let n)? = l["connections"] else { return XCTFail(body) }
            XCTAssertEqual(l["index"], .number(Double(i)))
            XCTAssertNotNil(l["events_per_second"])
            perLoop += n
        }
        XCTAssertEqual(perLoop, 4, "the loops' connections add up")
        XCTAssertEqual(o["channels"], .array([.object(["channel": .string("big"), "members": .number(3)]),
                                              .object(["channel": .string("small"), "members": .number(1)])]))
        guard case .object(let history)? = o["history"] else { return XCTFail(body) }
        XCTAssertEqual(history["interval_seconds"], .number(5))
        XCTAssertNotNil(history["samples"])
        XCTAssertEqual(o["redis"], .object(["configured": .bool(false), "reachable": .null, "rtt_ms": .null]))
        XCTAssertEqual(o["forwarding"], .object(["mode": .string("off"), "queue_depth": .number(0), "oldest_age_seconds": .number(0),
                                                 "dead_letters": .number(0)]))
        withExtendedLifetime(clients) {}
    }

    /// Redis mode: the mode, Redis reachable with a round-trip time, dev tokens off (auto).
    func testAdminStatsInRedisMode() throws {
        let redis = try RedisServerProcess()
        let server = try TestServer(backend: availableBackends[0], threads: 2, echo: false) {
            $0.redisURL = redis.url()
            $0.consoleAdminToken = self.admin
        }
        defer { server.stop() }
        let end = EventLoop.monotonicMillis() + 10_000
        while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 20) }
        XCTAssertTrue(server.hub!.redisReady, "Redis did not become ready")
        let client = try server.client("alice")
        try client.sendText(#"{"type":"join","channel":"r"}"#)
        _ = try client.receiveMessage()
        let (head, body) = try request(server, "GET /api/v1/admin/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(admin)\r\n\r\n")
        XCTAssertEqual(head.status, 200, body)
        let o = try object(body)
        XCTAssertEqual(o["mode"], .string("redis"))
        XCTAssertEqual(o["dev_tokens"], .bool(false))
        guard case .object(let r)? = o["redis"], case .number(let rtt)? = r["rtt_ms"] else { return XCTFail(body) }
        XCTAssertEqual(r["configured"], .bool(true))
        XCTAssertEqual(r["reachable"], .bool(true))
        XCTAssertGreaterThanOrEqual(rtt, 0)
        guard case .string(let id)? = o["instance_id"] else { return XCTFail(body) }
        XCTAssertEqual(id, server.hub!.redis!.instanceHex, "the id the other instances know")
        withExtendedLifetime((client, redis)) {}
    }

    /// The console's own upgrade: Origin is the page's scheme://host:port, which is the Host.
    func testSameOriginUpgradeIsAcceptedAndOthersAreNot() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        XCTAssertFalse(server.config.allowedOrigins.contains("http://127.0.0.1:\(server.port)"))
        var same = HTTPHeaders()
        same.add("Origin", "http://127.0.0.1:\(server.port)")
        XCTAssertNoThrow(try TestWebSocket(port: server.port, path: "/ws?token=" + server.token("a"), headers: same))
        for origin in ["http://127.0.0.1:\(server.port &+ 1)", "http://evil.example", "null", "http://127.0.0.1:\(server.port)@evil"] {
            var other = HTTPHeaders()
            other.add("Origin", origin)
            XCTAssertThrowsError(try TestWebSocket(port: server.port, path: "/ws?token=" + server.token("a"), headers: other), origin) {
                XCTAssertTrue("\($0)".contains("403"), "\(origin): \($0)")
            }
        }
    }
}
