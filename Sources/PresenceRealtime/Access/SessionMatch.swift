import PresenceJSON
import WSCore

/// Which sessions a revocation closes (docs/protocol.md, "Revocation").
enum SessionMatch: Equatable, Sendable {
    /// Every connection of this user (`POST /api/v1/disconnect {"user_id"}`).
    case user(String)
    /// Every connection opened with a token of this better-auth session (`{"session_id"}`: the
    /// token's `sid`).
    case session(String)
    /// Connections whose token was signed by a secret outside this set of `TokenVerifier.keyID`s
    /// (a SIGHUP retired it).
    case signedWithout(Set<UInt64>)

    /// Whether a session with these facts matches.
    func matches(user: String, sessionID: String?, keyID: UInt64) -> Bool {
        switch self {
        case .user(let id): return user == id
        case .session(let id): return sessionID == id
        case .signedWithout(let kept): return !kept.contains(keyID)
        }
    }

    /// The message other instances receive through Redis (user and session revocations only):
    /// `{"disconnect":{"user_id":U}}` or `{"disconnect":{"session_id":S}}`.
    var controlMessage: [UInt8] {
        switch self {
        case .user(let id): return Array("{\"disconnect\":{\"user_id\":\(JSONWriter.quoted(id))}}".utf8)
        case .session(let id): return Array("{\"disconnect\":{\"session_id\":\(JSONWriter.quoted(id))}}".utf8)
        case .signedWithout: return []
        }
    }

    /// Reads a `controlMessage`.
    init?(controlMessage bytes: [UInt8]) {
        guard let document = try? bytes.withUnsafeBytes({ raw throws(JSONError) in try JSONValue.parse(raw, maxDepth: 4) }),
            let target = document["disconnect"]
        else { return nil }
        if let user = target["user_id"]?.stringValue, !user.isEmpty {
            self = .user(user)
        } else if let session = target["session_id"]?.stringValue, !session.isEmpty {
            self = .session(session)
        } else {
            return nil
        }
    }
}

extension CloseCode {
    /// 4401: re-authenticate — the connection is too old (MAX_CONNECTION_AGE) or its token's
    /// secret was retired; the client fetches a fresh token and reconnects at once.
    static let reauthenticate = CloseCode(rawValue: 4401)
    /// 4403: revoked by the server API (`POST /api/v1/disconnect`); the client does not retry
    /// with what it has.
    static let revoked = CloseCode(rawValue: 4403)
}
