import PresenceJSON
import PresenceLoop
import RedisShim
import WSCore

/// The plain HTTP endpoints served beside the WebSocket upgrade
/// (docs/protocol.md, "HTTP endpoints"): health, readiness, presence, CORS for `/api/v1/*`, and the
/// console (`ConsoleEndpoints`).
struct HTTPEndpoints: Sendable {
    /// The realtime side (nil in echo mode: health endpoints only).
    let hub: RealtimeHub?

    init(hub: RealtimeHub? = nil) {
        self.hub = hub
    }

    /// Answers a request that is not a WebSocket upgrade; `reply` may run later (on this loop).
    /// `body` is the request body when it was small enough to read (`WebSocketServer.maxBodyBytes`);
    /// `connection` is the connection it came on (its address paces `POST /api/v1/ws-token`).
    func respond(
        to head: HTTPRequestHead, body: [UInt8]? = nil, requestID: String, connection: ConnectionID, loop: EventLoop,
        reply: @escaping (HTTPResponse) -> Void
    ) {
        var headers = HTTPHeaders()
        headers.add("X-Request-ID", requestID)
        let isAPI = head.path.hasPrefix("/api/v1/")
        if isAPI, let hub {
            if let origin = head.headers["origin"] {
                for (name, value) in hub.origins.corsHeaders(for: origin) { headers.add(name, value) }
            }
            if head.method == "OPTIONS" {
                return reply(preflight(head, hub: hub, headers: headers))
            }
        }
        if let hub,
            ConsoleEndpoints.respond(
                to: head, body: body, hub: hub, requestID: requestID, headers: headers,
                loop: loop, reply: reply)
        {
            return
        }
        if let hub,
            ServerAPIEndpoints.respond(
                to: head, body: body, hub: hub, requestID: requestID, headers: headers,
                loop: loop, reply: reply)
        {
            return
        }
        switch (head.method, head.path) {
        case ("GET", "/healthz"):
            reply(HTTPEndpoints.json(200, #"{"status":"ok"}"#, headers: headers))
        case ("GET", "/readyz"):
            if hub?.draining.load(ordering: .relaxed) == true {
                reply(HTTPEndpoints.errorResponse(status: 503, code: "draining", message: "server draining", headers: headers))
            } else if hub?.redisReady == false {
                reply(
                    HTTPEndpoints.errorResponse(status: 503, code: "redis_unavailable", message: "Redis is not reachable", headers: headers)
                )
            } else {
                reply(HTTPEndpoints.json(200, #"{"status":"ready"}"#, headers: headers))
            }
        case ("GET", "/metrics"):
            guard let hub else {
                var h = headers
                h.add("Content-Type", Metrics.contentType)
                return reply(HTTPResponse(status: 200, headers: h, body: Array(Metrics.render(hub: nil, loops: nil).utf8)))
            }
            // Per-loop counters, each read on its own loop.
            hub.gather(
                from: loop, Metrics.LoopFigures(), read: { loop in Metrics.LoopFigures(hub: hub, loop: loop) },
                combine: { $0.add($1) }
            ) { figures in
                var h = headers
                h.add("Content-Type", Metrics.contentType)
                reply(HTTPResponse(status: 200, headers: h, body: Array(Metrics.render(hub: hub, loops: figures).utf8)))
            }
        case ("GET", "/api/v1/presence") where hub != nil:
            PresenceEndpoint.respond(to: head, hub: hub!, requestID: requestID, headers: headers, loop: loop, reply: reply)
        case ("POST", "/api/v1/ws-token") where hub?.authService != nil:
            WSTokenEndpoint.respond(
                to: head, hub: hub!, auth: hub!.authService!, requestID: requestID, headers: headers,
                client: loop.peerAddress(connection), loop: loop, reply: reply)
        case (_, "/healthz"), (_, "/readyz"), (_, "/metrics"), (_, "/api/v1/presence"):
            reply(HTTPEndpoints.methodNotAllowed("GET", headers: headers))
        case (_, "/api/v1/ws-token") where hub?.authService != nil:
            reply(HTTPEndpoints.methodNotAllowed("POST", headers: headers))
        default:
            reply(HTTPEndpoints.errorResponse(status: 404, code: "not_found", message: "no such endpoint", headers: headers))
        }
    }

    /// CORS preflight for casa's browser code on other subdomains (the allowed origin and
    /// credentials are already in `headers`).
    private func preflight(_ head: HTTPRequestHead, hub: RealtimeHub, headers: HTTPHeaders) -> HTTPResponse {
        guard let origin = head.headers["origin"], hub.origins.allows(origin) else {
            return HTTPEndpoints.errorResponse(status: 403, code: "forbidden_origin", message: "origin not allowed", headers: headers)
        }
        var h = headers
        h.add("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        h.add("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID, traceparent")
        h.add("Access-Control-Max-Age", "600")
        return HTTPResponse(status: 204, headers: h)
    }

    /// 405 with `Allow`.
    static func methodNotAllowed(_ allow: String, headers: HTTPHeaders) -> HTTPResponse {
        var h = headers
        h.add("Allow", allow)
        return errorResponse(status: 405, code: "method_not_allowed", message: "use \(allow)", headers: h)
    }

    /// `{"error": message, "code": code}` with the given status
    /// (docs/protocol.md, "Requests and responses").
    static func errorResponse(status: Int, code: String, message: String, headers: HTTPHeaders) -> HTTPResponse {
        json(status, "{\"error\":\(JSONWriter.quoted(message)),\"code\":\(JSONWriter.quoted(code))}", headers: headers)
    }

    static func json(_ status: Int, _ body: String, headers: HTTPHeaders) -> HTTPResponse {
        var headers = headers
        headers.add("Content-Type", "application/json")
        headers.add("Cache-Control", "no-store")
        return HTTPResponse(status: status, headers: headers, body: Array(body.utf8))
    }
}
