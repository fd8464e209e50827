import PresenceJSON
import PresenceLoop
import PresenceOutbound
import WSCore

/// `POST /api/v1/ws-token` (docs/protocol.md, "Token endpoint"): better-auth says whose session the
/// cookie is; that user gets a fresh single-use token. Before anyone else's work is spent, in this
/// order: a browser page outside ALLOWED_ORIGINS is refused (403), a request without the session
/// cookie is answered 401 without asking, one client address gets WS_TOKEN_RATE per second (429
/// with Retry-After), and at most AUTH_MAX_IN_FLIGHT calls wait for better-auth at once (503, never
/// a hang). better-auth is asked on the loop's own HTTP client.
enum WSTokenEndpoint {
    static let tokenTTL: Int64 = 60

    static func respond(
        to head: HTTPRequestHead, hub: RealtimeHub, auth: AuthServiceClient, requestID: String,
        headers: HTTPHeaders, client peer: PeerAddress?, loop: EventLoop,
        reply: @escaping (HTTPResponse) -> Void
    ) {
        func answer(_ result: WSTokenResult, _ response: HTTPResponse) {
            loop.counters.wsTokenRequests.add(result)
            reply(response)
        }
        if let origin = head.headers["origin"], !hub.origins.allows(origin, host: head.headers["host"]) {
            return answer(
                .forbiddenOrigin,
                HTTPEndpoints.errorResponse(status: 403, code: "forbidden_origin", message: "origin not allowed", headers: headers))
        }
        guard let cookie = head.headers["cookie"], auth.carriesSession(cookie) else {
            return answer(
                .noSession, HTTPEndpoints.errorResponse(status: 401, code: "unauthorized", message: "no session", headers: headers))
        }
        let client = ClientAddress.of(peer: peer, forwardedFor: head.headers["x-forwarded-for"], trusted: hub.trustedProxies)
        if let client, let wait = hub.wsTokenPacer.take(client, now: loop.now) {
            var h = headers
            h.add("Retry-After", String(max(1, (wait + 999) / 1000)))
            return answer(
                .rateLimited, HTTPEndpoints.errorResponse(status: 429, code: "rate_limited", message: "too many token requests", headers: h)
            )
        }
        guard let http = hub.httpClient(on: loop) else {
            return answer(
                .authError,
                HTTPEndpoints.errorResponse(status: 502, code: "auth_unavailable", message: "auth service error", headers: headers))
        }
        if hub.authCallsInFlight.add(1, ordering: .relaxed).newValue > hub.config.authMaxInFlight {
            hub.authCallsInFlight.subtract(1, ordering: .relaxed)
            var h = headers
            h.add("Retry-After", "1")
            return answer(
                .busy, HTTPEndpoints.errorResponse(status: 503, code: "busy", message: "auth service busy; try again", headers: h))
        }
        let traceparent =
            head.headers["traceparent"].flatMap { TraceParent.isValid($0) ? $0 : nil } ?? TraceParent.make(requestID: requestID)
        let minter = hub.minter
        auth.lookup(cookie: cookie, requestID: requestID, traceparent: traceparent, client: http) { lookup in
            hub.authCallsInFlight.subtract(1, ordering: .relaxed)
            switch lookup {
            case .user(let id, let name, let role, let sessionID):
                let allowedRole = role.flatMap(TokenRole.init(claim:))?.claim
                let minted = minter.mint(
                    userID: id, ttl: tokenTTL, role: allowedRole, name: name, sessionID: sessionID, now: UnixTime.now())
                let expires = Timestamp.iso8601(seconds: Int(minted.expiresAt), millis: 0)
                Log.debug("ws-token issued", requestID: requestID, ["user": id])
                answer(
                    .ok,
                    HTTPEndpoints.json(
                        200, "{\"token\":\(JSONWriter.quoted(minted.token)),\"expires_at\":\(JSONWriter.quoted(expires))}",
                        headers: headers))
            case .noSession:
                answer(.noSession, HTTPEndpoints.errorResponse(status: 401, code: "unauthorized", message: "no session", headers: headers))
            case .banned:
                answer(.banned, HTTPEndpoints.errorResponse(status: 403, code: "banned", message: "user is banned", headers: headers))
            case .failed(let why):
                Log.warn("auth service call failed", requestID: requestID, ["error": why])
                answer(
                    .authError,
                    HTTPEndpoints.errorResponse(status: 502, code: "auth_unavailable", message: "auth service error", headers: headers))
            case .timedOut:
                Log.warn("auth service call timed out", requestID: requestID)
                answer(
                    .authTimeout,
                    HTTPEndpoints.errorResponse(status: 504, code: "auth_timeout", message: "auth service timed out", headers: headers))
            }
        }
    }
}
