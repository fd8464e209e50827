import WSCore

/// What runs on top of an upgraded WebSocket: the echo conformance target or the realtime
/// protocol. The session layer has already answered pings and closes and validated UTF-8.
protocol WebSocketApplication: AnyObject {
    /// Whether `path` is this application's upgrade endpoint.
    func acceptsUpgrade(path: String) -> Bool
    /// A connection finished its handshake.
    func opened(_ id: ConnectionID, server: WebSocketServer)
    /// A complete text or binary message; `payload` is valid only during the call.
    func received(_ id: ConnectionID, text: Bool, payload: UnsafeRawBufferPointer, server: WebSocketServer)
    /// The connection is gone.
    func closed(_ id: ConnectionID, server: WebSocketServer)
}

/// A plain WebSocket echo at `/`: every message goes back as it came (`presenced --echo`).
final class EchoApplication: WebSocketApplication {
    func acceptsUpgrade(path: String) -> Bool { path == "/" }
    func opened(_ id: ConnectionID, server: WebSocketServer) {}
    func received(_ id: ConnectionID, text: Bool, payload: UnsafeRawBufferPointer, server: WebSocketServer) {
        server.send(id, FrameEncoder.serverFrame(text ? .text : .binary, payload: payload))
    }
    func closed(_ id: ConnectionID, server: WebSocketServer) {}
}
