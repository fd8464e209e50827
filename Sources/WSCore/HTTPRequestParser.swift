/// A parsed HTTP/1.x request head.
public struct HTTPRequestHead: Sendable, Equatable {
    /// The method token, e.g. `GET` (case-sensitive, as sent).
    public var method: String
    /// The raw request-target, as sent.
    public var target: String
    /// The target before the first `?`, raw (not percent-decoded).
    public var path: String
    /// The raw text after the first `?`, or nil when the target has no `?`.
    public var query: String?
    /// The major HTTP version (1).
    public var versionMajor: Int
    /// The minor HTTP version (0 or 1).
    public var versionMinor: Int
    /// The header fields, in arrival order.
    public var headers: HTTPHeaders

    /// Creates a head; `path` and `query` are split from `target` at the first `?`.
    public init(method: String, target: String, versionMajor: Int = 1, versionMinor: Int = 1, headers: HTTPHeaders = HTTPHeaders()) {
        self.method = method
        self.target = target
        if let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            self.path = String(target[..<mark])
            self.query = String(target[target.index(after: mark)...])
        } else {
            self.path = target
            self.query = nil
        }
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.headers = headers
    }

    /// First value of a query parameter, percent-decoded ('+' is a space), nil if absent.
    ///
    /// Pairs are separated by `&`; a pair without `=` has the empty value. Names are decoded before
    /// being compared. Malformed escapes (`%` not followed by two hex digits) are kept literally;
    /// decoded bytes are read as UTF-8, invalid sequences becoming U+FFFD.
    public func queryParameter(_ name: String) -> String? {
        guard var query else { return nil }
        return query.withUTF8 { bytes -> String? in
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
                if end > start {
                    var equals = start
                    while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                    let rawName = UnsafeBufferPointer(rebasing: bytes[start..<equals])
                    if Self.formDecoded(rawName, equals: name) {
                        return equals < end ? Self.formDecode(UnsafeBufferPointer(rebasing: bytes[(equals + 1)..<end])) : ""
                    }
                }
                start = end + 1
            }
            return nil
        }
    }

    /// Whether the connection stays open after this request: HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
    public var keepAlive: Bool {
        if headers.containsToken("close", in: "Connection") { return false }
        if versionMajor > 1 || (versionMajor == 1 && versionMinor >= 1) { return true }
        return headers.containsToken("keep-alive", in: "Connection")
    }

    /// Whether `raw` form-decodes to `name`, without making a String when it needs no decoding
    /// (every query name on the upgrade path).
    private static func formDecoded(_ raw: UnsafeBufferPointer<UInt8>, equals name: String) -> Bool {
        if raw.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) { return formDecode(raw) == name }
        var name = name
        return name.withUTF8 { $0.elementsEqual(raw) }
    }

    /// `application/x-www-form-urlencoded` decoding of one name or value.
    private static func formDecode(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        // Most names and values (a JWT) need no decoding at all: one copy into the String.
        if !raw.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
            return String(decoding: raw, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var index = 0
        while index < raw.count {
            let byte = raw[index]
            index += 1
            switch byte {
            case UInt8(ascii: "+"):
                out.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                if index + 1 < raw.count, let high = HTTPHeaders.hexDigitValue(raw[index]),
                    let low = HTTPHeaders.hexDigitValue(raw[index + 1])
                {
                    out.append(high << 4 | low)
                    index += 2
                } else {
                    out.append(byte)
                }
            default:
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Incremental, bounded HTTP/1.1 request-head parser. Feed any split of the input (byte-at-a-time works) —
/// never rescans from the start (no quadratic cost), never holds more than maxHeadSize bytes.
///
/// Rules: request line `METHOD SP request-target SP HTTP/1.0|HTTP/1.1` (method a token, target
/// printable ASCII without spaces); field lines `name: OWS value OWS` (see `HTTPHeaders`; values,
/// obs-text included, are decoded as UTF-8, bytes that are not valid UTF-8 becoming U+FFFD); lines end in CRLF or bare LF;
/// empty lines before the request line are skipped; at most 100 header fields. A malformed line is
/// reported as soon as its line ending arrives, even before the end of the head.
public struct HTTPRequestParser: Sendable {
    /// The outcome of a feed: `.needMoreData`, `.complete(head, consumed:)` (`consumed` bytes of the last
    /// input belong to the head, the rest to the next layer) or `.failure(error)` (answer with
    /// `error.status` and close).
    public typealias Result = HTTPHeadParseResult<HTTPRequestHead>

    private var parser: HTTPHeadParser<RequestSyntax>

    /// A parser refusing heads larger than `maxHeadSize` bytes (line endings included).
    public init(maxHeadSize: Int = 8192) {
        parser = HTTPHeadParser(maxHeadSize: maxHeadSize)
    }

    /// Feeds bytes. On .complete, `consumed` is how many bytes of THIS input belong to the head; the rest
    /// belong to the next protocol layer. After .complete/.failure the parser must be reset() before reuse
    /// (until then, further feeds return `.complete(head, consumed: 0)` or the same failure).
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

/// The request line and limits of a request head.
private enum RequestSyntax: HTTPHeadSyntax {
    static let maxHeaderCount = 100
    static let missingStartLine = HTTPParseError.malformed("missing request line")

    static func makeHead(_ requestLine: (method: String, target: String, minor: Int), headers: HTTPHeaders) -> HTTPRequestHead {
        HTTPRequestHead(
            method: requestLine.method, target: requestLine.target, versionMajor: 1, versionMinor: requestLine.minor, headers: headers)
    }

    /// `METHOD SP request-target SP HTTP-version`.
    static func parseStartLine(_ line: UnsafeRawBufferPointer) -> Swift.Result<(method: String, target: String, minor: Int), HTTPParseError>
    {
        let count = line.count
        var methodEnd = 0
        while methodEnd < count && HTTPHeaders.isTokenByte(line[methodEnd]) { methodEnd += 1 }
        guard methodEnd > 0, methodEnd < count, line[methodEnd] == UInt8(ascii: " ") else {
            return .failure(
                .malformed(
                    methodEnd == count || line[methodEnd] == UInt8(ascii: " ")
                        ? "request line must be METHOD SP target SP version" : "invalid character in method"))
        }
        let targetStart = methodEnd + 1
        var targetEnd = targetStart
        while targetEnd < count && line[targetEnd] > 0x20 && line[targetEnd] < 0x7F { targetEnd += 1 }
        guard targetEnd < count, line[targetEnd] == UInt8(ascii: " ") else {
            return .failure(
                .malformed(targetEnd == count ? "request line must be METHOD SP target SP version" : "invalid character in request target"))
        }
        guard targetEnd > targetStart else { return .failure(.malformed("empty request target")) }
        guard let minor = HTTPVersion.parse(UnsafeRawBufferPointer(rebasing: line[(targetEnd + 1)...])) else {
            return .failure(.malformed("HTTP version must be HTTP/1.0 or HTTP/1.1"))
        }
        let method = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<methodEnd]), as: UTF8.self)
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: line[targetStart..<targetEnd]), as: UTF8.self)
        return .success((method: method, target: target, minor: minor))
    }
}

/// The `HTTP/1.x` version token shared by request and status lines.
enum HTTPVersion {
    /// The minor version when `bytes` is exactly `HTTP/1.0` or `HTTP/1.1`, else nil.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count == 8,
            bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"),
            bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/"), bytes[5] == UInt8(ascii: "1"),
            bytes[6] == UInt8(ascii: ".")
        else { return nil }
        switch bytes[7] {
        case UInt8(ascii: "0"): return 0
        case UInt8(ascii: "1"): return 1
        default: return nil
        }
    }
}
