/// Server side of the RFC 6455 opening handshake (§4.2).
public enum ServerHandshake {
    /// The GUID appended to the client's key (RFC 6455 §1.3).
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// base64(SHA1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
    public static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.digest(Array(key.utf8) + Array(guid.utf8)))
    }

    /// Checks a request head: GET, HTTP/1.1 (or higher minor), Host present, Upgrade contains token "websocket" and Connection contains token "upgrade" (case-insensitive tokens, comma lists), Sec-WebSocket-Key present exactly once and base64-decoding to exactly 16 bytes, Sec-WebSocket-Version = 13.
    ///
    /// Checked in this order, the first failure wins: method, HTTP version, Upgrade, Connection
    /// (all 400), then Sec-WebSocket-Version (426), then Host (exactly one) and Sec-WebSocket-Key (400).
    /// A non-upgrade request is thus a 400, while an upgrade with a missing or other version is a 426.
    public static func validate(_ head: HTTPRequestHead) -> Result<Accepted, Rejection> {
        let headers = head.headers
        guard head.method == "GET" else {
            return .failure(Rejection(status: 400, reason: "WebSocket upgrade requires method GET, got \(head.method)"))
        }
        guard head.versionMajor > 1 || (head.versionMajor == 1 && head.versionMinor >= 1) else {
            return .failure(Rejection(status: 400, reason: "WebSocket upgrade requires HTTP/1.1"))
        }
        guard headers.containsToken("websocket", in: "Upgrade") else {
            return .failure(Rejection(status: 400, reason: "missing Upgrade: websocket"))
        }
        guard headers.containsToken("upgrade", in: "Connection") else {
            return .failure(Rejection(status: 400, reason: "missing Connection: Upgrade"))
        }
        guard headers.values("Sec-WebSocket-Version") == ["13"] else {
            return .failure(Rejection(status: 426, reason: "unsupported WebSocket version; only 13 is supported",
                                      headers: ["Sec-WebSocket-Version": "13"]))
        }
        guard headers.values("Host").count == 1 else {
            return .failure(Rejection(status: 400, reason: headers.contains("Host") ? "more than one Host header" : "missing Host header"))
        }
        let keys = headers.values("Sec-WebSocket-Key")
        guard keys.count == 1, let key = keys.first else {
            return .failure(Rejection(status: 400, reason: keys.isEmpty ? "missing Sec-WebSocket-Key" : "more than one Sec-WebSocket-Key"))
        }
        guard let nonce = Base64.decode(key), nonce.count == 16 else {
            return .failure(Rejection(status: 400, reason: "Sec-WebSocket-Key must be 16 bytes in base64"))
        }
        return .success(Accepted(key: key, acceptValue: acceptValue(forKey: key)))
    }

    /// An accepted handshake.
    public struct Accepted: Sendable, Equatable {
        /// The client's Sec-WebSocket-Key.
        public var key: String
        /// The Sec-WebSocket-Accept value answering `key`.
        public var acceptValue: String

        /// Creates an accepted handshake.
        public init(key: String, acceptValue: String) {
            self.key = key
            self.acceptValue = acceptValue
        }

        /// The 101 response: `HTTP/1.1 101 Switching Protocols`, Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Accept, then `extraHeaders` (e.g. X-Request-ID).
        public func response(extraHeaders: HTTPHeaders = HTTPHeaders()) -> [UInt8] {
            var headers: HTTPHeaders = [
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Accept": acceptValue,
            ]
            for field in extraHeaders { headers.add(field.name, field.value) }
            return HTTPResponse(status: 101, headers: headers).serialized()
        }
    }

    /// A refused handshake: 400 for a bad upgrade, 426 (with `Sec-WebSocket-Version: 13` in headers) for a wrong or missing version.
    public struct Rejection: Error, Sendable, Equatable {
        /// The HTTP status to answer with.
        public var status: Int
        /// Why, for logs and the response body.
        public var reason: String
        /// Headers the response must carry.
        public var headers: HTTPHeaders

        /// Creates a rejection.
        public init(status: Int, reason: String, headers: HTTPHeaders = HTTPHeaders()) {
            self.status = status
            self.reason = reason
            self.headers = headers
        }

        /// The error response: `status`, `headers`, `Connection: close`, and `reason` as a text/plain body.
        public func response() -> [UInt8] {
            var headers = self.headers
            headers.add("Connection", "close")
            headers.add("Content-Type", "text/plain; charset=utf-8")
            return HTTPResponse(status: status, headers: headers, body: Array((reason + "\n").utf8)).serialized()
        }
    }
}
