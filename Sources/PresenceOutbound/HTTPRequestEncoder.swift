import WSCore

/// The bytes of one outbound HTTP/1.1 request, as `LoopHTTPClient` sends it on a keep-alive
/// connection.
enum HTTPRequestEncoder {
    /// Request line (`method url.path+path HTTP/1.1`), `Host`, the fields of `headers`,
    /// `Content-Length` (when there is a body, or for POST/PUT/PATCH), blank line, body. No
    /// `Connection` field: HTTP/1.1 connections persist by default.
    ///
    /// `path` is appended to `url.path` and must start with `/` (empty means `url.path` or `/`);
    /// it may carry a query. `Host`, `Connection`, `Content-Length` and `Transfer-Encoding` in
    /// `headers` are ignored, as are fields whose name is not a token; CR, LF and NUL in values
    /// become spaces. An invalid method, a path without its `/` or a target with spaces or control
    /// characters is a `.protocolError`.
    package static func encode(
        method: String, url: OutboundURL, path: String, headers: HTTPHeaders,
        body: [UInt8]
    ) throws(OutboundError) -> [UInt8] {
        guard !method.isEmpty, method.utf8.allSatisfy(HTTPHeaders.isTokenByte) else {
            throw .protocolError("invalid request method")
        }
        guard path.isEmpty || path.hasPrefix("/") else { throw .protocolError("request path must start with /") }
        var target = url.path + path
        if target.isEmpty { target = "/" }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .protocolError("invalid character in request target")
        }
        var out: [UInt8] = []
        out.reserveCapacity(512 + body.count)
        func line(_ text: String) {
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: [13, 10])
        }
        line("\(method) \(target) HTTP/1.1")
        line("Host: \(url.hostHeader)")
        let reserved = ["host", "connection", "content-length", "transfer-encoding"]
        for field in headers {
            guard HTTPHeaders.isValidName(field.name), !reserved.contains(field.name.lowercased()) else { continue }
            out.append(contentsOf: field.name.utf8)
            out.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
            for byte in field.value.utf8 {
                out.append(byte == 0 || byte == 10 || byte == 13 ? UInt8(ascii: " ") : byte)
            }
            out.append(contentsOf: [13, 10])
        }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) {
            line("Content-Length: \(body.count)")
        }
        out.append(contentsOf: [13, 10])
        out.append(contentsOf: body)
        return out
    }
}
