import WSCore

/// The fixed label values of one counter family: its cases number the family's counters
/// (`index` 0..<`labels.count`), so a label never comes from input (no channel or user id).
protocol CounterLabel {
    /// Position of this value's counter in the family.
    var index: Int { get }
    /// Every label value, in `index` order.
    static var labels: [String] { get }
}

/// How a WebSocket upgrade request ended (`presenced_upgrades_total{result}`).
enum UpgradeResult: Int, CounterLabel, CaseIterable {
    /// 101 Switching Protocols.
    case ok
    /// 400: not a valid upgrade request (or another 4xx the handshake check gave).
    case badRequest
    /// 426: an unsupported `Sec-WebSocket-Version`.
    case upgradeRequired
    /// 401: token missing, invalid, expired or replayed.
    case unauthorized
    /// 403: Origin outside ALLOWED_ORIGINS.
    case forbidden
    /// 503 while draining.
    case draining
    /// 503 at MAX_CONNECTIONS.
    case atCapacity
    /// Any other refusal the application gave.
    case other

    var index: Int { rawValue }
    static let labels = ["ok", "bad_request", "upgrade_required", "unauthorized", "forbidden", "draining", "at_capacity", "other"]

    /// The result of an application's refusal (status and error code).
    static func of(refusal status: Int, code: String) -> UpgradeResult {
        switch status {
        case 400: return .badRequest
        case 401: return .unauthorized
        case 403: return .forbidden
        case 426: return .upgradeRequired
        case 503: return code == "draining" ? .draining : .atCapacity
        default: return .other
        }
    }
}

/// A WebSocket frame's opcode as a label (`presenced_frames_{in,out}_total{opcode}`).
enum FrameOpcode: Int, CounterLabel, CaseIterable {
    case text, binary, close, ping, pong, other

    var index: Int { rawValue }
    static let labels = ["text", "binary", "close", "ping", "pong", "other"]

    /// The opcode of an encoded frame (its first byte).
    @inline(__always)
    static func of(frame: UnsafeRawPointer) -> FrameOpcode {
        switch frame.load(as: UInt8.self) & 0x0F {
        case 0x1: return .text
        case 0x2: return .binary
        case 0x8: return .close
        case 0x9: return .ping
        case 0xA: return .pong
        default: return .other
        }
    }
}

/// A client message's `type` as a label (`presenced_messages_in_total{type}`); `other` is
/// everything that is not one of the protocol's types (bad JSON, unknown type, binary).
enum InboundMessageType: Int, CounterLabel, CaseIterable {
    case join, leave, message, typing, ping, other

    var index: Int { rawValue }
    static let labels = ["join", "leave", "message", "typing", "ping", "other"]
}

/// A server message's `type` as a label (`presenced_messages_out_total{type}`); `other` is a
/// data frame that is not one of the protocol's messages (the echo target's).
enum OutboundMessageType: Int, CounterLabel, CaseIterable {
    case message, presence, typing, pong, error, other

    var index: Int { rawValue }
    static let labels = ["message", "presence", "typing", "pong", "error", "other"]

    /// The 8 bytes `"type":"` after the payload's `{`, as a little-endian load.
    static let typePrefix: UInt64 = 0x223A_2265_7079_7422

    /// The type of a `ServerMessage` frame, read from its first bytes (every one starts with
    /// `{"type":"…`); a few loads, no parsing, once per fan-out.
    @inline(__always)
    static func of(frame: UnsafeRawPointer, count: Int) -> OutboundMessageType {
        guard count >= 2 else { return .other }
        let length = frame.load(fromByteOffset: 1, as: UInt8.self) & 0x7F
        let header = length < 126 ? 2 : (length == 126 ? 4 : 10)
        guard count >= header + 11, frame.load(fromByteOffset: header, as: UInt8.self) == UInt8(ascii: "{"),
            UInt64(littleEndian: frame.loadUnaligned(fromByteOffset: header + 1, as: UInt64.self)) == typePrefix
        else { return .other }
        switch frame.load(fromByteOffset: header + 9, as: UInt8.self) {
        case UInt8(ascii: "m"): return .message
        case UInt8(ascii: "t"): return .typing
        case UInt8(ascii: "e"): return .error
        case UInt8(ascii: "p"):
            return frame.load(fromByteOffset: header + 10, as: UInt8.self) == UInt8(ascii: "r") ? .presence : .pong
        default: return .other
        }
    }
}

/// Token rejections as a label (`presenced_token_rejections_total{reason}`): the verifier's reasons.
extension TokenRejection: CounterLabel {
    var index: Int {
        switch self {
        case .missing: 0
        case .malformed: 1
        case .algorithm: 2
        case .signature: 3
        case .expired: 4
        case .notYetValid: 5
        case .issuedInFuture: 6
        case .lifetime: 7
        case .audience: 8
        case .claims: 9
        case .replayed: 10
        }
    }
    static let labels = [
        "missing", "malformed", "algorithm", "signature", "expired", "not_yet_valid",
        "issued_in_future", "lifetime", "audience", "claims", "replayed",
    ]
}

/// How a `POST /api/v1/ws-token` ended (`presenced_ws_token_requests_total{result}`).
enum WSTokenResult: Int, CounterLabel, CaseIterable {
    /// 200: a token was minted.
    case ok
    /// 401: no session cookie, or better-auth knows no session for it.
    case noSession
    /// 403: the user is banned.
    case banned
    /// 502: better-auth answered with an error or could not be reached.
    case authError
    /// 504: better-auth did not answer in time.
    case authTimeout
    /// 403: the request came from a page outside ALLOWED_ORIGINS (better-auth not asked).
    case forbiddenOrigin
    /// 429: the client address is over WS_TOKEN_RATE (better-auth not asked).
    case rateLimited
    /// 503: AUTH_MAX_IN_FLIGHT calls were already waiting for better-auth (not asked).
    case busy

    var index: Int { rawValue }
    static let labels = ["ok", "no_session", "banned", "auth_error", "auth_timeout", "forbidden_origin", "rate_limited", "busy"]
}
