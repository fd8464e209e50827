/// A pending ``RedisHost/schedule(afterMillis:_:)`` call.
public protocol RedisTimer: AnyObject {
    /// Stops the work from running; harmless after it ran or was cancelled.
    func cancel()
}
