/// The outcome of a feed to an HTTP head parser: `HTTPRequestParser.Result` and
/// `HTTPResponseParser.Result` are this type for their head.
public enum HTTPHeadParseResult<Head: Sendable & Equatable>: Sendable, Equatable {
    /// The head is not finished yet; all input was taken.
    case needMoreData
    /// The head is complete; `consumed` bytes of the last input belong to it, the rest to the next
    /// layer (a response body, or the protocol that follows an upgrade).
    case complete(Head, consumed: Int)
    /// The head was refused; a server answers with `error.status` and closes.
    case failure(HTTPParseError)
}

/// What sets one kind of head (request or response) apart, for `HTTPHeadParser`: its start line,
/// how many fields it may have, and the head made of the two.
protocol HTTPHeadSyntax {
    /// The parsed start line.
    associatedtype StartLine: Sendable
    /// The head this syntax produces.
    associatedtype Head: Sendable & Equatable
    /// The most header fields accepted; more → `.headTooLarge`.
    static var maxHeaderCount: Int { get }
    /// The error for a head that ended without a start line.
    static var missingStartLine: HTTPParseError { get }
    /// Parses the first line of the head (without its line ending).
    static func parseStartLine(_ line: UnsafeRawBufferPointer) -> Swift.Result<StartLine, HTTPParseError>
    /// The head made of a start line and the fields that followed it.
    static func makeHead(_ startLine: StartLine, headers: HTTPHeaders) -> Head
}

/// The state machine behind `HTTPRequestParser` and `HTTPResponseParser`: an `HTTPHeadScanner`
/// handing lines to a builder (the start line as `Syntax` says, then field lines), and the result
/// kept once the head is complete or refused.
struct HTTPHeadParser<Syntax: HTTPHeadSyntax>: Sendable {
    /// The outcome of a feed.
    typealias Result = HTTPHeadParseResult<Syntax.Head>

    /// Collects the lines of a head: the start line, then the fields.
    private struct Builder: HTTPHeadLineSink, Sendable {
        private var startLine: Syntax.StartLine?
        private var headers = HTTPHeaders()

        mutating func headLine(_ line: UnsafeRawBufferPointer) -> HTTPParseError? {
            if startLine != nil {
                return headers.appendField(parsing: line, maxCount: Syntax.maxHeaderCount)
            }
            switch Syntax.parseStartLine(line) {
            case .success(let parsed):
                startLine = parsed
                return nil
            case .failure(let error):
                return error
            }
        }

        /// The head, once the empty line has been seen.
        func finish() -> Syntax.Head? {
            startLine.map { Syntax.makeHead($0, headers: headers) }
        }
    }

    private enum State: Sendable {
        case receiving
        case done(Result)
    }

    private var state: State = .receiving
    private var scanner: HTTPHeadScanner
    private var builder = Builder()

    /// A parser refusing heads larger than `maxHeadSize` bytes (line endings included).
    init(maxHeadSize: Int) {
        scanner = HTTPHeadScanner(maxHeadSize: maxHeadSize)
    }

    /// Feeds bytes. On .complete, `consumed` is how many bytes of THIS input belong to the head. After
    /// .complete/.failure further feeds return `.complete(head, consumed: 0)` or the same failure until reset().
    mutating func feed(_ input: UnsafeRawBufferPointer) -> Result {
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
            result = builder.finish().map { .complete($0, consumed: consumed) } ?? .failure(Syntax.missingStartLine)
        }
        state = .done(result)
        return result
    }

    /// Forgets everything, ready for a new head.
    mutating func reset() {
        state = .receiving
        scanner.reset()
        builder = Builder()
    }

    /// True when no byte has been fed since init or the last reset().
    var isIdle: Bool {
        if case .receiving = state { return scanner.headBytes == 0 }
        return false
    }
}
