import WSCore

/// One complete response to an outbound request: status, header fields, and the body as its
/// framing delivered it (Content-Length, chunked, or until close; see `HTTPBodyDecoder`).
struct OutboundResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
}
