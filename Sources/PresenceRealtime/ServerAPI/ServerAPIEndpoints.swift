import PresenceJSON
import PresenceLoop
import WSCore

/// The server API (docs/protocol.md, "Server API"): family-hub's own backend, never browsers,
/// authorised by `Authorization: Bearer ${SERVER_API_TOKEN}` (401 otherwise). Without
/// SERVER_API_TOKEN its routes do not exist (404).
///
/// - `POST /api/v1/disconnect` `{"user_id":U}` or `{"session_id":S}`: every instance closes the
///   matching connections with 4403; the answer counts this instance's.
/// - `POST /api/v1/publish` `{"channel","sender","content","nonce"?,"forward"?}`: a chat message
///   from family-hub's backend, stored in history, fanned out on every instance and forwarded to
///   chat-service unless `forward` is false, exactly like a client's; answers
///   `{"id","offset","epoch","timestamp"}` once stored (the original's for a nonce seen before).
/// - `GET /api/v1/presence?user=U1,U2,…`: whether each user has a connection on any instance
///   (`UserPresence`). Without SERVER_API_TOKEN the query goes to the JWT presence endpoint,
///   like any other `GET /api/v1/presence`.
enum ServerAPIEndpoints {
    /// Answers the request when it is a server API route (true), else leaves it to the caller.
    static func respond(
        to head: HTTPRequestHead, body: [UInt8]?, hub: RealtimeHub, requestID: String, headers: HTTPHeaders,
        loop: EventLoop, reply: @escaping (HTTPResponse) -> Void
    ) -> Bool {
        guard let credential = hub.serverAPI else { return false }
        switch head.path {
        case "/api/v1/disconnect":
            guard head.method == "POST" else {
                reply(HTTPEndpoints.methodNotAllowed("POST", headers: headers))
                return true
            }
            guard authorized(head, credential, headers: headers, reply) else { return true }
            disconnect(body, hub: hub, requestID: requestID, headers: headers, loop: loop, reply: reply)
        case "/api/v1/publish":
            guard head.method == "POST" else {
                reply(HTTPEndpoints.methodNotAllowed("POST", headers: headers))
                return true
            }
            guard authorized(head, credential, headers: headers, reply) else { return true }
            publish(body, hub: hub, requestID: requestID, headers: headers, loop: loop, reply: reply)
        case "/api/v1/presence" where head.queryParameter("user") != nil:
            guard head.method == "GET" else {
                reply(HTTPEndpoints.methodNotAllowed("GET", headers: headers))
                return true
            }
            guard authorized(head, credential, headers: headers, reply) else { return true }
            userPresence(head, hub: hub, requestID: requestID, headers: headers, reply: reply)
        default:
            return false
        }
        return true
    }

    private static func authorized(
        _ head: HTTPRequestHead, _ credential: BearerCredential, headers: HTTPHeaders,
        _ reply: (HTTPResponse) -> Void
    ) -> Bool {
        guard credential.accepts(authorization: head.headers["authorization"]) else {
            var h = headers
            h.add("WWW-Authenticate", "Bearer realm=\"presenced\"")
            reply(HTTPEndpoints.errorResponse(status: 401, code: "unauthorized", message: "server API token missing or wrong", headers: h))
            return false
        }
        return true
    }

    /// The request body as a JSON object; nil after answering 400.
    static func object(_ body: [UInt8]?, headers: HTTPHeaders, _ reply: (HTTPResponse) -> Void) -> [String: JSONValue]? {
        guard let body, !body.isEmpty,
            case .object(let fields)? = try? body.withUnsafeBytes({ raw throws(JSONError) in try JSONValue.parse(raw, maxDepth: 4) })
        else {
            reply(
                HTTPEndpoints.errorResponse(
                    status: 400, code: "bad_json",
                    message: "a JSON object of at most \(WebSocketServer.maxBodyBytes) bytes is required", headers: headers))
            return nil
        }
        return fields
    }

    private static func publish(
        _ body: [UInt8]?, hub: RealtimeHub, requestID: String, headers: HTTPHeaders, loop: EventLoop,
        reply: @escaping (HTTPResponse) -> Void
    ) {
        guard let fields = object(body, headers: headers, reply) else { return }
        func bad(_ code: String, _ message: String) {
            reply(HTTPEndpoints.errorResponse(status: 400, code: code, message: message, headers: headers))
        }
        let known: Set<String> = ["channel", "sender", "content", "nonce", "forward"]
        if let unknown = fields.keys.first(where: { !known.contains($0) }) {
            return bad("bad_json", "unknown field '\(unknown.prefix(64))'")
        }
        guard let channel = fields["channel"]?.stringValue, ClientMessage.isValidChannel(channel) else {
            return bad("invalid_channel", "channel must be 1-128 of [A-Za-z0-9_.:-]")
        }
        guard let sender = fields["sender"]?.stringValue, (1...256).contains(sender.utf8.count) else {
            return bad("bad_json", "sender must be a string of 1-256 bytes")
        }
        guard let content = fields["content"]?.stringValue, !content.isEmpty else {
            return bad("bad_json", "content must be a non-empty string")
        }
        guard content.utf8.count <= ClientMessage.maxContentBytes else {
            return bad("too_large", "content is over \(ClientMessage.maxContentBytes) bytes")
        }
        var nonce: String?
        if let value = fields["nonce"] {
            guard let text = value.stringValue, ClientMessage.isValidNonce(text) else {
                return bad("bad_json", "nonce must be 1-\(ClientMessage.maxNonceBytes) characters of [A-Za-z0-9_-]")
            }
            nonce = text
        }
        var forward = true
        if let value = fields["forward"] {
            guard let flag = value.boolValue else { return bad("bad_json", "forward must be a boolean") }
            forward = flag
        }
        guard let application = hub.application(on: loop) else { return bad("unavailable", "not serving") }
        application.publish(
            channel: channel, sender: sender, content: content, nonce: nonce, forward: forward,
            requestID: requestID
        ) { published in
            switch published {
            case .refused:
                reply(
                    HTTPEndpoints.errorResponse(
                        status: 503, code: "unavailable", message: "the message could not be stored; try again",
                        headers: headers))
            case .stored(let stored, let id, let timestamp):
                application.realtimeCounters.publishes &+= stored.duplicate ? 0 : 1
                // A nonce seen before answers with the original's id and time.
                let original = stored.duplicate ? PublishedFrame(stored.frame) : nil
                var body = "{\"id\":\(JSONWriter.quoted(original?.id ?? id))"
                if let position = stored.position {
                    body += ",\"offset\":\(position.offset),\"epoch\":\(JSONWriter.quoted(position.epoch))"
                }
                body += ",\"timestamp\":\(JSONWriter.quoted(original?.timestamp ?? timestamp))}"
                reply(HTTPEndpoints.json(200, body, headers: headers))
            }
        }
    }

    /// The id and timestamp of a message frame (a nonce's original, read back).
    private struct PublishedFrame {
        var id: String?
        var timestamp: String?

        init(_ frame: SharedBytes) {
            let document = frame.withBytes { bytes -> JSONValue? in
                guard let payload = ServerMessage.payload(of: bytes) else { return nil }
                return try? JSONValue.parse(payload)
            }
            id = document?["id"]?.stringValue
            timestamp = document?["timestamp"]?.stringValue
        }
    }

    private static func disconnect(
        _ body: [UInt8]?, hub: RealtimeHub, requestID: String, headers: HTTPHeaders, loop: EventLoop,
        reply: @escaping (HTTPResponse) -> Void
    ) {
        guard let fields = object(body, headers: headers, reply) else { return }
        let match: SessionMatch
        switch (fields["user_id"]?.stringValue, fields["session_id"]?.stringValue) {
        case (let user?, nil) where !user.isEmpty && fields.count == 1: match = .user(user)
        case (nil, let session?) where !session.isEmpty && fields.count == 1: match = .session(session)
        default:
            return reply(
                HTTPEndpoints.errorResponse(
                    status: 400, code: "bad_request",
                    message: "send exactly one of user_id or session_id (a non-empty string)", headers: headers))
        }
        hub.revoke(match, from: loop) { count in
            Log.info("connections revoked", requestID: requestID, ["count": "\(count)"])
            reply(HTTPEndpoints.json(200, "{\"disconnected\":\(count)}", headers: headers))
        }
    }

    /// `GET /api/v1/presence?user=U1,U2,…`: `[{"user_id","online","last_seen"}]` in request order
    /// (`last_seen` null while online, or when the user was never seen or is forgotten).
    private static func userPresence(
        _ head: HTTPRequestHead, hub: RealtimeHub, requestID: String, headers: HTTPHeaders,
        reply: @escaping (HTTPResponse) -> Void
    ) {
        func refuse(_ message: String) {
            reply(HTTPEndpoints.errorResponse(status: 400, code: "bad_request", message: message, headers: headers))
        }
        guard head.queryParameter("channel") == nil else { return refuse("ask about users or about a channel, not both") }
        let users = (head.queryParameter("user") ?? "").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard users.count <= UserPresence.maxQueryUsers else {
            return refuse("at most \(UserPresence.maxQueryUsers) users per request")
        }
        guard users.allSatisfy(UserPresence.isValidUserID) else {
            return refuse("user must be a comma-separated list of user ids (1-\(UserPresence.maxUserIDBytes) bytes, no control characters)")
        }
        hub.presence.users(users) { list in
            guard let list else {
                Log.warn("user presence not reachable", requestID: requestID)
                return reply(
                    HTTPEndpoints.errorResponse(status: 503, code: "unavailable", message: "presence is not reachable", headers: headers))
            }
            var body = "["
            for (i, user) in list.enumerated() {
                if i > 0 { body += "," }
                body += "{\"user_id\":\(JSONWriter.quoted(user.userID)),\"online\":\(user.online),\"last_seen\":"
                body += user.lastSeen.map { "\"" + Timestamp.iso8601(millis: $0) + "\"" } ?? "null"
                body += "}"
            }
            body += "]"
            reply(HTTPEndpoints.json(200, body, headers: headers))
        }
    }
}
