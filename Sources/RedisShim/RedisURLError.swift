/// A `REDIS_URL` that ``RedisEndpoint/parse(_:)`` rejects. The message never quotes the URL, so
/// it cannot leak a password into logs.
public struct RedisURLError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, without any part of the URL.
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { "invalid Redis URL: \(message)" }
}
