/// What a ``RedisHost`` reports about a connection it opened, on the loop's thread.
public protocol RedisTransportEvents: AnyObject {
    /// The TCP (and TLS) connection is established.
    func transportConnected()
    /// Bytes arrived; the buffer is only valid during the call.
    func transportReceived(_ bytes: UnsafeRawBufferPointer)
    /// The connection failed or ended; `reason` is for humans (e.g. `"ECONNREFUSED"`, `"EOF"`).
    func transportClosed(_ reason: String)
}
