/// One connection opened by a ``RedisHost``: RedisShim writes bytes and closes it.
public protocol RedisTransport: AnyObject {
    /// Queues bytes to send, in order. May be called before the connection is established (the
    /// host then sends them once it is) and many times per loop turn: the host batches the
    /// writes of a turn into one send.
    func write(_ bytes: [UInt8])
    /// Closes the connection, dropping unsent bytes. Idempotent; no events follow.
    func close()
}
