/// What RedisShim needs from the event loop it runs on: a clock, connections and timers.
///
/// Everything is single-threaded: the host calls back (transport events, timer work) on the
/// thread that owns the Redis objects, never from inside the call that registered the callback
/// (``openConnection(to:events:)`` and ``schedule(afterMillis:_:)`` return before any callback).
/// RedisShim takes no locks and starts no threads.
public protocol RedisHost: AnyObject {
    /// Monotonic milliseconds (a per-turn cached clock is fine).
    var nowMillis: Int64 { get }

    /// Starts opening a TCP connection (TLS when `endpoint.tls`, with SNI `endpoint.host`) and
    /// returns at once. Later, on the same thread, the host calls `events.transportConnected()`
    /// once established, `transportReceived` for every chunk read, and `transportClosed` once
    /// when the connection fails or ends (also when the connect fails). After
    /// ``RedisTransport/close()`` no more events are delivered (stray ones are ignored anyway).
    func openConnection(to endpoint: RedisEndpoint, events: RedisTransportEvents) -> RedisTransport

    /// Calls `work` once, on the same thread, after about `millis` milliseconds, unless the
    /// returned timer is cancelled first.
    func schedule(afterMillis millis: Int64, _ work: @escaping () -> Void) -> RedisTimer
}
