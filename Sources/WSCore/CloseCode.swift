/// A close status code (RFC 6455 §7.4).
public struct CloseCode: RawRepresentable, Hashable, Sendable {
    /// The 16-bit status code as sent on the wire (big-endian there).
    public var rawValue: UInt16

    /// Wraps any code, valid on the wire or not.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// 1000: normal closure.
    public static let normal = CloseCode(rawValue: 1000)
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    public static let goingAway = CloseCode(rawValue: 1001)
    /// 1002: protocol error.
    public static let protocolError = CloseCode(rawValue: 1002)
    /// 1003: a data type the endpoint cannot accept.
    public static let unsupportedData = CloseCode(rawValue: 1003)
    /// 1005: no status code was present (never sent on the wire).
    public static let noStatusReceived = CloseCode(rawValue: 1005)
    /// 1006: the connection dropped without a close frame (never sent on the wire).
    public static let abnormalClosure = CloseCode(rawValue: 1006)
    /// 1007: payload data inconsistent with the message type (e.g. invalid UTF-8 in text).
    public static let invalidPayload = CloseCode(rawValue: 1007)
    /// 1008: a policy was violated.
    public static let policyViolation = CloseCode(rawValue: 1008)
    /// 1009: the message is too big to process.
    public static let messageTooBig = CloseCode(rawValue: 1009)
    /// 1010: the client expected an extension the server did not negotiate.
    public static let mandatoryExtension = CloseCode(rawValue: 1010)
    /// 1011: an unexpected server condition.
    public static let internalError = CloseCode(rawValue: 1011)
    /// 4008 (application range): the peer reads too slowly to keep up with its outgoing queue.
    public static let slowConsumer = CloseCode(rawValue: 4008)

    /// Whether a peer may send this code in a close frame: 1000–1003, 1007–1014, 3000–4999.
    /// (0–999, 1004–1006, 1015, 1016–2999 and ≥ 5000 are invalid.)
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}
