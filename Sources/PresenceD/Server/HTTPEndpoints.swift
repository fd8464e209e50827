import RedisShim
import WSCore

/// The plain HTTP endpoints served beside the WebSocket upgrade (CONTRACT §3): health,
/// readiness, presence, CORS for `/api/v1/*`, and the console (`ConsoleEndpoints`).
struct HTTPEndpoints: Sendable {
    /// The realtime side (nil in echo mode: health endpoints only).
    let hub: RealtimeHub?

    init(hub: RealtimeHub? = nil) {
        self.hub = hub
    }

    /// Answers a request that is not a WebSocket upgrade; `reply` may run later (on this loop).
    /// `body` is the request body when it was small enough to read (`WebSocketServer.maxBodyBytes`).
    func respond(to head: HTTPRequestHead, body: [UInt8]? = nil, requestID: String, loop: EventLoop,
                 reply: @escaping (HTTPResponse) -> Void) {
        var headers = HTTPHeaders()
        headers.add("X-Request-ID", requestID)
        let isAPI = head.path.hasPrefix("/api/v1/")
        if isAPI, let hub {
            let origin = head.headers["origin"]
            if let origin, hub.origins.allows(origin) {
                headers.add("Access-Control-Allow-Origin", origin)
                headers.add("Access-Control-Allow-Credentials", "true")
                headers.add("Vary", "Origin")
            }
            if head.method == "OPTIONS" {
                return reply(preflight(head, hub: hub, headers: headers))
            }
        }
        if let hub, ConsoleEndpoints.respond(to: head, body: body, hub: hub, requestID: requestID, headers: headers,
                                             loop: loop, reply: reply) {
            return
        }
        switch (head.method, head.path) {
        case ("GET", "/healthz"):
            reply(HTTPEndpoints.json(200, #"{"status":"ok"}"#, headers: headers))
        case ("GET", "/readyz"):
            if hub?.draining.load(ordering: .relaxed) == true {
                reply(HTTPEndpoints.errorResponse(status: 503, code: "draining", message: "server draining", headers: headers))
            } else if hub?.redisReady == false {
                reply(HTTPEndpoints.errorResponse(status: 503, code: "redis_unavailable", message: "Redis is not reachable", headers: headers))
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
            hub.gather(from: loop, Metrics.LoopFigures(), read: { loop in Metrics.LoopFigures(hub: hub, loop: loop) },
                       combine: { $0.add($1) }) { figures in
                var h = headers
                h.add("Content-Type", Metrics.contentType)
                reply(HTTPResponse(status: 200, headers: h, body: Array(Metrics.render(hub: hub, loops: figures).utf8)))
            }
        case ("GET", "/api/v1/presence") where hub != nil:
            presence(head, hub: hub!, requestID: requestID, headers: headers, loop: loop, reply: reply)
        case ("POST", "/api/v1/ws-token") where hub?.authService != nil:
            wsToken(head, hub: hub!, auth: hub!.authService!, requestID: requestID, headers: headers, loop: loop, reply: reply)
        case (_, "/healthz"), (_, "/readyz"), (_, "/metrics"), (_, "/api/v1/presence"):
            var h = headers
            h.add("Allow", "GET")
            reply(HTTPEndpoints.errorResponse(status: 405, code: "method_not_allowed", message: "use GET", headers: h))
        case (_, "/api/v1/ws-token") where hub?.authService != nil:
            var h = headers
            h.add("Allow", "POST")
            reply(HTTPEndpoints.errorResponse(status: 405, code: "method_not_allowed", message: "use POST", headers: h))
        default:
            reply(HTTPEndpoints.errorResponse(status: 404, code: "not_found", message: "no such endpoint", headers: headers))
        }
    }

    /// CORS preflight for casa's browser code on other subdomains.
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

    /// `GET /api/v1/presence?channel=ID` with `Authorization: Bearer JWT` (not single use).
    private func presence(_ head: HTTPRequestHead, hub: RealtimeHub, requestID: String, headers: HTTPHeaders, loop: EventLoop,
                          reply: @escaping (HTTPResponse) -> Void) {
        func refuse(_ reason: TokenRejection) {
            loop.counters.tokenRejections.add(reason)
            Log.debug("presence token refused", requestID: requestID, ["reason": reason.rawValue])
            reply(HTTPEndpoints.errorResponse(status: 401, code: "invalid_token", message: "token \(reason.rawValue)", headers: headers))
        }
        guard let auth = head.headers["authorization"], auth.lowercased().hasPrefix("bearer ") else { return refuse(.missing) }
        let token = auth.dropFirst(7).trimmingSpaces()
        let claims: TokenClaims
        switch hub.verifier.verify(token, now: UnixTime.now()) {
        case .success(let c): claims = c
        case .failure(let reason): return refuse(reason)
        }
        guard let channel = head.queryParameter("channel"), ClientMessage.isValidChannel(channel) else {
            return reply(HTTPEndpoints.errorResponse(status: 400, code: "invalid_channel", message: "channel must be 1-128 of [A-Za-z0-9_.:-]", headers: headers))
        }
        if let allowed = claims.channels, !allowed.contains(channel) {
            return reply(HTTPEndpoints.errorResponse(status: 403, code: "forbidden_channel", message: "the token does not allow this channel", headers: headers))
        }
        hub.presence.members(channel: channel) { members in
            guard let members else {
                Log.warn("presence not reachable", requestID: requestID)
                return reply(HTTPEndpoints.errorResponse(status: 503, code: "unavailable", message: "presence is not reachable", headers: headers))
            }
            var body = "["
            for (i, m) in members.enumerated() {
                if i > 0 { body += "," }
                body += "{\"user_id\":\(JSONWriter.quoted(m.userID)),\"online\":true,\"channel\":\(JSONWriter.quoted(channel)),\"connections\":\(m.connections)}"
            }
            body += "]"
            reply(HTTPEndpoints.json(200, body, headers: headers))
        }
    }

    /// `POST /api/v1/ws-token`: better-auth says whose session the Cookie is; that user gets a
    /// fresh single-use token. better-auth is asked on a worker thread; the answer comes back
    /// through the loop's mailbox.
    private func wsToken(_ head: HTTPRequestHead, hub: RealtimeHub, auth: AuthServiceClient, requestID: String,
                         headers: HTTPHeaders, loop: EventLoop, reply: @escaping (HTTPResponse) -> Void) {
        guard let cookie = head.headers["cookie"], !cookie.isEmpty else {
            loop.counters.wsTokenRequests.add(.noSession)
            return reply(HTTPEndpoints.errorResponse(status: 401, code: "unauthorized", message: "no session", headers: headers))
        }
        let traceparent = head.headers["traceparent"].flatMap { TraceParent.isValid($0) ? $0 : nil } ?? TraceParent.make(requestID: requestID)
        let minter = hub.minter
        let headers = UnsafeSendable(headers)
        let reply = UnsafeSendable(reply)
        auth.lookup(cookie: cookie, requestID: requestID, traceparent: traceparent) { lookup in
            let response: HTTPResponse
            let result: WSTokenResult
            switch lookup {
            case .user(let id, let name, let role, let sessionID):
                let allowedRole = role.flatMap { TokenVerifier.roles.contains($0) ? $0 : nil }
                let minted = minter.mint(userID: id, ttl: 60, role: allowedRole, name: name, sessionID: sessionID, now: UnixTime.now())
                let expires = Timestamp.iso8601(seconds: Int(minted.expiresAt), millis: 0)
                response = HTTPEndpoints.json(200, "{\"token\":\(JSONWriter.quoted(minted.token)),\"expires_at\":\(JSONWriter.quoted(expires))}", headers: headers.value)
                result = .ok
                Log.debug("ws-token issued", requestID: requestID, ["user": id])
            case .noSession:
                response = HTTPEndpoints.errorResponse(status: 401, code: "unauthorized", message: "no session", headers: headers.value)
                result = .noSession
            case .banned:
                response = HTTPEndpoints.errorResponse(status: 403, code: "banned", message: "user is banned", headers: headers.value)
                result = .banned
            case .failed(let why):
                Log.warn("auth service call failed", requestID: requestID, ["error": why])
                response = HTTPEndpoints.errorResponse(status: 502, code: "auth_unavailable", message: "auth service error", headers: headers.value)
                result = .authError
            case .timedOut:
                Log.warn("auth service call timed out", requestID: requestID)
                response = HTTPEndpoints.errorResponse(status: 504, code: "auth_timeout", message: "auth service timed out", headers: headers.value)
                result = .authTimeout
            }
            let answer = UnsafeSendable(response)
            loop.mailbox.post { loop in
                loop.counters.wsTokenRequests.add(result)
                reply.value(answer.value)
            }
        }
    }

    /// `{"error": message, "code": code}` with the given status (CONTRACT §3).
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

/// Request ids: the caller's `X-Request-ID` when it is sane, otherwise a new random one.
enum RequestID {
    static func accept(_ given: String?) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 128,
           given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return given
        }
        return make()
    }

    /// 128 random bits as 32 hex digits.
    static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        let a = rng.next() as UInt64, b = rng.next() as UInt64
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(a) + hex(b)
    }
}
