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
    /// The outcome of a feed.
    public enum Result: Sendable, Equatable {
        /// The head is not finished yet; all input was taken.
        case needMoreData
        /// The head is complete; `consumed` bytes of the last input belong to it, the rest to the body or next layer.
        case complete(HTTPResponseHead, consumed: Int)
        /// The head was refused.
        case failure(HTTPParseError)
    }

    /// The most header fields accepted; more → `.headTooLarge`.
    static let maxHeaderCount = 1000

    private enum State: Sendable {
        case receiving
        case done(Result)
    }

    private var state: State = .receiving
    private var scanner: HTTPHeadScanner
    private var builder = ResponseHeadBuilder()

    /// A parser refusing heads larger than `maxHeadSize` bytes (line endings included).
    public init(maxHeadSize: Int = 65536) {
        scanner = HTTPHeadScanner(maxHeadSize: maxHeadSize)
    }

    /// Feeds bytes. On .complete, `consumed` is how many bytes of THIS input belong to the head. After
    /// .complete/.failure the parser must be reset() before reuse (until then, further feeds return
    /// `.complete(head, consumed: 0)` or the same failure).
    public mutating func feed(_ input: UnsafeRawBufferPointer) -> Result {
        switch state {
        case .done(.complete(let head, _)):
            return .complete(head, consumed: 0)
        case .done(let result):
            return result
        case .receiving:
            break
        }
        let result: Result
        switch scanner.scan(input, into: &builder) {
        case .needMoreData:
            return .needMoreData
        case .failure(let error):
            result = .failure(error)
        case .complete(let consumed):
            result = builder.finish().map { .complete($0, consumed: consumed) } ?? .failure(.malformed("missing status line"))
        }
        state = .done(result)
        return result
    }

    /// Forgets everything, ready for a new head.
    public mutating func reset() {
        state = .receiving
        scanner.reset()
        builder = ResponseHeadBuilder()
    }

    /// True when no byte has been fed since init or the last reset().
    public var isIdle: Bool {
        if case .receiving = state { return scanner.headBytes == 0 }
        return false
    }
}

/// Collects the lines of a response head.
private struct ResponseHeadBuilder: HTTPHeadLineSink {
    private var statusLine: (minor: Int, status: Int, reason: String)?
    private var headers = HTTPHeaders()

    mutating func headLine(_ line: UnsafeRawBufferPointer) -> HTTPParseError? {
        if statusLine != nil {
            return headers.appendField(parsing: line, maxCount: HTTPResponseParser.maxHeaderCount)
        }
        switch Self.parseStatusLine(line) {
        case .success(let parsed):
            statusLine = parsed
            return nil
        case .failure(let error):
            return error
        }
    }

    /// The head, once the empty line has been seen.
    func finish() -> HTTPResponseHead? {
        statusLine.map {
            HTTPResponseHead(versionMajor: 1, versionMinor: $0.minor, status: $0.status, reason: $0.reason, headers: headers)
        }
    }

    /// `HTTP-version SP status-code [SP reason-phrase]`.
    private static func parseStatusLine(_ line: UnsafeRawBufferPointer) -> Swift.Result<(minor: Int, status: Int, reason: String), HTTPParseError> {
        guard line.count >= 12, line[8] == UInt8(ascii: " "),
              let minor = HTTPVersion.parse(UnsafeRawBufferPointer(rebasing: line[0..<8])) else {
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
