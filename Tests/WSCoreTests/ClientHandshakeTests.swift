import XCTest

@testable import WSCore

final class ClientHandshakeTests: XCTestCase {
    private let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

    func testRequestBytes() {
        let client = ClientHandshake(
            host: "server.example.com", path: "/chat?room=1", origin: "http://example.com",
            extraHeaders: ["X-Request-ID": "abc"], key: sampleKey)
        XCTAssertEqual(
            String(decoding: client.requestBytes(), as: UTF8.self),
            "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n"
                + "X-Request-ID: abc\r\n\r\n")
    }

    func testPathIsMadeSafe() {
        let empty = ClientHandshake(host: "h", path: "", key: sampleKey).requestBytes()
        XCTAssertTrue(String(decoding: empty, as: UTF8.self).hasPrefix("GET / HTTP/1.1\r\n"))
        let spaced = ClientHandshake(host: "h", path: "/a b\r\nc/é", key: sampleKey).requestBytes()
        XCTAssertTrue(String(decoding: spaced, as: UTF8.self).hasPrefix("GET /a%20b%0D%0Ac/%C3%A9 HTTP/1.1\r\nHost: h\r\n"))
    }

    func testRandomKey() throws {
        let a = ClientHandshake(host: "h", path: "/")
        let b = ClientHandshake(host: "h", path: "/")
        XCTAssertEqual(a.key.utf8.count, 24)
        XCTAssertEqual(try XCTUnwrap(Base64.decode(a.key)).count, 16)
        XCTAssertNotEqual(a.key, b.key)
    }

    /// client requestBytes → HTTPRequestParser → ServerHandshake.validate → response → HTTPResponseParser → ClientHandshake.verify.
    private func roundTrip(
        _ client: ClientHandshake, tamper: (inout [UInt8]) -> Void = { _ in }
    ) throws -> Result<Void, ClientHandshakeError> {
        let request = client.requestBytes()
        guard case .complete(let requestHead, let consumed) = httpAssertSplitInvariant(HTTPRequestParser(), request) else {
            XCTFail("request did not parse")
            throw CancellationError()
        }
        XCTAssertEqual(consumed, request.count)
        let accepted = try ServerHandshake.validate(requestHead).get()
        XCTAssertEqual(accepted.key, client.key)
        var response = accepted.response(extraHeaders: ["X-Request-ID": "r1"])
        tamper(&response)
        guard case .complete(let responseHead, let used) = httpAssertSplitInvariant(HTTPResponseParser(), response) else {
            XCTFail("response did not parse")
            throw CancellationError()
        }
        XCTAssertEqual(used, response.count)
        return client.verify(responseHead)
    }

    func testRoundTrip() throws {
        XCTAssertNoThrow(try roundTrip(ClientHandshake(host: "server.example.com", path: "/chat", key: sampleKey)).get())
        for _ in 0..<20 {
            let client = ClientHandshake(
                host: "localhost:8080", path: "/ws?token=a%2Bb", origin: "https://app.example", extraHeaders: ["Authorization": "Bearer t"])
            XCTAssertNoThrow(try roundTrip(client).get())
        }
    }

    func testTamperedAcceptFails() throws {
        let client = ClientHandshake(host: "h", path: "/", key: sampleKey)
        let result = try roundTrip(client) { bytes in
            // Flip one character of the accept value ("s3pP..." → "t3pP...").
            let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(
                of: "Sec-WebSocket-Accept: s3pP", with: "Sec-WebSocket-Accept: t3pP")
            XCTAssertNotEqual(Array(text.utf8), bytes)
            bytes = Array(text.utf8)
        }
        XCTAssertEqual(result.failure, .badAccept)
    }

    func testAcceptForAnotherKeyFails() throws {
        let client = ClientHandshake(host: "h", path: "/", key: "x3JJHMbDL1EzLkh9GBhXDw==")
        let accepted = try ServerHandshake.validate(
            HTTPRequestHead(
                method: "GET", target: "/",
                headers: [
                    "Host": "h", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": sampleKey,
                    "Sec-WebSocket-Version": "13",
                ])
        ).get()
        let response = accepted.response()
        guard case .complete(let head, _) = httpFeed(HTTPResponseParser(), response, sizes: [response.count]) else { return XCTFail() }
        XCTAssertEqual(client.verify(head).failure, .badAccept)
    }

    func testVerifyFailures() {
        let client = ClientHandshake(host: "h", path: "/", key: sampleKey)
        let good = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        XCTAssertNil(
            client.verify(
                HTTPResponseHead(status: 101, headers: ["Upgrade": "WebSocket", "Connection": "upgrade", "Sec-WebSocket-Accept": good])
            ).failure)
        XCTAssertEqual(
            client.verify(
                HTTPResponseHead(status: 200, headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": good])
            ).failure, .unexpectedStatus(200))
        XCTAssertEqual(
            client.verify(HTTPResponseHead(status: 426, headers: ["Sec-WebSocket-Version": "13"])).failure, .unexpectedStatus(426))
        XCTAssertEqual(
            client.verify(HTTPResponseHead(status: 101, headers: ["Connection": "Upgrade", "Sec-WebSocket-Accept": good])).failure,
            .missingUpgrade)
        XCTAssertEqual(
            client.verify(HTTPResponseHead(status: 101, headers: ["Upgrade": "websocket", "Sec-WebSocket-Accept": good])).failure,
            .missingUpgrade)
        XCTAssertEqual(
            client.verify(
                HTTPResponseHead(status: 101, headers: ["Upgrade": "h2c", "Connection": "Upgrade", "Sec-WebSocket-Accept": good])
            ).failure, .missingUpgrade)
        XCTAssertEqual(
            client.verify(HTTPResponseHead(status: 101, headers: ["Upgrade": "websocket", "Connection": "Upgrade"])).failure, .badAccept)
        XCTAssertEqual(
            client.verify(
                HTTPResponseHead(
                    status: 101, headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": good.lowercased()])
            ).failure, .badAccept)
        XCTAssertEqual(
            client.verify(
                HTTPResponseHead(
                    status: 101,
                    headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": good, "sec-websocket-accept": good])
            ).failure, .badAccept)
    }
}

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
