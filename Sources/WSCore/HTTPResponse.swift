/// Serializes a response: status line with standard reason phrase, headers, Content-Length (added when body given or status needs it), body.
///
/// Content-Length is added for every status that can carry a body (all but 1xx, 204 and 304) unless
/// the headers already have Content-Length or Transfer-Encoding. For 1xx, 204 and 304 the body is
/// never written. Header fields whose name is not a token are dropped and CR/LF/NUL in values become
/// spaces, so headers cannot break the framing.
public struct HTTPResponse: Sendable {
    /// The status code, 100...999.
    public var status: Int
    /// Header fields, written in order after the status line.
    public var headers: HTTPHeaders
    /// The body, written after the head.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Whether a response with `status` can carry a body (not 1xx, 204 or 304).
    static func allowsBody(_ status: Int) -> Bool {
        !(100..<200).contains(status) && status != 204 && status != 304
    }

    /// The response as `HTTP/1.1` bytes: head, then body.
    public func serialized() -> [UInt8] {
        let allowsBody = Self.allowsBody(status)
        var out: [UInt8] = []
        out.reserveCapacity(64 + headers.count * 40 + (allowsBody ? body.count : 0))
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        out.append(contentsOf: String(status).utf8)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: Self.reasonPhrase(status).utf8)
        out.append(contentsOf: "\r\n".utf8)
        headers.serialize(into: &out)
        if allowsBody && !headers.contains("Content-Length") && !headers.contains("Transfer-Encoding") {
            out.append(contentsOf: "Content-Length: ".utf8)
            out.append(contentsOf: String(body.count).utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        if allowsBody { out.append(contentsOf: body) }
        return out
    }

    /// The standard reason phrase for `status` (RFC 9110 §15, plus 426/428/429/431/451/511), or "" when unknown.
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 203: return "Non-Authoritative Information"
        case 204: return "No Content"
        case 205: return "Reset Content"
        case 206: return "Partial Content"
        case 300: return "Multiple Choices"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 305: return "Use Proxy"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 402: return "Payment Required"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 407: return "Proxy Authentication Required"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 426: return "Upgrade Required"
        case 428: return "Precondition Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 451: return "Unavailable For Legal Reasons"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        case 511: return "Network Authentication Required"
        default: return ""
        }
    }
}
