/// Tuning of a ``RedisConnection`` or ``RedisSubscriber``.
public struct RedisOptions: Hashable, Sendable {
    /// The oldest pending command may wait this long for its reply; past it the connection is
    /// considered broken: every pending command fails with ``RedisError/timeout`` and it reconnects.
    public var commandTimeoutMillis: Int64
    /// Budget for TCP connect plus the handshake (`AUTH`, `SELECT`, `CLIENT SETNAME`).
    public var connectTimeoutMillis: Int64
    /// Reconnect backoff: attempt `n` waits a random time in `0...min(cap, base·2ⁿ)` ms.
    public var backoffBaseMillis: Int64
    /// Upper bound of the reconnect backoff.
    public var backoffCapMillis: Int64
    /// Sent as `CLIENT SETNAME` during the handshake; nil or empty sends nothing. Must not contain
    /// spaces (the server rejects it; the rejection is ignored).
    public var clientName: String?
    /// At most this many commands wait for replies; more fail with ``RedisError/tooManyPending``.
    public var maxPending: Int
    /// When > 0, a ready connection with nothing pending sends `PING` this often, so a dead peer
    /// (half-open TCP) shows up as a timeout. Useful on the otherwise silent subscriber connection.
    public var healthCheckIntervalMillis: Int64

    public init(
        commandTimeoutMillis: Int64 = 2000, connectTimeoutMillis: Int64 = 2000,
        backoffBaseMillis: Int64 = 100, backoffCapMillis: Int64 = 5000,
        clientName: String? = "presenced", maxPending: Int = 100_000,
        healthCheckIntervalMillis: Int64 = 0
    ) {
        self.commandTimeoutMillis = commandTimeoutMillis
        self.connectTimeoutMillis = connectTimeoutMillis
        self.backoffBaseMillis = backoffBaseMillis
        self.backoffCapMillis = backoffCapMillis
        self.clientName = clientName
        self.maxPending = maxPending
        self.healthCheckIntervalMillis = healthCheckIntervalMillis
    }

    /// The backoff policy these options describe.
    public var backoff: RedisBackoff { RedisBackoff(baseMillis: backoffBaseMillis, capMillis: backoffCapMillis) }
}
