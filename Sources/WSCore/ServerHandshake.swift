/// Server side of the RFC 6455 opening handshake (§4.2).
public enum ServerHandshake {
    /// The GUID appended to the client's key (RFC 6455 §1.3).
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// base64(SHA1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
    public static func acceptValue(forKey key: String) -> String {
        var input: [UInt8] = []
        input.reserveCapacity(key.utf8.count + 36)
        input.append(contentsOf: key.utf8)
        input.append(contentsOf: guid.utf8)
        return Base64.encode(SHA1.digest(input))
    }

    /// How many fields are called `name`, and the first one's value (no array per lookup: the
    /// upgrade path asks for three of them per connection).
    static func occurrences(of name: String, in headers: HTTPHeaders) -> (count: Int, first: String?) {
        var count = 0
        var first: String?
        for field in headers where HTTPHeaders.namesEqual(field.name, name) {
            if count == 0 { first = field.value }
            count += 1
        }
        return (count, first)
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
        let version = occurrences(of: "Sec-WebSocket-Version", in: headers)
        guard version.count == 1, version.first == "13" else {
            return .failure(
                Rejection(
                    status: 426, reason: "unsupported WebSocket version; only 13 is supported",
                    headers: ["Sec-WebSocket-Version": "13"]))
        }
        guard occurrences(of: "Host", in: headers).count == 1 else {
            return .failure(Rejection(status: 400, reason: headers.contains("Host") ? "more than one Host header" : "missing Host header"))
        }
        let keys = occurrences(of: "Sec-WebSocket-Key", in: headers)
        guard keys.count == 1, let key = keys.first else {
            return .failure(
                Rejection(status: 400, reason: keys.count == 0 ? "missing Sec-WebSocket-Key" : "more than one Sec-WebSocket-Key"))
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
        ///
        /// Written straight into one buffer (the bytes `HTTPResponse(status: 101, …).serialized()`
        /// gives): building the headers and serializing them cost 8,300 instructions per upgrade.
        public func response(extraHeaders: HTTPHeaders = HTTPHeaders()) -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(Self.head.utf8.count + acceptValue.utf8.count + 4 + extraHeaders.count * 64)
            out.append(contentsOf: Self.head.utf8)
            let start = out.count
            out.append(contentsOf: acceptValue.utf8)
            for i in start..<out.count where out[i] == 0 || out[i] == UInt8(ascii: "\r") || out[i] == UInt8(ascii: "\n") {
                out[i] = UInt8(ascii: " ")
            }
            out.append(UInt8(ascii: "\r"))
            out.append(UInt8(ascii: "\n"))
            extraHeaders.serialize(into: &out)
            out.append(UInt8(ascii: "\r"))
            out.append(UInt8(ascii: "\n"))
            return out
        }

        /// The status line and fixed fields of the 101, up to the accept value.
        static let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "

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
