import WSCore

/// Incremental decoder of one HTTP/1.1 response body from byte chunks of any size (RFC 9112 §6):
/// no body, `Content-Length`, `Transfer-Encoding: chunked`, or read-until-close; bounded by
/// `limit` bytes. It never reads past the end of the body, so the caller knows whether bytes
/// followed it (a keep-alive connection must not have any).
///
/// Usage: `framing(...)` from the response head, then `feed` chunks until `isComplete`; when the
/// connection ends first, `finish()` completes a read-until-close body and refuses a truncated
/// one. Chunk extensions and trailer fields are skipped; a bare LF is accepted where CRLF belongs.
/// Errors are `OutboundError.protocolError`.
struct HTTPBodyDecoder {
    /// How the body's end is found.
    enum Framing: Equatable, Sendable {
        /// No body (HEAD, 1xx, 204, 304).
        case none
        /// Exactly this many bytes.
        case length(Int)
        /// Chunks up to the last (zero-size) chunk and the trailer section.
        case chunked
        /// Everything until the connection ends.
        case untilClose
    }

    /// Where in the chunked syntax the next byte falls.
    private enum ChunkState {
        case size, sizeExtension, sizeLF, data, dataCR, dataLF, trailerStart, trailerLine, finalLF
    }

    package let framing: Framing
    /// The largest body accepted.
    package let limit: Int
    /// The decoded bytes so far.
    private(set) var body: [UInt8] = []
    /// True once the whole body has been read.
    private(set) var isComplete: Bool
    private var chunkState = ChunkState.size
    private var chunkLeft = 0
    private var digits = 0
    private var lineBytes = 0

    /// The largest trailer section or chunk-extension line accepted.
    static let maxLineBytes = 64 * 1024

    package init(framing: Framing, limit: Int) {
        self.framing = framing
        self.limit = limit
        switch framing {
        case .none: isComplete = true
        case .length(let count):
            isComplete = count == 0
            body.reserveCapacity(min(count, limit))
        case .chunked, .untilClose: isComplete = false
        }
    }

    /// The framing of a response to a request (RFC 9112 §6.3): none for HEAD, 1xx, 204 and 304;
    /// chunked when `Transfer-Encoding` is exactly `chunked` (any other coding is refused; it wins
    /// over a `Content-Length`); else `Content-Length` (every value must agree; more than `limit`
    /// is refused at once); else until close.
    package static func framing(status: Int, headers: HTTPHeaders, isHeadRequest: Bool, limit: Int) throws(OutboundError) -> Framing {
        if isHeadRequest || status < 200 || status == 204 || status == 304 { return .none }
        let codings = headers.values("transfer-encoding")
        if !codings.isEmpty {
            let list = codings.joined(separator: ",").split(separator: ",").map { trimmed($0).lowercased() }.filter { !$0.isEmpty }
            guard list == ["chunked"] else { throw .protocolError("unsupported transfer coding") }
            return .chunked
        }
        var found: Substring?
        for value in headers.values("content-length") {
            for element in value.split(separator: ",", omittingEmptySubsequences: false) {
                let digits = trimmed(element)
                guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    found == nil || found == digits
                else { throw .protocolError("invalid Content-Length") }
                found = digits
            }
        }
        guard let found else { return .untilClose }
        guard let length = Int(found), length <= limit else { throw tooLarge(limit) }
        return .length(length)
    }

    /// Decodes from the start of `input`; returns how many bytes belong to the body (fewer than
    /// `input.count` only once `isComplete`: the rest follows the body). Nothing is consumed after
    /// completion.
    package mutating func feed(_ input: UnsafeRawBufferPointer) throws(OutboundError) -> Int {
        guard !isComplete, input.count > 0 else { return 0 }
        switch framing {
        case .none:
            return 0
        case .length(let count):
            let take = min(count - body.count, input.count)
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
            isComplete = body.count == count
            return take
        case .untilClose:
            guard body.count + input.count <= limit else { throw Self.tooLarge(limit) }
            body.append(contentsOf: input)
            return input.count
        case .chunked:
            return try feedChunked(input)
        }
    }

    /// The connection ended: completes a read-until-close body; throws when any other body is
    /// still incomplete.
    package mutating func finish() throws(OutboundError) {
        guard !isComplete else { return }
        switch framing {
        case .untilClose: isComplete = true
        case .length(let count): throw .protocolError("connection closed after \(body.count) of \(count) body bytes")
        case .chunked: throw .protocolError("connection closed inside a chunked body")
        case .none: isComplete = true
        }
    }

    /// Hands over the decoded body (leaving it empty).
    mutating func takeBody() -> [UInt8] {
        defer { body = [] }
        return body
    }

    // MARK: - Chunked

    private mutating func feedChunked(_ input: UnsafeRawBufferPointer) throws(OutboundError) -> Int {
        var i = 0
        let count = input.count
        while i < count && !isComplete {
            let byte = input[i]
            switch chunkState {
            case .size:
                if let value = HTTPHeaders.hexDigitValue(byte) {
                    digits += 1
                    chunkLeft = chunkLeft &* 16 &+ Int(value)
                    guard digits <= 8, body.count + chunkLeft <= limit else { throw Self.tooLarge(limit) }
                } else if digits > 0 && (byte == UInt8(ascii: ";") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")) {
                    chunkState = .sizeExtension
                    lineBytes = 0
                } else if digits > 0 && byte == 13 {
                    chunkState = .sizeLF
                } else if digits > 0 && byte == 10 {
                    endOfSizeLine()
                } else {
                    throw .protocolError("malformed chunk size")
                }
                i += 1
            case .sizeExtension:
                if byte == 13 {
                    chunkState = .sizeLF
                } else if byte == 10 {
                    endOfSizeLine()
                } else {
                    lineBytes += 1
                    guard lineBytes <= Self.maxLineBytes else { throw .protocolError("chunk extension too long") }
                }
                i += 1
            case .sizeLF:
                guard byte == 10 else { throw .protocolError("malformed chunk size line") }
                endOfSizeLine()
                i += 1
            case .data:
                let take = min(chunkLeft, count - i)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                chunkLeft -= take
                i += take
                if chunkLeft == 0 { chunkState = .dataCR }
            case .dataCR:
                if byte == 13 {
                    chunkState = .dataLF
                } else if byte == 10 {
                    startSize()
                } else {
                    throw .protocolError("chunk data not followed by CRLF")
                }
                i += 1
            case .dataLF:
                guard byte == 10 else { throw .protocolError("chunk data not followed by CRLF") }
                startSize()
                i += 1
            case .trailerStart:
                if byte == 13 {
                    chunkState = .finalLF
                } else if byte == 10 {
                    isComplete = true
                } else {
                    chunkState = .trailerLine
                    lineBytes += 1
                }
                i += 1
            case .trailerLine:
                lineBytes += 1
                guard lineBytes <= Self.maxLineBytes else { throw .protocolError("trailer section too long") }
                if byte == 10 { chunkState = .trailerStart }
                i += 1
            case .finalLF:
                guard byte == 10 else { throw .protocolError("malformed end of chunked body") }
                isComplete = true
                i += 1
            }
        }
        return i
    }

    private mutating func endOfSizeLine() {
        if chunkLeft == 0 {
            chunkState = .trailerStart
            lineBytes = 0
        } else {
            chunkState = .data
        }
    }

    private mutating func startSize() {
        chunkState = .size
        chunkLeft = 0
        digits = 0
    }

    private static func tooLarge(_ limit: Int) -> OutboundError {
        .protocolError("response body larger than \(limit) bytes")
    }

    /// `text` without leading and trailing spaces and tabs.
    private static func trimmed(_ text: Substring) -> Substring {
        var view = text
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return view
    }
}
