import CSystem

/// Client side of the handshake: builds the request, checks the 101.
public struct ClientHandshake: Sendable {
    /// The Host header value.
    public var host: String
    /// The request-target; bytes not allowed in a target (space, controls, non-ASCII) are percent-encoded when sent, "" becomes "/".
    public var path: String
    /// The Origin header value, if any.
    public var origin: String?
    /// Headers sent after the handshake's own.
    public var extraHeaders: HTTPHeaders
    /// The Sec-WebSocket-Key sent (base64 of 16 bytes).
    public var key: String

    /// key: 16 random bytes (RAND_bytes) base64-encoded unless given (tests pass a fixed key).
    public init(host: String, path: String, origin: String? = nil, extraHeaders: HTTPHeaders = HTTPHeaders(), key: String? = nil) {
        self.host = host
        self.path = path
        self.origin = origin
        self.extraHeaders = extraHeaders
        self.key = key ?? Self.randomKey()
    }

    /// The GET upgrade request: request line, Host, Upgrade, Connection, Sec-WebSocket-Key,
    /// Sec-WebSocket-Version: 13, Origin (if any), then `extraHeaders`, then the empty line.
    public func requestBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + path.utf8.count + host.utf8.count)
        out.append(contentsOf: "GET ".utf8)
        Self.appendTarget(path, to: &out)
        out.append(contentsOf: " HTTP/1.1\r\n".utf8)
        var headers: HTTPHeaders = [
            "Host": host,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        ]
        if let origin { headers.add("Origin", origin) }
        for field in extraHeaders { headers.add(field.name, field.value) }
        headers.serialize(into: &out)
        out.append(contentsOf: "\r\n".utf8)
        return out
    }

    /// Checks status 101, Upgrade websocket, Connection upgrade, Sec-WebSocket-Accept matching the key.
    public func verify(_ response: HTTPResponseHead) -> Result<Void, ClientHandshakeError> {
        guard response.status == 101 else { return .failure(.unexpectedStatus(response.status)) }
        guard response.headers.containsToken("websocket", in: "Upgrade"),
            response.headers.containsToken("upgrade", in: "Connection")
        else {
            return .failure(.missingUpgrade)
        }
        guard response.headers.values("Sec-WebSocket-Accept") == [ServerHandshake.acceptValue(forKey: key)] else {
            return .failure(.badAccept)
        }
        return .success(())
    }

    /// base64 of 16 random bytes from RAND_bytes (the system generator if that fails).
    static func randomKey() -> String {
        var nonce = [UInt8](repeating: 0, count: 16)
        let ok = nonce.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, 16) } == 1
        if !ok {
            var generator = SystemRandomNumberGenerator()
            for i in nonce.indices { nonce[i] = generator.next() }
        }
        return Base64.encode(nonce)
    }

    /// Appends `path` as a request-target, percent-encoding bytes a target cannot hold.
    private static func appendTarget(_ path: String, to out: inout [UInt8]) {
        if path.isEmpty {
            out.append(UInt8(ascii: "/"))
            return
        }
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in path.utf8 {
            if byte > 0x20 && byte < 0x7F {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
    }
}

/// Why the server's answer to the opening handshake was refused.
public enum ClientHandshakeError: Error, Equatable, Sendable {
    /// The status was not 101.
    case unexpectedStatus(Int)
    /// Upgrade: websocket or Connection: upgrade is missing.
    case missingUpgrade
    /// Sec-WebSocket-Accept is missing, repeated, or does not match the key.
    case badAccept
}
