import PresenceLoop
import WSCore

/// What runs on top of an upgraded WebSocket: the echo conformance target or the realtime
/// protocol. The session layer has already answered pings and closes and validated UTF-8.
protocol WebSocketApplication: AnyObject {
    /// Whether `path` is this application's upgrade endpoint.
    func acceptsUpgrade(path: String) -> Bool
    /// Decides a valid upgrade request (origin, token, capacity) before the 101 goes out. `done`
    /// runs on the loop's thread, at once or later (a single-use check in Redis).
    func authorize(
        _ head: HTTPRequestHead, requestID: String, server: WebSocketServer,
        _ done: @escaping (Result<UpgradeGrant, UpgradeRefusal>) -> Void)
    /// The connection went away while `authorize` was deciding, after it granted the upgrade.
    func abandoned(grant: UpgradeGrant, server: WebSocketServer)
    /// A connection finished its handshake with what `authorize` granted.
    func opened(_ id: ConnectionID, grant: UpgradeGrant, server: WebSocketServer)
    /// A complete text or binary message; `payload` is valid only during the call.
    func received(_ id: ConnectionID, text: Bool, payload: UnsafeRawBufferPointer, server: WebSocketServer)
    /// The connection is gone.
    func closed(_ id: ConnectionID, server: WebSocketServer)
}

/// What an accepted upgrade carries into the connection.
struct UpgradeGrant: Sendable {
    /// The verified token (nil for the unauthenticated echo target).
    var claims: TokenClaims?
    var requestID: String
}

/// A refused upgrade: the HTTP status and the JSON error body's code and message.
struct UpgradeRefusal: Error, Sendable {
    var status: Int
    var code: String
    var message: String
}

/// A plain WebSocket echo at `/`: every message goes back as it came (`presenced --echo`).
final class EchoApplication: WebSocketApplication {
    func acceptsUpgrade(path: String) -> Bool { path == "/" }
    func authorize(
        _ head: HTTPRequestHead, requestID: String, server: WebSocketServer,
        _ done: @escaping (Result<UpgradeGrant, UpgradeRefusal>) -> Void
    ) {
        done(.success(UpgradeGrant(claims: nil, requestID: requestID)))
    }
    func abandoned(grant: UpgradeGrant, server: WebSocketServer) {}
    func opened(_ id: ConnectionID, grant: UpgradeGrant, server: WebSocketServer) {}
    func received(_ id: ConnectionID, text: Bool, payload: UnsafeRawBufferPointer, server: WebSocketServer) {
        server.send(id, FrameEncoder.serverFrame(text ? .text : .binary, payload: payload))
    }
    func closed(_ id: ConnectionID, server: WebSocketServer) {}
}
