/// Why an outbound exchange failed. `connect` covers resolving, connecting and a connection that
/// fails later (reset); `tls` the handshake and certificate checks; `protocolError` a request that
/// cannot be sent or a response that breaks HTTP/1.1 (or exceeds the body cap). Messages never
/// carry request headers or bodies.
package enum OutboundError: Error, Sendable, Equatable, CustomStringConvertible {
    case timeout
    case connect(String)
    case tls(String)
    case protocolError(String)

    package var description: String {
        switch self {
        case .timeout: return "timed out"
        case .connect(let message): return "connection failed: \(message)"
        case .tls(let message): return "TLS failed: \(message)"
        case .protocolError(let message): return "HTTP protocol error: \(message)"
        }
    }
}
