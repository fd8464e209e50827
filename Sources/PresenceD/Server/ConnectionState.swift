import WSCore

/// Protocol state of one connection slot, kept by the server in a table parallel to the loop's.
struct ConnectionState {
    enum Phase: UInt8 {
        case free
        /// Reading an HTTP request head (a plain request or an upgrade).
        case http
        /// A plain request is being answered; further input waits (HTTP/1.1 answers in order).
        case responding
        /// Upgraded: WebSocket frames.
        case websocket
    }
    var phase = Phase.free
    /// Pings sent since the peer last showed it is alive.
    var unansweredPings: UInt8 = 0
    /// The request parser, only while the connection speaks HTTP (boxed: 184 bytes an
    /// upgraded connection would otherwise carry for its whole life).
    var http: HTTPParserBox?
    var frames = FrameDecoder()
}

/// An HTTP request parser on the heap, allocated at accept and dropped at the upgrade.
final class HTTPParserBox {
    var parser = HTTPRequestParser()
    /// A small request body being read (`WebSocketServer.maxBodyBytes`): its head, the bytes so
    /// far, and how many are still due.
    var bodyHead: HTTPRequestHead?
    var body: [UInt8] = []
    var bodyLeft = 0
}
