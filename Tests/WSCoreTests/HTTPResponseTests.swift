import XCTest

@testable import WSCore

final class HTTPResponseTests: XCTestCase {
    private func text(_ response: HTTPResponse) -> String {
        String(decoding: response.serialized(), as: UTF8.self)
    }

    func testBodyGetsContentLength() {
        let response = HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Array("hello".utf8))
        XCTAssertEqual(text(response), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
    }

    func testEmptyBodyStatusesStillGetContentLength() {
        XCTAssertEqual(text(HTTPResponse(status: 404)), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(text(HTTPResponse(status: 431)), "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n")
    }

    func testNoBodyStatuses() {
        XCTAssertEqual(
            text(HTTPResponse(status: 101, headers: ["Upgrade": "websocket"])),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        XCTAssertEqual(text(HTTPResponse(status: 204, body: [1, 2, 3])), "HTTP/1.1 204 No Content\r\n\r\n")
        XCTAssertEqual(text(HTTPResponse(status: 304, body: [1])), "HTTP/1.1 304 Not Modified\r\n\r\n")
        XCTAssertEqual(text(HTTPResponse(status: 100)), "HTTP/1.1 100 Continue\r\n\r\n")
    }

    func testExplicitFramingHeadersRespected() {
        XCTAssertEqual(text(HTTPResponse(status: 200, headers: ["content-length": "10"])), "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        XCTAssertEqual(
            text(HTTPResponse(status: 200, headers: ["Transfer-Encoding": "chunked"], body: Array("0\r\n\r\n".utf8))),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    }

    func testHeaderInjectionIsNeutralized() {
        let response = HTTPResponse(
            status: 400,
            headers: [
                "X-Request-ID": "abc\r\nSet-Cookie: evil=1\u{0}",
                "Bad Name": "dropped",
                "": "dropped",
                "X\r\nInjected": "dropped",
                "X-Ok": "kept",
            ])
        XCTAssertEqual(
            text(response), "HTTP/1.1 400 Bad Request\r\nX-Request-ID: abc  Set-Cookie: evil=1 \r\nX-Ok: kept\r\nContent-Length: 0\r\n\r\n")
    }

    func testReasonPhrases() {
        XCTAssertEqual(HTTPResponse.reasonPhrase(101), "Switching Protocols")
        XCTAssertEqual(HTTPResponse.reasonPhrase(200), "OK")
        XCTAssertEqual(HTTPResponse.reasonPhrase(400), "Bad Request")
        XCTAssertEqual(HTTPResponse.reasonPhrase(426), "Upgrade Required")
        XCTAssertEqual(HTTPResponse.reasonPhrase(429), "Too Many Requests")
        XCTAssertEqual(HTTPResponse.reasonPhrase(431), "Request Header Fields Too Large")
        XCTAssertEqual(HTTPResponse.reasonPhrase(503), "Service Unavailable")
        XCTAssertEqual(HTTPResponse.reasonPhrase(799), "")
        XCTAssertEqual(text(HTTPResponse(status: 799)), "HTTP/1.1 799 \r\nContent-Length: 0\r\n\r\n")
    }

    func testRoundTripThroughResponseParser() {
        let response = HTTPResponse(status: 503, headers: ["Retry-After": "5", "X-A": "1", "x-a": "2"], body: Array("busy".utf8))
        let bytes = response.serialized()
        guard case .complete(let head, let consumed) = httpAssertSplitInvariant(HTTPResponseParser(), bytes) else { return XCTFail() }
        XCTAssertEqual(head.status, 503)
        XCTAssertEqual(head.reason, "Service Unavailable")
        XCTAssertEqual(head.headers.values("X-A"), ["1", "2"])
        XCTAssertEqual(head.headers["Content-Length"], "4")
        XCTAssertEqual(Array(bytes[consumed...]), Array("busy".utf8))
    }
}
