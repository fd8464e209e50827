import CSystem

/// Why a request head was refused; `status` is the HTTP status to answer with.
public enum HTTPParseError: Error, Equatable, Sendable {
    /// The head is larger than the parser's limit, or has too many header fields (431).
    case headTooLarge
    /// The head breaks HTTP/1.1 syntax; the string says how (400).
    case malformed(String)

    /// The HTTP status to answer with: 431 or 400.
    public var status: Int {
        switch self {
        case .headTooLarge: return 431
        case .malformed: return 400
        }
    }
}

/// Receives the lines of a head from `HTTPHeadScanner`.
protocol HTTPHeadLineSink {
    /// Takes one non-empty line of the head without its line ending (the first one is the
    /// start line). Returns an error to stop the scan.
    mutating func headLine(_ line: UnsafeRawBufferPointer) -> HTTPParseError?
}

/// Incremental, bounded search for the end of an HTTP/1.x head.
///
/// Splits the input into lines (ended by LF, an immediately preceding CR is dropped) and hands
/// each to a sink as soon as it is complete; the head ends at the first empty line after the start
/// line. Empty lines before the start line are skipped (RFC 9112 §2.2) but count toward the size.
/// Every byte is looked at once, whatever the split of the input, and at most `maxHeadSize` bytes
/// are ever held: more than `maxHeadSize` bytes without the end → `.headTooLarge`, reported as soon
/// as the end can no longer fit (i.e. once `maxHeadSize` bytes were seen without it).
struct HTTPHeadScanner: Sendable {
    /// What a scan found.
    enum Outcome: Sendable {
        /// The head is not finished; every input byte was taken.
        case needMoreData
        /// The head ended; `consumed` bytes of this input belong to it.
        case complete(consumed: Int)
        /// The head was refused (by the size limit or by the sink).
        case failure(HTTPParseError)
    }

    /// The largest head accepted, in bytes, line endings and skipped leading empty lines included.
    let maxHeadSize: Int
    /// Bytes of the current head seen so far.
    private(set) var headBytes = 0
    /// The unfinished line carried over from earlier input.
    private var partialLine: [UInt8] = []
    /// Whether the start line has been handed out (empty lines are then the end, not padding).
    private var sawStartLine = false

    /// A scanner for heads of at most `maxHeadSize` bytes (must be positive).
    init(maxHeadSize: Int) {
        precondition(maxHeadSize > 0, "maxHeadSize must be positive")
        self.maxHeadSize = maxHeadSize
    }

    /// Forgets the current head, keeping the line buffer's capacity.
    mutating func reset() {
        headBytes = 0
        partialLine.removeAll(keepingCapacity: true)
        sawStartLine = false
    }

    /// Scans `input`, giving each complete line to `sink`.
    mutating func scan<Sink: HTTPHeadLineSink>(_ input: UnsafeRawBufferPointer, into sink: inout Sink) -> Outcome {
        // Only the bytes that still fit under the limit are looked at.
        let limit = min(input.count, maxHeadSize - headBytes)
        guard limit > 0, let base = input.baseAddress else {
            return input.isEmpty ? .needMoreData : .failure(.headTooLarge)
        }
        var lineStart = 0
        while lineStart < limit {
            guard let found = memchr(base + lineStart, Int32(UInt8(ascii: "\n")), limit - lineStart) else { break }
            let lineFeed = base.distance(to: UnsafeRawPointer(found))
            let isEmpty: Bool
            let error: HTTPParseError?
            if partialLine.isEmpty {
                let line = Self.trimmingCR(UnsafeRawBufferPointer(start: base + lineStart, count: lineFeed - lineStart))
                isEmpty = line.isEmpty
                error = isEmpty ? nil : sink.headLine(line)
            } else {
                partialLine.append(contentsOf: UnsafeRawBufferPointer(start: base + lineStart, count: lineFeed - lineStart))
                (isEmpty, error) = partialLine.withUnsafeBytes { bytes in
                    let line = Self.trimmingCR(bytes)
                    return line.isEmpty ? (true, nil) : (false, sink.headLine(line))
                }
                partialLine.removeAll(keepingCapacity: true)
            }
            if let error { return .failure(error) }
            lineStart = lineFeed + 1
            if isEmpty && sawStartLine {
                headBytes += lineStart
                return .complete(consumed: lineStart)
            }
            if !isEmpty { sawStartLine = true }
        }
        partialLine.append(contentsOf: UnsafeRawBufferPointer(start: base + lineStart, count: limit - lineStart))
        headBytes += limit
        // The end has not been seen in the first `maxHeadSize` bytes, so it cannot fit any more.
        return headBytes >= maxHeadSize ? .failure(.headTooLarge) : .needMoreData
    }

    /// `line` without one trailing CR.
    @inline(__always)
    private static func trimmingCR(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        if let last = line.last, last == UInt8(ascii: "\r") {
            return UnsafeRawBufferPointer(rebasing: line.dropLast())
        }
        return line
    }
}
