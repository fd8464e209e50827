import WSCore

/// The plain HTTP endpoints served beside the WebSocket upgrade (CONTRACT §3).
struct HTTPEndpoints: Sendable {
    /// Answers a request that is not a WebSocket upgrade.
    func respond(to head: HTTPRequestHead, requestID: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("X-Request-ID", requestID)
        switch (head.method, head.path) {
        case ("GET", "/healthz"):
            return HTTPEndpoints.json(200, #"{"status":"ok"}"#, headers: headers)
        case ("GET", "/readyz"):
            return HTTPEndpoints.json(200, #"{"status":"ready"}"#, headers: headers)
        default:
            return HTTPEndpoints.errorResponse(status: 404, code: "not_found", message: "no such endpoint", headers: headers)
        }
    }

    /// `{"error": message, "code": code}` with the given status (CONTRACT §3).
    static func errorResponse(status: Int, code: String, message: String, headers: HTTPHeaders) -> HTTPResponse {
        json(status, "{\"error\":\(JSONText.quoted(message)),\"code\":\(JSONText.quoted(code))}", headers: headers)
    }

    static func json(_ status: Int, _ body: String, headers: HTTPHeaders) -> HTTPResponse {
        var headers = headers
        headers.add("Content-Type", "application/json")
        headers.add("Cache-Control", "no-store")
        return HTTPResponse(status: status, headers: headers, body: Array(body.utf8))
    }
}

/// Request ids: the caller's `X-Request-ID` when it is sane, otherwise a new random one.
enum RequestID {
    static func accept(_ given: String?) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 128,
           given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return given
        }
        return make()
    }

    /// 128 random bits as 32 hex digits.
    static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        let a = rng.next() as UInt64, b = rng.next() as UInt64
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(a) + hex(b)
    }
}
