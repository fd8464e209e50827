import Foundation
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// The console's HTTP side on an in-process server: the page's files (the bytes of
/// `Sources/PresenceRealtime/Console/assets/`, valid JavaScript) and their security headers, the dev-token route (on in dev mode, absent with a real secret, when off or in Redis mode), the
/// admin stats route (absent unset, 401 on a wrong or missing token, the fields with the right one).
final class ConsoleEndpointTests: XCTestCase {
    private let admin = "admin-token-for-tests-0123456789"

    private func request(_ server: TestServer, _ text: String) throws -> (HTTPResponseHead, String) {
        let socket = try TestSocket(port: server.port)
        try socket.write(text)
        let (head, body) = try socket.readHTTPResponse()
        return (head, String(decoding: body, as: UTF8.self))
    }

    private func post(
        _ server: TestServer, _ path: String, _ body: String, type: String = "application/json"
    ) throws -> (HTTPResponseHead, String) {
        try request(
            server,
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
    }

    private func object(_ body: String) throws -> [String: JSONValue] {
        guard case .object(let o) = try Array(body.utf8).withUnsafeBytes({ bytes throws(JSONError) in try JSONValue.parse(bytes) }) else {
            throw SystemError(call: "not a JSON object: \(body)", errno: 0)
        }
        return o
    }

    /// `Sources/PresenceRealtime/Console/assets/`, where the console's files are edited.
    private static let assets = DaemonProcess.repository.appendingPathComponent("Sources/PresenceRealtime/Console/assets")

    /// Each console path, the asset file it serves and its Content-Type.
    private static let pages: [(path: String, file: String, type: String)] = [
        ("/", "console.html", "text/html; charset=utf-8"), ("/console", "console.html", "text/html; charset=utf-8"),
        ("/console.js", "console.js", "text/javascript; charset=utf-8"), ("/console.css", "console.css", "text/css; charset=utf-8"),
        ("/presence-client.js", "presence-client.js", "text/javascript; charset=utf-8"),
    ]

    private static func asset(_ file: String) throws -> [UInt8] {
        Array(try Data(contentsOf: assets.appendingPathComponent(file)))
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
            XCTAssertEqual(
                head.headers["content-security-policy"],
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
                path)
            XCTAssertEqual(head.headers["x-frame-options"], "DENY", path)
            XCTAssertEqual(head.headers["x-content-type-options"], "nosniff", path)
            XCTAssertEqual(head.headers["referrer-policy"], "no-referrer", path)
            XCTAssertEqual(head.headers["cache-control"], "no-store", path)
            XCTAssertNotNil(head.headers["x-request-id"], path)
            XCTAssertTrue(body.contains(start), "\(path): \(body.prefix(80))")
        }
        let (upgrade, _) = try request(
            server,
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
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
        let html = String(decoding: ConsoleAssets.html, as: UTF8.self)
        let css = String(decoding: ConsoleAssets.css, as: UTF8.self)
        let javascript = String(decoding: ConsoleAssets.javascript, as: UTF8.self)
        let library = String(decoding: ConsoleAssets.clientLibrary, as: UTF8.self)
        XCTAssertEqual(html.components(separatedBy: "<script").count - 1, 1)
        XCTAssertTrue(html.contains(#"<script type="module" src="/console.js"></script>"#))
        XCTAssertFalse(html.contains("<style"))
        XCTAssertFalse(html.contains("style=\""))
        XCTAssertNil(html.range(of: #"\son[a-z]+="#, options: .regularExpression), "an inline event handler")
        for text in [html, css, javascript, library] {
            XCTAssertFalse(text.contains("http://") && !text.contains("http://www.w3.org/2000/svg"), "an absolute URL")
            XCTAssertFalse(text.contains("https://"), "an absolute URL")
        }
        for script in [javascript, library] {
            XCTAssertFalse(script.contains("innerHTML"), "text must go in as textContent")
            XCTAssertFalse(script.contains("eval("))
        }
    }

    /// The library the console imports is the committed build of clients/js (which
    /// clients/js/test/build.test.mjs checks against a fresh build of its source).
    func testEmbeddedClientLibraryIsTheBuiltOne() throws {
        let built = Array(try Data(contentsOf: DaemonProcess.repository.appendingPathComponent("clients/js/dist/index.js")))
        XCTAssertTrue(
            try Self.asset("presence-client.js") == built,
            "Console/assets/presence-client.js differs from clients/js/dist/index.js: run clients/js/scripts/build.sh")
        XCTAssertTrue(ConsoleAssets.clientLibrary == built, "the embedded library is not clients/js/dist/index.js: rebuild presenced")
    }

    /// Every console path serves its file in `Console/assets/` byte for byte (GET), and HEAD
    /// announces that file's length; the embedded copies are those files (SwiftPM's `.embedInCode`).
    func testServedBytesAreTheAssetFiles() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        let embedded = [
            "console.html": ConsoleAssets.html, "console.css": ConsoleAssets.css, "console.js": ConsoleAssets.javascript,
            "presence-client.js": ConsoleAssets.clientLibrary,
        ]
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.assets.path).sorted()
        XCTAssertEqual(files, embedded.keys.sorted(), "every file in Console/assets is embedded and served (Package.swift resources)")
        for (path, file, type) in Self.pages {
            let expected = try Self.asset(file)
            XCTAssertFalse(expected.isEmpty, file)
            XCTAssertTrue(embedded[file] == expected, "\(file): the embedded copy differs from the file: rebuild presenced")
            let socket = try TestSocket(port: server.port)
            try socket.write("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            let (head, body) = try socket.readHTTPResponse()
            XCTAssertEqual(head.status, 200, path)
            XCTAssertEqual(head.headers["content-type"], type, path)
            XCTAssertEqual(head.headers["content-length"], String(expected.count), path)
            XCTAssertTrue(body == expected, "\(path): \(body.count) bytes served, \(file) has \(expected.count)")
            let headSocket = try TestSocket(port: server.port)
            try headSocket.write("HEAD \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let headOnly = String(decoding: try headSocket.readToEnd(), as: UTF8.self)
            XCTAssertTrue(headOnly.contains("Content-Length: \(expected.count)\r\n"), "\(path): \(headOnly)")
            XCTAssertTrue(headOnly.hasSuffix("\r\n\r\n"), "HEAD has no body: \(path)")
        }
    }

    /// `node --check` passes on each JavaScript file in `Console/assets/` (both are ES modules:
    /// checked as such, from stdin with `--input-type=module`, since Node 20 passes a `.js` file
    /// with `import` without checking it). Skips when node is not installed.
    func testJavaScriptAssetsPassNodeCheck() throws {
        let candidates: [String] = ["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"]
        guard let node = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw XCTSkip("node is not installed (Debian package nodejs): the console's JavaScript files were not checked")
        }
        func check(_ source: [UInt8]) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: node)
            process.arguments = ["--input-type=module", "--check"]
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            try process.run()
            input.fileHandleForWriting.write(Data(source))
            try input.fileHandleForWriting.close()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }
        // The check is not vacuous: a module with a syntax error fails it.
        XCTAssertNotEqual(try check(Array(#"import { a } from "/b.js"; export const c = ;"#.utf8)).status, 0)
        let scripts = try FileManager.default.contentsOfDirectory(atPath: Self.assets.path).filter { $0.hasSuffix(".js") }.sorted()
        XCTAssertEqual(scripts, ["console.js", "presence-client.js"])
        for file in scripts {
            let (status, output) = try check(try Self.asset(file))
            XCTAssertEqual(status, 0, "node --check \(file): \(output)")
        }
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

        for bad in [
            #"{"user_id":""}"#, #"{"user_id":"a b"}"#, #"{"user_id":"\#(String(repeating: "x", count: 65))"}"#,
            #"{"user_id":7}"#, #"{"name":"x"}"#, "[]", "{", #"{"user_id":"é"}"#,
        ] {
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
        try socket.write(
            "POST /api/v1/dev-token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n{\"us"
        )
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
        let off = try TestServer(backend: availableBackends[0], echo: false) {
            $0.tokenSecret = nil
            $0.consoleDevTokens = .off
        }
        defer { off.stop() }
        let (head, body) = try post(off, "/api/v1/dev-token", #"{"user_id":"alice"}"#)
        XCTAssertEqual(head.status, 404)
        XCTAssertEqual(try object(body)["code"], .string("not_found"))
        // Redis mode (nothing listens there: the route does not need Redis), auto: off.
        let redis = try TestServer(backend: availableBackends[0], echo: false) {
            $0.tokenSecret = nil
            $0.redisURL = "redis://127.0.0.1:1"
        }
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
        for auth in [
            "", "Authorization: Bearer wrong\r\n", "Authorization: Bearer \(admin)x\r\n", "Authorization: Bearer \(admin.dropLast())\r\n",
            "Authorization: \(admin)\r\n", "Authorization: Basic \(admin)\r\n",
        ] {
            let (head, body) = try request(server, "GET /api/v1/admin/stats HTTP/1.1\r\nHost: x\r\n\(auth)\r\n")
            XCTAssertEqual(head.status, 401, auth)
            XCTAssertEqual(try object(body)["code"], .string("unauthorized"))
            XCTAssertNotNil(try object(body)["error"])
        }
    }

    func testAdminStatsReportsTheInstance() throws {
        let server = try TestServer(backend: availableBackends[0], threads: 2, echo: false) {
            $0.consoleAdminToken = self.admin
            $0.tokenSecret = nil  // dev mode: dev tokens on
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
        XCTAssertEqual(
            o["channels"],
            .array([
                .object(["channel": .string("big"), "members": .number(3)]),
                .object(["channel": .string("small"), "members": .number(1)]),
            ]))
        guard case .object(let history)? = o["history"] else { return XCTFail(body) }
        XCTAssertEqual(history["interval_seconds"], .number(5))
        XCTAssertNotNil(history["samples"])
        XCTAssertEqual(o["redis"], .object(["configured": .bool(false), "reachable": .null, "rtt_ms": .null]))
        XCTAssertEqual(
            o["forwarding"],
            .object([
                "mode": .string("off"), "queue_depth": .number(0), "oldest_age_seconds": .number(0),
                "dead_letters": .number(0),
            ]))
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
