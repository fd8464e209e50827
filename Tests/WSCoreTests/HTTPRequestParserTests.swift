import TestSupport
import XCTest

@testable import WSCore

// MARK: - Split-feeding harness (shared with HTTPResponseParserTests)

/// A parser outcome with `consumed` counted from the start of the whole input.
enum HTTPFeedOutcome<Head: Equatable>: Equatable {
    case needMoreData
    case complete(Head, consumed: Int)
    case failure(HTTPParseError)
}

/// The request and response parsers, seen through one interface.
protocol HTTPTestableParser {
    associatedtype Head: Sendable & Equatable
    mutating func feed(_ input: UnsafeRawBufferPointer) -> HTTPHeadParseResult<Head>
}

extension HTTPTestableParser {
    mutating func feedChunk(_ chunk: UnsafeRawBufferPointer) -> HTTPFeedOutcome<Head> {
        switch feed(chunk) {
        case .needMoreData: return .needMoreData
        case .complete(let head, let consumed): return .complete(head, consumed: consumed)
        case .failure(let error): return .failure(error)
        }
    }
}

extension HTTPRequestParser: HTTPTestableParser {}
extension HTTPResponseParser: HTTPTestableParser {}

enum HTTPSplits {
    /// Chunk sizes: the whole input.
    static func whole(_ count: Int) -> [Int] { [count] }
    /// Chunk sizes: one byte each.
    static func bytes(_ count: Int) -> [Int] { Array(repeating: 1, count: count) }
    /// Chunk sizes: random, including empty chunks.
    static func random(_ count: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix(seed: seed)
        var sizes: [Int] = []
        var left = count
        let maxChunk = Int.random(in: 1...max(1, min(count, 64)), using: &rng)
        while left > 0 {
            let size = Int.random(in: 0...min(left, maxChunk), using: &rng)
            sizes.append(size)
            left -= size
        }
        return sizes
    }
}

/// Feeds `input` in chunks of `sizes`, stopping at the first complete/failure.
func httpFeed<P: HTTPTestableParser>(
    _ parser: P, _ input: [UInt8], sizes: [Int],
    file: StaticString = #filePath, line: UInt = #line
) -> HTTPFeedOutcome<P.Head> {
    var parser = parser
    var offset = 0
    for size in sizes {
        let outcome = input[offset..<offset + size].withUnsafeBytes { parser.feedChunk($0) }
        switch outcome {
        case .needMoreData:
            offset += size
        case .complete(let head, let consumed):
            XCTAssert((0...size).contains(consumed), "consumed \(consumed) of a \(size)-byte chunk", file: file, line: line)
            return .complete(head, consumed: offset + consumed)
        case .failure:
            return outcome
        }
    }
    return .needMoreData
}

/// Feeds `input` whole, byte at a time and at 40 seeded random splits; asserts every way gives the
/// same outcome and returns it.
@discardableResult
func httpAssertSplitInvariant<P: HTTPTestableParser>(
    _ make: @autoclosure () -> P, _ input: [UInt8],
    file: StaticString = #filePath, line: UInt = #line
) -> HTTPFeedOutcome<P.Head> {
    let reference = httpFeed(make(), input, sizes: HTTPSplits.whole(input.count), file: file, line: line)
    let byteWise = httpFeed(make(), input, sizes: HTTPSplits.bytes(input.count), file: file, line: line)
    XCTAssertEqual(byteWise, reference, "byte-at-a-time differs from whole", file: file, line: line)
    for seed in 0..<40 as Range<UInt64> {
        let sizes = HTTPSplits.random(input.count, seed: seed &* 7919 &+ UInt64(input.count))
        let split = httpFeed(make(), input, sizes: sizes, file: file, line: line)
        XCTAssertEqual(split, reference, "split \(sizes) (seed \(seed)) differs from whole", file: file, line: line)
    }
    return reference
}

extension Array where Element == UInt8 {
    /// The UTF-8 bytes of `text` (tests write heads as strings).
    init(http text: String) { self = Array(text.utf8) }
}

// MARK: - Tests

final class HTTPRequestParserTests: XCTestCase {
    private func parse(
        _ text: String, maxHeadSize: Int = 8192, file: StaticString = #filePath, line: UInt = #line
    ) -> HTTPFeedOutcome<HTTPRequestHead> {
        httpAssertSplitInvariant(HTTPRequestParser(maxHeadSize: maxHeadSize), [UInt8](http: text), file: file, line: line)
    }

    private func parseHead(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> HTTPRequestHead? {
        let outcome = parse(text, file: file, line: line)
        guard case .complete(let head, let consumed) = outcome else {
            XCTFail("expected a complete head, got \(outcome)", file: file, line: line)
            return nil
        }
        XCTAssertEqual(consumed, text.utf8.count, "whole input is the head", file: file, line: line)
        return head
    }

    private func assertMalformed(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        let outcome = parse(text, file: file, line: line)
        guard case .failure(let error) = outcome, case .malformed = error else {
            return XCTFail("expected malformed, got \(outcome)", file: file, line: line)
        }
        XCTAssertEqual(error.status, 400, file: file, line: line)
    }

    // MARK: Valid heads

    func testSimpleRequest() throws {
        let head = try XCTUnwrap(parseHead("GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n"))
        XCTAssertEqual(head.method, "GET")
        XCTAssertEqual(head.target, "/chat")
        XCTAssertEqual(head.path, "/chat")
        XCTAssertNil(head.query)
        XCTAssertEqual(head.versionMajor, 1)
        XCTAssertEqual(head.versionMinor, 1)
        XCTAssertEqual(head.headers.count, 2)
        XCTAssertEqual(head.headers["host"], "example.com")
        XCTAssertEqual(head.headers["UPGRADE"], "websocket")
        XCTAssertTrue(head.keepAlive)
    }

    func testNoHeaders() throws {
        let head = try XCTUnwrap(parseHead("GET / HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(head.headers.count, 0)
        XCTAssertEqual(head.path, "/")
    }

    func testBareLFLineEndings() throws {
        let bare = try XCTUnwrap(parseHead("GET /a HTTP/1.1\nHost: h\nX: y\n\n"))
        let crlf = try XCTUnwrap(parseHead("GET /a HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n"))
        XCTAssertEqual(bare, crlf)
    }

    func testMixedLineEndings() throws {
        let head = try XCTUnwrap(parseHead("GET /a HTTP/1.1\nHost: h\r\nX: y\n\r\n"))
        XCTAssertEqual(head.headers["X"], "y")
        let other = try XCTUnwrap(parseHead("GET /a HTTP/1.1\r\nHost: h\nX: y\r\n\n"))
        XCTAssertEqual(head, other)
    }

    func testLeadingEmptyLinesAreSkipped() throws {
        let head = try XCTUnwrap(parseHead("\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"))
        XCTAssertEqual(head.method, "GET")
        XCTAssertEqual(head.headers["Host"], "h")
    }

    func testOptionalWhitespaceIsTrimmed() throws {
        let head = try XCTUnwrap(parseHead("GET / HTTP/1.1\r\nA:value\r\nB: \t value with  inner space \t \r\nC:\r\nD:   \r\n\r\n"))
        XCTAssertEqual(head.headers["A"], "value")
        XCTAssertEqual(head.headers["B"], "value with  inner space")
        XCTAssertEqual(head.headers["C"], "")
        XCTAssertEqual(head.headers["D"], "")
    }

    func testHTTP10() throws {
        let head = try XCTUnwrap(parseHead("GET / HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(head.versionMinor, 0)
        XCTAssertFalse(head.keepAlive)
    }

    func testTokenMethodsAndTargets() throws {
        let head = try XCTUnwrap(parseHead("M-SEARCH!#$%&'*+.^_`|~09 * HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(head.method, "M-SEARCH!#$%&'*+.^_`|~09")
        XCTAssertEqual(head.target, "*")
        let absolute = try XCTUnwrap(parseHead("GET http://h:8080/p?q=1 HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(absolute.target, "http://h:8080/p?q=1")
        XCTAssertEqual(absolute.path, "http://h:8080/p")
        XCTAssertEqual(absolute.query, "q=1")
    }

    func testHeaderNamesAllTokenCharacters() throws {
        let head = try XCTUnwrap(parseHead("GET / HTTP/1.1\r\nX-a!#$%&'*+.^_`|~9: v\r\n\r\n"))
        XCTAssertEqual(head.headers["x-A!#$%&'*+.^_`|~9"], "v")
    }

    func testObsTextInValuesDecodedAsUTF8() throws {
        var bytes = [UInt8](http: "GET / HTTP/1.1\r\nA: caf\u{e9}\r\nB: x")
        bytes += [0xFF, 0x80]  // not UTF-8 → U+FFFD each
        bytes += [UInt8](http: "y\r\nC: \u{1}ctl\u{7f}\r\n\r\n")
        let outcome = httpAssertSplitInvariant(HTTPRequestParser(), bytes)
        guard case .complete(let head, let consumed) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(consumed, bytes.count)
        XCTAssertEqual(head.headers["A"], "café")
        XCTAssertEqual(head.headers["B"], "x\u{FFFD}\u{FFFD}y")
        XCTAssertEqual(head.headers["C"], "\u{1}ctl\u{7f}", "other controls are kept (RFC 9110 §5.5)")
    }

    func testDuplicateHeadersKeptInOrder() throws {
        let head = try XCTUnwrap(parseHead("GET / HTTP/1.1\r\nConnection: keep-alive\r\nX: 1\r\nconnection: Upgrade\r\nX: 2\r\n\r\n"))
        XCTAssertEqual(head.headers.values("x"), ["1", "2"])
        XCTAssertEqual(head.headers["Connection"], "keep-alive")
        XCTAssertTrue(head.headers.containsToken("upgrade", in: "Connection"))
        XCTAssertEqual(head.headers.map(\.name), ["Connection", "X", "connection", "X"])
    }

    func testHundredHeadersAccepted() throws {
        var text = "GET / HTTP/1.1\r\n"
        for i in 0..<100 { text += "H\(i): \(i)\r\n" }
        let head = try XCTUnwrap(parseHead(text + "\r\n"))
        XCTAssertEqual(head.headers.count, 100)
        XCTAssertEqual(head.headers["H99"], "99")
    }

    func testHundredAndOneHeadersTooLarge() {
        var text = "GET / HTTP/1.1\r\n"
        for i in 0..<101 { text += "H\(i): \(i)\r\n" }
        XCTAssertEqual(parse(text + "\r\n"), .failure(.headTooLarge))
        XCTAssertEqual(parse(text), .failure(.headTooLarge), "reported before the end of the head")
        XCTAssertEqual(HTTPParseError.headTooLarge.status, 431)
    }

    // MARK: Malformed request lines

    func testMalformedRequestLines() {
        let cases = [
            "GE(T / HTTP/1.1\r\n\r\n",  // non-token method
            "GET\t/ HTTP/1.1\r\n\r\n",  // tab separator
            " / HTTP/1.1\r\n\r\n",  // empty method
            "GET HTTP/1.1\r\n\r\n",  // missing target
            "GET  / HTTP/1.1\r\n\r\n",  // two spaces
            "GET / HTTP/1.1 \r\n\r\n",  // trailing space
            "GET /a\tb HTTP/1.1\r\n\r\n",  // CTL in target
            "GET /a\u{7f} HTTP/1.1\r\n\r\n",  // DEL in target
            "GET /caf\u{e9} HTTP/1.1\r\n\r\n",  // non-ASCII in target
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.2\r\n\r\n",
            "GET / HTTP/0.9\r\n\r\n",
            "GET / http/1.1\r\n\r\n",
            "GET / HTTP/1.10\r\n\r\n",
            "GET / HTTP/1\r\n\r\n",
            "GET /\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/1.1\r\r\n\r\n",  // bare CR in the request line
            "GET /\r HTTP/1.1\r\n\r\n",
            "\rGET / HTTP/1.1\r\n\r\n",
            "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}\n\n",  // TLS ClientHello-ish
        ]
        for text in cases { assertMalformed(text) }
    }

    func testMethodRejectsNonASCII() {
        var bytes: [UInt8] = [0x47, 0xC3, 0xA9]
        bytes += [UInt8](http: " / HTTP/1.1\r\n\r\n")
        guard case .failure(.malformed) = httpAssertSplitInvariant(HTTPRequestParser(), bytes) else { return XCTFail() }
    }

    // MARK: Malformed header lines

    func testMalformedHeaderLines() {
        let cases = [
            "GET / HTTP/1.1\r\nHost example.com\r\n\r\n",  // no colon
            "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n",  // space before colon
            "GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n",  // tab before colon
            "GET / HTTP/1.1\r\n: value\r\n\r\n",  // empty name
            "GET / HTTP/1.1\r\nA: 1\r\n continued\r\n\r\n",  // obs-fold
            "GET / HTTP/1.1\r\nA: 1\r\n\tcontinued\r\n\r\n",  // obs-fold with tab
            "GET / HTTP/1.1\r\n Host: h\r\n\r\n",  // whitespace after the start line
            "GET / HTTP/1.1\r\nA(b: 1\r\n\r\n",  // separator in name
            "GET / HTTP/1.1\r\nA\u{0}: 1\r\n\r\n",  // NUL in name
            "GET / HTTP/1.1\r\nA: 1\u{0}2\r\n\r\n",  // NUL in value
            "GET / HTTP/1.1\r\nA: 1\r2\r\n\r\n",  // bare CR in value
            "GET / HTTP/1.1\r\nA: 1\r\r\n\r\n",  // CR CR LF
            "GET / HTTP/1.1\r\nA: 1\r\n\r \r\n",  // lone CR line before the end
        ]
        for text in cases { assertMalformed(text) }
    }

    func testNonASCIIHeaderNameRejected() {
        var bytes = [UInt8](http: "GET / HTTP/1.1\r\nX-")
        bytes += [0xC3, 0xA9]
        bytes += [UInt8](http: ": v\r\n\r\n")
        let outcome = httpAssertSplitInvariant(HTTPRequestParser(), bytes)
        XCTAssertEqual(outcome, .failure(.malformed("non-ASCII byte in header name")))
    }

    func testSpecificErrorMessages() {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nA : 1\r\n\r\n"), .failure(.malformed("whitespace between header name and colon")))
        XCTAssertEqual(
            parse("GET / HTTP/1.1\r\nA: 1\r\n b\r\n\r\n"),
            .failure(.malformed("obsolete line folding (header line starts with whitespace)")))
        XCTAssertEqual(parse("GET / HTTP/3\r\n\r\n"), .failure(.malformed("HTTP version must be HTTP/1.0 or HTTP/1.1")))
    }

    func testMalformedLineReportedBeforeEndOfHead() {
        XCTAssertEqual(parse("GET / HTTP/9.9\r\n"), .failure(.malformed("HTTP version must be HTTP/1.0 or HTTP/1.1")))
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nbad line\r\n"), .failure(.malformed("header line without a colon")))
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\n"), .needMoreData)
    }

    // MARK: Size limit

    /// A head of exactly `size` bytes: request line, padding header, empty line.
    private func head(ofSize size: Int, lineEnding: String = "\r\n") -> String {
        let start = "GET / HTTP/1.1" + lineEnding + "X-Pad: "
        let end = lineEnding + lineEnding
        let padding = size - start.utf8.count - end.utf8.count
        return start + String(repeating: "a", count: padding) + end
    }

    func testLimitExactlyAtBoundary() throws {
        let fits = head(ofSize: 8192)
        XCTAssertEqual(fits.utf8.count, 8192)
        let parsed = try XCTUnwrap(parseHead(fits))
        XCTAssertEqual(parsed.headers["X-Pad"]?.utf8.count, 8192 - 27)

        let tooBig = head(ofSize: 8193)
        XCTAssertEqual(parse(tooBig), .failure(.headTooLarge))
        XCTAssertEqual(HTTPParseError.headTooLarge.status, 431)

        XCTAssertNotNil(parseHead(head(ofSize: 8192, lineEnding: "\n")))
        XCTAssertEqual(parse(head(ofSize: 8193, lineEnding: "\n")), .failure(.headTooLarge))
    }

    func testLimitCountsLeadingEmptyLines() throws {
        let body = head(ofSize: 8190)
        XCTAssertNotNil(parseHead("\r\n" + body))
        XCTAssertEqual(parse("\r\n\r\n" + body), .failure(.headTooLarge))
    }

    func testLimitIsDetectedWithoutTheEnd() {
        // No end in sight: refused once the limit is reached, whatever the split.
        let endless = "GET / HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 20_000)
        XCTAssertEqual(parse(endless), .failure(.headTooLarge))
        // 8191 bytes without the end: still waiting.
        let almost = String(decoding: [UInt8](http: head(ofSize: 8192)).dropLast(), as: UTF8.self)
        XCTAssertEqual(almost.utf8.count, 8191)
        XCTAssertEqual(parse(almost), .needMoreData)
        // 8192 bytes without the end: the end can no longer fit.
        XCTAssertEqual(parse(almost + "x"), .failure(.headTooLarge))
    }

    func testLimitWhenFedInTwoPieces() {
        for (size, expectComplete) in [(8192, true), (8193, false)] {
            let bytes = [UInt8](http: head(ofSize: size))
            for cut in [1, 100, 4096, 8000, 8189, 8190, 8191, 8192] where cut < bytes.count {
                let outcome = httpFeed(HTTPRequestParser(), bytes, sizes: [cut, bytes.count - cut])
                if expectComplete {
                    guard case .complete(_, let consumed) = outcome else { return XCTFail("cut \(cut): \(outcome)") }
                    XCTAssertEqual(consumed, 8192)
                } else {
                    XCTAssertEqual(outcome, .failure(.headTooLarge), "cut \(cut)")
                }
            }
        }
    }

    func testCustomLimit() {
        XCTAssertNotNil(parseHead("GET / HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(parse("GET / HTTP/1.1\r\n\r\n", maxHeadSize: 18).isComplete, true)
        XCTAssertEqual(parse("GET / HTTP/1.1\r\n\r\n", maxHeadSize: 17), .failure(.headTooLarge))
    }

    // MARK: Bytes after the head

    func testBytesAfterHeadAreNotConsumed() {
        let headText = "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"
        let trailing: [UInt8] = [0x81, 0x85, 1, 2, 3, 4, 0x0D, 0x0A, 0x0D, 0x0A]  // a frame, and a CRLFCRLF in it
        let input = [UInt8](http: headText) + trailing
        let outcome = httpAssertSplitInvariant(HTTPRequestParser(), input)
        guard case .complete(let head, let consumed) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(consumed, headText.utf8.count)
        XCTAssertEqual(Array(input[consumed...]), trailing)
        XCTAssertEqual(head.path, "/ws")
    }

    func testConsumedWithinLastChunk() {
        var parser = HTTPRequestParser()
        let first = [UInt8](http: "GET / HTTP/1.1\r\nHost: h\r")
        XCTAssertEqual(first.withUnsafeBytes { parser.feed($0) }, .needMoreData)
        let second = [UInt8](http: "\n\r\nNEXT")
        guard case .complete(_, let consumed) = second.withUnsafeBytes({ parser.feed($0) }) else { return XCTFail() }
        XCTAssertEqual(consumed, 3)
    }

    func testPipelinedRequestsWithReset() throws {
        let input = [UInt8](http: "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        var parser = HTTPRequestParser()
        var offset = 0
        var paths: [String] = []
        while offset < input.count {
            let result = input[offset...].withUnsafeBytes { parser.feed($0) }
            guard case .complete(let head, let consumed) = result else { return XCTFail("\(result)") }
            paths.append(head.path)
            offset += consumed
            parser.reset()
        }
        XCTAssertEqual(paths, ["/1", "/2"])
    }

    // MARK: Lifecycle

    func testStickyResultsAndReset() {
        var parser = HTTPRequestParser()
        XCTAssertTrue(parser.isIdle)
        XCTAssertEqual([UInt8]().withUnsafeBytes { parser.feed($0) }, .needMoreData)
        XCTAssertTrue(parser.isIdle)
        XCTAssertEqual([UInt8](http: "GET / HT").withUnsafeBytes { parser.feed($0) }, .needMoreData)
        XCTAssertFalse(parser.isIdle)
        let done = [UInt8](http: "TP/1.1\r\n\r\nxyz").withUnsafeBytes { parser.feed($0) }
        guard case .complete(let head, consumed: 10) = done else { return XCTFail("\(done)") }
        XCTAssertEqual([UInt8](http: "more").withUnsafeBytes { parser.feed($0) }, .complete(head, consumed: 0))
        XCTAssertFalse(parser.isIdle)
        parser.reset()
        XCTAssertTrue(parser.isIdle)
        XCTAssertEqual(
            [UInt8](http: "BAD LINE\r\n").withUnsafeBytes { parser.feed($0) },
            .failure(.malformed("request line must be METHOD SP target SP version")))
        XCTAssertEqual(
            [UInt8](http: "GET / HTTP/1.1\r\n\r\n").withUnsafeBytes { parser.feed($0) },
            .failure(.malformed("request line must be METHOD SP target SP version")))
        parser.reset()
        guard case .complete = [UInt8](http: "GET / HTTP/1.1\r\n\r\n").withUnsafeBytes({ parser.feed($0) }) else { return XCTFail() }
    }

    func testResultSpelledThroughParserTypes() {
        var requests = HTTPRequestParser()
        let request = [UInt8](http: "GET /a HTTP/1.1\r\n\r\n")
        let requestResult: HTTPRequestParser.Result = request.withUnsafeBytes { requests.feed($0) }
        XCTAssertEqual(requestResult, HTTPRequestParser.Result.complete(HTTPRequestHead(method: "GET", target: "/a"), consumed: 19))
        requests.reset()
        XCTAssertEqual([UInt8](http: "GET").withUnsafeBytes { requests.feed($0) }, HTTPRequestParser.Result.needMoreData)
        XCTAssertEqual(HTTPRequestParser(maxHeadSize: 2).feedAll([UInt8](http: "GET")), HTTPRequestParser.Result.failure(.headTooLarge))

        var responses = HTTPResponseParser()
        let response = [UInt8](http: "HTTP/1.1 204 No Content\r\n\r\n")
        let responseResult: HTTPResponseParser.Result = response.withUnsafeBytes { responses.feed($0) }
        XCTAssertEqual(
            responseResult, HTTPResponseParser.Result.complete(HTTPResponseHead(status: 204, reason: "No Content"), consumed: 27))
        switch HTTPResponseParser(maxHeadSize: 4).feedAll([UInt8](http: "HTTP/1.1")) {
        case .needMoreData, .complete: XCTFail("expected headTooLarge")
        case .failure(let error): XCTAssertEqual(error, .headTooLarge)
        }
    }

    func testLargeInputByteAtATimeIsLinear() {
        // 8 KiB byte-at-a-time, many times: quadratic rescanning would make this crawl.
        let bytes = [UInt8](http: head(ofSize: 8192))
        let start = ContinuousClock.now
        for _ in 0..<20 {
            guard case .complete = httpFeed(HTTPRequestParser(), bytes, sizes: HTTPSplits.bytes(bytes.count)) else { return XCTFail() }
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(10))
    }

    // MARK: Target, query, keep-alive

    func testPathAndQuerySplit() throws {
        let head = try XCTUnwrap(parseHead("GET /a%20b/c?x=1&y=%41?z HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(head.path, "/a%20b/c", "path stays raw")
        XCTAssertEqual(head.query, "x=1&y=%41?z")
        let empty = try XCTUnwrap(parseHead("GET /p? HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(empty.path, "/p")
        XCTAssertEqual(empty.query, "")
    }

    func testQueryParameterDecoding() {
        let head = HTTPRequestHead(
            method: "GET",
            target:
                "/ws?token=a%2Bb%3D%3D&name=J%C3%B6rg+Smith&empty=&flag&a=1&a=2&bad=%zz%4&sp%61ce=x&plus+name=p&check=%E2%9C%93&lower=%e2%9c%93"
        )
        XCTAssertEqual(head.queryParameter("token"), "a+b==")
        XCTAssertEqual(head.queryParameter("name"), "Jörg Smith")
        XCTAssertEqual(head.queryParameter("empty"), "")
        XCTAssertEqual(head.queryParameter("flag"), "")
        XCTAssertEqual(head.queryParameter("a"), "1", "first value wins")
        XCTAssertEqual(head.queryParameter("bad"), "%zz%4", "malformed escapes stay literal")
        XCTAssertEqual(head.queryParameter("space"), "x", "names are decoded")
        XCTAssertEqual(head.queryParameter("plus name"), "p")
        XCTAssertEqual(head.queryParameter("check"), "✓")
        XCTAssertEqual(head.queryParameter("lower"), "✓")
        XCTAssertNil(head.queryParameter("missing"))
        XCTAssertNil(head.queryParameter("Token"), "names are case-sensitive")
        XCTAssertNil(HTTPRequestHead(method: "GET", target: "/ws").queryParameter("a"))
        XCTAssertEqual(HTTPRequestHead(method: "GET", target: "/ws?v=%FF").queryParameter("v"), "\u{FFFD}")
        XCTAssertEqual(HTTPRequestHead(method: "GET", target: "/ws?&&v=1&&").queryParameter("v"), "1")
        XCTAssertEqual(HTTPRequestHead(method: "GET", target: "/ws?v=a=b").queryParameter("v"), "a=b")
    }

    func testQueryParameterFromParsedRequest() throws {
        let head = try XCTUnwrap(parseHead("GET /ws?room=lobby%201&user=al+ice HTTP/1.1\r\nHost: h\r\n\r\n"))
        XCTAssertEqual(head.queryParameter("room"), "lobby 1")
        XCTAssertEqual(head.queryParameter("user"), "al ice")
    }

    func testKeepAlive() throws {
        func keepAlive(_ version: String, _ connection: String?) throws -> Bool {
            let header = connection.map { "Connection: \($0)\r\n" } ?? ""
            return try XCTUnwrap(parseHead("GET / \(version)\r\n\(header)\r\n")).keepAlive
        }
        XCTAssertTrue(try keepAlive("HTTP/1.1", nil))
        XCTAssertTrue(try keepAlive("HTTP/1.1", "keep-alive, Upgrade"))
        XCTAssertFalse(try keepAlive("HTTP/1.1", "close"))
        XCTAssertFalse(try keepAlive("HTTP/1.1", "Upgrade, CLOSE"))
        XCTAssertFalse(try keepAlive("HTTP/1.0", nil))
        XCTAssertTrue(try keepAlive("HTTP/1.0", "Keep-Alive"))
        XCTAssertFalse(try keepAlive("HTTP/1.0", "keep-alive, close"))
    }

    func testStatusOfErrors() {
        XCTAssertEqual(HTTPParseError.malformed("x").status, 400)
        XCTAssertEqual(HTTPParseError.headTooLarge.status, 431)
    }
}

extension HTTPTestableParser {
    /// Feeds `bytes` in one go to a fresh copy of the parser.
    func feedAll(_ bytes: [UInt8]) -> HTTPHeadParseResult<Head> {
        var parser = self
        return bytes.withUnsafeBytes { parser.feed($0) }
    }
}

extension HTTPFeedOutcome {
    var isComplete: Bool {
        if case .complete = self { return true }
        return false
    }
}
