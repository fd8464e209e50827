import WSCore

/// One complete response to an outbound request: status, header fields, and the body as its
/// framing delivered it (Content-Length, chunked, or until close; see `HTTPBodyDecoder`).
package struct OutboundResponse: Sendable {
    package var status: Int
    package var headers: HTTPHeaders
    package var body: [UInt8]
}
