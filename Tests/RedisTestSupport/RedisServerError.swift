/// Why a ``RedisServerProcess`` could not start.
public struct RedisServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
