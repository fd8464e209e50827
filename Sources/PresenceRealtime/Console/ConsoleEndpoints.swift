import PresenceJSON
import PresenceLoop
import WSCore

/// The console's routes: the page (`/`, `/console`, `/console.js`, `/console.css`, and the client
/// library it imports, `/presence-client.js`), the dev token (`POST /api/v1/dev-token`, only
/// while CONSOLE_DEV_TOKENS is on) and the instance view's data (`GET /api/v1/admin/stats`, only with CONSOLE_ADMIN_TOKEN). A route that is off does not
/// exist: the caller answers 404 as for any unknown path.
enum ConsoleEndpoints {
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
        + "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    static let devTokenTTL: Int64 = 60

    /// Answers the request when it is a console route (true), else leaves it to the caller.
    static func respond(
        to head: HTTPRequestHead, body: [UInt8]?, hub: RealtimeHub, requestID: String, headers: HTTPHeaders,
        loop: EventLoop, reply: @escaping (HTTPResponse) -> Void
    ) -> Bool {
        let console = hub.console
        // A WebSocket client that got the path wrong (`ws://host:8082/`) is told 404, not given a page.
        if head.headers.containsToken("websocket", in: "upgrade") { return false }
        switch head.path {
        case "/", "/console":
            reply(asset(head, ConsoleAssets.html, type: "text/html; charset=utf-8", headers: headers))
        case "/console.js":
            reply(asset(head, ConsoleAssets.javascript, type: "text/javascript; charset=utf-8", headers: headers))
        case "/console.css":
            reply(asset(head, ConsoleAssets.css, type: "text/css; charset=utf-8", headers: headers))
        case "/presence-client.js":
            reply(asset(head, ConsoleAssets.clientLibrary, type: "text/javascript; charset=utf-8", headers: headers))
        case "/api/v1/dev-token" where console.devTokens:
            guard head.method == "POST" else { return methodNotAllowed("POST", headers: headers, reply) }
            guard isLocalRequest(head) else {
                reply(
                    HTTPEndpoints.errorResponse(
                        status: 403, code: "forbidden",
                        message: "dev tokens are for a browser on this machine only", headers: headers))
                return true
            }
            reply(devToken(head, body: body, hub: hub, requestID: requestID, headers: headers))
        case "/api/v1/admin/stats" where console.adminToken != nil:
            guard head.method == "GET" else { return methodNotAllowed("GET", headers: headers, reply) }
            guard console.isAdmin(authorization: head.headers["authorization"]) else {
                var h = headers
                h.add("WWW-Authenticate", "Bearer realm=\"presenced\"")
                reply(HTTPEndpoints.errorResponse(status: 401, code: "unauthorized", message: "admin token missing or wrong", headers: h))
                return true
            }
            AdminStats.collect(hub: hub, from: loop) { json in reply(HTTPEndpoints.json(200, json, headers: headers)) }
        default:
            return false
        }
        return true
    }

    /// One of the page's files with the security headers; GET and HEAD only.
    private static func asset(_ head: HTTPRequestHead, _ bytes: [UInt8], type: String, headers: HTTPHeaders) -> HTTPResponse {
        var h = headers
        guard head.method == "GET" || head.method == "HEAD" else {
            h.add("Allow", "GET, HEAD")
            return HTTPEndpoints.errorResponse(status: 405, code: "method_not_allowed", message: "use GET", headers: h)
        }
        h.add("Content-Type", type)
        h.add("Content-Security-Policy", contentSecurityPolicy)
        h.add("X-Frame-Options", "DENY")
        h.add("X-Content-Type-Options", "nosniff")
        h.add("Referrer-Policy", "no-referrer")
        h.add("Cache-Control", "no-store")
        if head.method == "HEAD" {
            h.add("Content-Length", String(bytes.count))
            return HTTPResponse(status: 200, headers: h)
        }
        return HTTPResponse(status: 200, headers: h, body: bytes)
    }

    private static func methodNotAllowed(_ allow: String, headers: HTTPHeaders, _ reply: (HTTPResponse) -> Void) -> Bool {
        var h = headers
        h.add("Allow", allow)
        reply(HTTPEndpoints.errorResponse(status: 405, code: "method_not_allowed", message: "use \(allow)", headers: h))
        return true
    }

    /// `{"user_id": ID}` → a single-use token for ID, minted as `POST /api/v1/ws-token` mints.
    private static func devToken(
        _ head: HTTPRequestHead, body: [UInt8]?, hub: RealtimeHub, requestID: String,
        headers: HTTPHeaders
    ) -> HTTPResponse {
        func bad(_ message: String) -> HTTPResponse {
            HTTPEndpoints.errorResponse(status: 400, code: "bad_request", message: message, headers: headers)
        }
        let contentType = head.headers["content-type"]?.lowercased() ?? ""
        guard contentType == "application/json" || contentType.hasPrefix("application/json;") else {
            return HTTPEndpoints.errorResponse(
                status: 415, code: "unsupported_media_type", message: "send application/json", headers: headers)
        }
        guard let body, !body.isEmpty else { return bad("a JSON body of at most \(WebSocketServer.maxBodyBytes) bytes is required") }
        guard case .object(let fields)? = try? body.withUnsafeBytes({ bytes throws(JSONError) in try JSONValue.parse(bytes, maxDepth: 4) })
        else {
            return bad("the body is not a JSON object")
        }
        guard case .string(let user)? = fields["user_id"], isValidUserID(user) else {
            return bad("user_id must be 1-64 characters of [A-Za-z0-9_.-]")
        }
        let minted = hub.minter.mint(userID: user, ttl: devTokenTTL, now: UnixTime.now())
        let expires = Timestamp.iso8601(seconds: Int(minted.expiresAt), millis: 0)
        Log.debug("dev token issued", requestID: requestID, ["user": user])
        return HTTPEndpoints.json(
            200, "{\"token\":\(JSONWriter.quoted(minted.token)),\"expires_at\":\(JSONWriter.quoted(expires))}",
            headers: headers)
    }

    /// A request straight from this machine (docs/protocol.md, "Console routes"): nothing a proxy
    /// added (`Forwarded`, `X-Forwarded-For`, `Via`), and a `Host` that is a loopback name or
    /// address, so neither a proxy on this host nor a DNS-rebinding page reaches the route.
    static func isLocalRequest(_ head: HTTPRequestHead) -> Bool {
        for proxied in ["forwarded", "x-forwarded-for", "x-forwarded-host", "via"] where head.headers.contains(proxied) { return false }
        guard var host = head.headers["host"]?.lowercased(), !host.isEmpty else { return false }
        // Drop the port: after the last ":" unless that is inside an IPv6 literal.
        if let colon = host.lastIndex(of: ":"), !host.hasPrefix("[") || host[..<colon].hasSuffix("]") {
            let port = host[host.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
            host = String(host[..<colon])
        }
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        guard let address = PeerAddress(parsing: host) else { return false }
        return address.isIPv4 ? (address.low >> 24) & 0xFF == 127 : address == PeerAddress(high: 0, low: 1)
    }

    /// 1–64 characters of `[A-Za-z0-9_.-]`.
    static func isValidUserID(_ s: String) -> Bool {
        let utf8 = s.utf8
        return (1...64).contains(utf8.count)
            && utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == UInt8(ascii: "_")
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
            }
    }
}
