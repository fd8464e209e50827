import XCTest

@testable import WSCore

final class HTTPResponseParserTests: XCTestCase {
    private func parse(
        _ bytes: [UInt8], maxHeadSize: Int = 65536, file: StaticString = #filePath, line: UInt = #line
    ) -> HTTPFeedOutcome<HTTPResponseHead> {
        httpAssertSplitInvariant(HTTPResponseParser(maxHeadSize: maxHeadSize), bytes, file: file, line: line)
    }

    private func parse(
        _ text: String, maxHeadSize: Int = 65536, file: StaticString = #filePath, line: UInt = #line
    ) -> HTTPFeedOutcome<HTTPResponseHead> {
        parse([UInt8](http: text), maxHeadSize: maxHeadSize, file: file, line: line)
    }

    private func parseHead(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> HTTPResponseHead? {
        let outcome = parse(text, file: file, line: line)
        guard case .complete(let head, let consumed) = outcome else {
            XCTFail("expected a complete head, got \(outcome)", file: file, line: line)
            return nil
        }
        XCTAssertEqual(consumed, text.utf8.count, file: file, line: line)
        return head
    }

    func testSwitchingProtocols() throws {
        let head = try XCTUnwrap(
            parseHead(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            ))
        XCTAssertEqual(
            head,
            HTTPResponseHead(
                versionMajor: 1, versionMinor: 1, status: 101, reason: "Switching Protocols",
                headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]))
    }

    func testStatusLineVariants() throws {
        XCTAssertEqual(try XCTUnwrap(parseHead("HTTP/1.0 200 OK\r\n\r\n")).versionMinor, 0)
        let empty = try XCTUnwrap(parseHead("HTTP/1.1 204 \r\n\r\n"))
        XCTAssertEqual(empty.status, 204)
        XCTAssertEqual(empty.reason, "")
        let noSpace = try XCTUnwrap(parseHead("HTTP/1.1 404\n\n"))
        XCTAssertEqual(noSpace.status, 404)
        XCTAssertEqual(noSpace.reason, "")
        let custom = try XCTUnwrap(parseHead("HTTP/1.1 599 Very  Custom\tReason caf\u{e9}\r\n\r\n"))
        XCTAssertEqual(custom.status, 599)
        XCTAssertEqual(custom.reason, "Very  Custom\tReason café")
        XCTAssertEqual(try XCTUnwrap(parseHead("\r\nHTTP/1.1 100 Continue\r\n\r\n")).status, 100)
    }

    func testMalformedStatusLines() {
        let cases = [
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1  200 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.2 200 OK\r\n\r\n",
            "http/1.1 200 OK\r\n\r\n",
            "HTTP/1.1\r\n\r\n",
            "HTTP/1.1 200 O\u{0}K\r\n\r\n",
            "HTTP/1.1 200 O\rK\r\n\r\n",
            "ICY 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
        ]
        for text in cases {
            let outcome = parse(text)
            guard case .failure(.malformed) = outcome else {
                XCTFail("\(text.debugDescription): \(outcome)")
                continue
            }
        }
    }

    func testFramesAfterHeadAreNotConsumed() {
        let head = [UInt8](http: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        let frame: [UInt8] = [0x81, 0x02, 0x68, 0x69, 0x0A, 0x0A]
        guard case .complete(let parsed, let consumed) = parse(head + frame) else { return XCTFail() }
        XCTAssertEqual(consumed, head.count)
        XCTAssertEqual(parsed.status, 101)
    }

    func testDefaultLimitIs64KiB() {
        func response(ofSize size: Int) -> String {
            let start = "HTTP/1.1 200 OK\r\nX-Pad: "
            return start + String(repeating: "p", count: size - start.utf8.count - 4) + "\r\n\r\n"
        }
        guard case .complete(_, consumed: 65536) = parse(response(ofSize: 65536)) else { return XCTFail() }
        XCTAssertEqual(parse(response(ofSize: 65537)), .failure(.headTooLarge))
        XCTAssertEqual(parse(response(ofSize: 100), maxHeadSize: 99), .failure(.headTooLarge))
        XCTAssertTrue(parse(response(ofSize: 100), maxHeadSize: 100).isComplete)
    }

    func testHeaderCountLimit() {
        var text = "HTTP/1.1 200 OK\r\n"
        for i in 0..<1000 { text += "Set-Cookie: c\(i)=1\r\n" }
        guard case .complete(let head, _) = httpFeed(HTTPResponseParser(), [UInt8](http: text + "\r\n"), sizes: [text.utf8.count + 2])
        else { return XCTFail() }
        XCTAssertEqual(head.headers.values("set-cookie").count, 1000)
        text += "X: 1\r\n\r\n"
        XCTAssertEqual(httpFeed(HTTPResponseParser(), [UInt8](http: text), sizes: [text.utf8.count]), .failure(.headTooLarge))
    }

    func testLifecycle() {
        var parser = HTTPResponseParser()
        XCTAssertTrue(parser.isIdle)
        let input = [UInt8](http: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        guard case .complete(let head, consumed: input.count - 2) = input.withUnsafeBytes({ parser.feed($0) }) else { return XCTFail() }
        XCTAssertEqual(head.headers["content-length"], "2")
        XCTAssertEqual([UInt8](http: "x").withUnsafeBytes { parser.feed($0) }, .complete(head, consumed: 0))
        parser.reset()
        XCTAssertTrue(parser.isIdle)
        XCTAssertEqual([UInt8](http: "HTTP/1.1 200 OK\r\n").withUnsafeBytes { parser.feed($0) }, .needMoreData)
        XCTAssertFalse(parser.isIdle)
    }
}
