/// A parsed HTTP/1.x response head (client side: tests, the benchmark, outbound HTTP calls).
public struct HTTPResponseHead: Sendable, Equatable {
    /// The major HTTP version (1).
    public var versionMajor: Int
    /// The minor HTTP version (0 or 1).
    public var versionMinor: Int
    /// The status code, 100...999.
    public var status: Int
    /// The reason phrase as sent (possibly empty).
    public var reason: String
    /// The header fields, in arrival order.
    public var headers: HTTPHeaders

    /// Creates a response head.
    public init(versionMajor: Int = 1, versionMinor: Int = 1, status: Int, reason: String = "", headers: HTTPHeaders = HTTPHeaders()) {
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// Incremental, bounded HTTP/1.x response-head parser; same contract as `HTTPRequestParser`.
///
/// Status line `HTTP/1.0|HTTP/1.1 SP 3DIGIT [SP reason-phrase]` (a missing reason, even without
/// its SP, is accepted; the reason must not contain NUL or CR and is decoded as UTF-8). Field
/// lines as for requests; at most 1000 header fields.
public struct HTTPResponseParser: Sendable {
    /// The outcome of a feed: `.needMoreData`, `.complete(head, consumed:)` (`consumed` bytes of the last
    /// input belong to the head, the rest to the body or next layer) or `.failure(error)`.
    public typealias Result = HTTPHeadParseResult<HTTPResponseHead>

    private var parser: HTTPHeadParser<ResponseSyntax>

    /// A parser refusing heads larger than `maxHeadSize` bytes (line endings included).
    public init(maxHeadSize: Int = 65536) {
        parser = HTTPHeadParser(maxHeadSize: maxHeadSize)
    }

    /// Feeds bytes. On .complete, `consumed` is how many bytes of THIS input belong to the head. After
    /// .complete/.failure the parser must be reset() before reuse (until then, further feeds return
    /// `.complete(head, consumed: 0)` or the same failure).
    public mutating func feed(_ input: UnsafeRawBufferPointer) -> Result {
        parser.feed(input)
    }

    /// Forgets everything, ready for a new head.
    public mutating func reset() {
        parser.reset()
    }

    /// True when no byte has been fed since init or the last reset().
    public var isIdle: Bool {
        parser.isIdle
    }
}

/// The status line and limits of a response head.
private enum ResponseSyntax: HTTPHeadSyntax {
    static let maxHeaderCount = 1000
    static let missingStartLine = HTTPParseError.malformed("missing status line")

    static func makeHead(_ statusLine: (minor: Int, status: Int, reason: String), headers: HTTPHeaders) -> HTTPResponseHead {
        HTTPResponseHead(
            versionMajor: 1, versionMinor: statusLine.minor, status: statusLine.status, reason: statusLine.reason, headers: headers)
    }

    /// `HTTP-version SP status-code [SP reason-phrase]`.
    static func parseStartLine(_ line: UnsafeRawBufferPointer) -> Swift.Result<(minor: Int, status: Int, reason: String), HTTPParseError> {
        guard line.count >= 12, line[8] == UInt8(ascii: " "),
            let minor = HTTPVersion.parse(UnsafeRawBufferPointer(rebasing: line[0..<8]))
        else {
            return .failure(.malformed("status line must start with HTTP/1.0 or HTTP/1.1 and a space"))
        }
        var status = 0
        for i in 9..<12 {
            let digit = line[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return .failure(.malformed("status code must be three digits")) }
            status = status * 10 + Int(digit)
        }
        guard status >= 100 else { return .failure(.malformed("status code out of range")) }
        guard line.count == 12 || line[12] == UInt8(ascii: " ") else {
            return .failure(.malformed("status code must be three digits"))
        }
        let reasonBytes = UnsafeRawBufferPointer(rebasing: line[min(13, line.count)...])
        if reasonBytes.contains(where: { $0 == 0 || $0 == UInt8(ascii: "\r") }) {
            return .failure(.malformed("invalid character in reason phrase"))
        }
        return .success((minor: minor, status: status, reason: String(decoding: reasonBytes, as: UTF8.self)))
    }
}
