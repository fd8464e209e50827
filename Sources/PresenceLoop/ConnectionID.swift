/// One connection on one loop: its slot in the loop's tables and the slot's generation,
/// so a handle kept past the connection's end never reaches the slot's next occupant.
package struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    package var slot: UInt32
    package var generation: UInt32
    package var description: String { "\(slot).\(generation)" }

    package init(slot: UInt32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }
}

/// What the protocol layer above the loop implements. The loop calls it on its own thread.
package protocol ConnectionHandler: AnyObject {
    /// A connection was accepted. `slot` indexes the handler's own per-connection table.
    func connectionOpened(_ id: ConnectionID, loop: EventLoop)
    /// Bytes arrived. They may be modified in place and are valid only during the call.
    func connectionReceived(_ id: ConnectionID, _ bytes: UnsafeMutableRawBufferPointer, loop: EventLoop)
    /// The connection's deadline (set with `EventLoop.setDeadline`) passed.
    func connectionDeadline(_ id: ConnectionID, loop: EventLoop)
    /// The connection is gone (peer closed, error, or closed by the handler). Called exactly once.
    func connectionClosed(_ id: ConnectionID, loop: EventLoop)
}

/// What owns a connection the loop opened itself (Redis, chat-service). Called on the loop's thread.
package protocol OutboundHandler: AnyObject {
    /// The connect completed; queued bytes go out now.
    func outboundConnected(_ id: ConnectionID, loop: EventLoop)
    /// Bytes arrived (valid only during the call).
    func outboundReceived(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer, loop: EventLoop)
    /// The connection failed or ended (`error` is an errno, 0 for an orderly EOF). Not called
    /// after the handler itself aborted the connection.
    func outboundClosed(_ id: ConnectionID, error: Int32, loop: EventLoop)
}
