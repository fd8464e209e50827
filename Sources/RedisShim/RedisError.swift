/// Why a Redis command or connection attempt failed.
public enum RedisError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The connection is not ready (connecting, reconnecting, or shut down); nothing was sent.
    case notConnected
    /// The oldest pending command (or the connection attempt) took longer than its timeout; the
    /// connection was dropped and is being re-established.
    case timeout
    /// The connection closed or failed while the command was pending; the reason is the host's.
    case connectionLost(String)
    /// The server answered with an error reply, e.g. `NOSCRIPT …` or `MOVED 3999 127.0.0.1:6381`.
    case server(String)
    /// The bytes from the server were not valid RESP, a reply arrived that no command was
    /// waiting for, or the command cannot be sent on this kind of connection.
    case protocolError(String)
    /// The server rejected `AUTH` during the handshake (wrong password, unknown user, …).
    case authFailed(String)
    /// `RedisOptions.maxPending` commands are already waiting for replies; nothing was sent.
    case tooManyPending

    public var description: String {
        switch self {
        case .notConnected: return "redis: not connected"
        case .timeout: return "redis: timeout"
        case .connectionLost(let reason): return "redis: connection lost: \(reason)"
        case .server(let message): return "redis: server error: \(message)"
        case .protocolError(let message): return "redis: protocol error: \(message)"
        case .authFailed(let message): return "redis: authentication failed: \(message)"
        case .tooManyPending: return "redis: too many pending commands"
        }
    }
}
