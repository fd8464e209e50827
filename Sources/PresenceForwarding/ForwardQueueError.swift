/// Why a queue operation failed.
package enum ForwardQueueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The configured bound (entries or bytes) is reached: refuse the message (`unavailable`),
    /// never drop it silently.
    case full
    /// The disk refused (ENOSPC, EIO, …) or the data is not a queue; the text says which file.
    case io(String)
    /// Redis cannot be reached right now (not connected, timeout, connection lost).
    case unavailable

    package var description: String {
        switch self {
        case .full: return "forward queue full"
        case .io(let message): return "forward queue: \(message)"
        case .unavailable: return "forward queue unavailable (Redis unreachable)"
        }
    }
}
