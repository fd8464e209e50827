/// Error codes of docs/protocol.md, "Error codes" (the `code` of a server `error` message).
enum ProtocolErrorCode: String, Sendable {
    case badJSON = "bad_json"
    case unknownType = "unknown_type"
    case invalidChannel = "invalid_channel"
    case notJoined = "not_joined"
    case forbiddenChannel = "forbidden_channel"
    case tooLarge = "too_large"
    case rateLimited = "rate_limited"
    case unavailable
}

/// A refused client message: the code and a short human message (echoes at most 64 bytes of input),
/// and the message's nonce when it had a valid one (the error frame carries it back).
struct ProtocolError: Error, Equatable, Sendable {
    var code: ProtocolErrorCode
    var message: String
    var nonce: String? = nil
}
