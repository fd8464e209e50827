import PresenceJSON
import PresenceLoop
import WSCore

/// `GET /api/v1/presence?channel=ID` with `Authorization: Bearer JWT`
/// (docs/protocol.md, "Channel presence endpoint"): who is online in a channel, across every
/// instance, with each user's `name` when known. The token is not spent here, but one already spent
/// on `/ws` is refused (a token read from an access log opens nothing); the channel is checked as a
/// join is (`channels` claim, CHANNEL_AUTH_URL): 403 when refused, 503 when the check is
/// unavailable.
enum PresenceEndpoint {
    static func respond(
        to head: HTTPRequestHead, hub: RealtimeHub, requestID: String, headers: HTTPHeaders,
        loop: EventLoop, reply: @escaping (HTTPResponse) -> Void
    ) {
        func refuse(_ reason: TokenRejection) {
            loop.counters.tokenRejections.add(reason)
            Log.debug("presence token refused", requestID: requestID, ["reason": reason.rawValue])
            reply(HTTPEndpoints.errorResponse(status: 401, code: "invalid_token", message: "token \(reason.rawValue)", headers: headers))
        }
        guard let token = bearerToken(head) else { return refuse(.missing) }
        let now = UnixTime.now()
        let claims: TokenClaims
        switch hub.verifier.verify(token, now: now) {
        case .success(let c): claims = c
        case .failure(let reason): return refuse(reason)
        }
        guard let channel = head.queryParameter("channel"), ClientMessage.isValidChannel(channel) else {
            return reply(
                HTTPEndpoints.errorResponse(
                    status: 400, code: "invalid_channel", message: "channel must be 1-128 of [A-Za-z0-9_.:-]", headers: headers))
        }
        hub.replayGuard.wasUsed(jti: claims.jti, now: now) { spent in
            guard !spent else { return refuse(.replayed) }
            let subject = AccessSubject(
                user: claims.userID, role: claims.role?.claim, sessionID: claims.sessionID,
                channels: claims.channels.map(Set.init))
            let answer = { (decision: AccessDecision) in
                switch decision {
                case .allowed:
                    members(channel, hub: hub, requestID: requestID, headers: headers, reply: reply)
                case .refused:
                    reply(
                        HTTPEndpoints.errorResponse(
                            status: 403, code: "forbidden_channel", message: "not allowed in this channel", headers: headers))
                case .unavailable:
                    reply(
                        HTTPEndpoints.errorResponse(
                            status: 503, code: "unavailable", message: "channel access could not be checked", headers: headers))
                }
            }
            if let decision = hub.access.immediate(subject, channel: channel, on: loop) { return answer(decision) }
            hub.access.ask(subject, channel: channel, requestID: requestID, on: loop, answer)
        }
    }

    /// The token after `Bearer ` in `Authorization`, when there is one.
    static func bearerToken(_ head: HTTPRequestHead) -> String? {
        guard let auth = head.headers["authorization"], auth.lowercased().hasPrefix("bearer ") else { return nil }
        let token = auth.dropFirst(7).trimmingSpaces()
        return token.isEmpty ? nil : token
    }

    private static func members(
        _ channel: String, hub: RealtimeHub, requestID: String, headers: HTTPHeaders,
        reply: @escaping (HTTPResponse) -> Void
    ) {
        hub.presence.members(channel: channel) { members in
            guard let members else {
                Log.warn("presence not reachable", requestID: requestID)
                return reply(
                    HTTPEndpoints.errorResponse(status: 503, code: "unavailable", message: "presence is not reachable", headers: headers))
            }
            var body = "["
            for (i, m) in members.enumerated() {
                if i > 0 { body += "," }
                body += "{\"user_id\":\(JSONWriter.quoted(m.userID)),"
                if let name = m.name { body += "\"name\":\(JSONWriter.quoted(name))," }
                body += "\"online\":true,\"channel\":\(JSONWriter.quoted(channel)),\"connections\":\(m.connections)}"
            }
            body += "]"
            reply(HTTPEndpoints.json(200, body, headers: headers))
        }
    }
}
