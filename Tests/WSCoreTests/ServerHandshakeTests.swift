import XCTest

@testable import WSCore

final class ServerHandshakeTests: XCTestCase {
    private let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

    /// A valid upgrade request, with `edit` applied to its headers.
    private func request(
        method: String = "GET", minor: Int = 1, _ edit: (inout [(name: String, value: String)]) -> Void = { _ in }
    ) -> HTTPRequestHead {
        var fields: [(name: String, value: String)] = [
            (name: "Host", value: "server.example.com"),
            (name: "Upgrade", value: "websocket"),
            (name: "Connection", value: "Upgrade"),
            (name: "Sec-WebSocket-Key", value: sampleKey),
            (name: "Sec-WebSocket-Version", value: "13"),
        ]
        edit(&fields)
        return HTTPRequestHead(method: method, target: "/chat", versionMajor: 1, versionMinor: minor, headers: HTTPHeaders(fields))
    }

    private func rejection(_ head: HTTPRequestHead, file: StaticString = #filePath, line: UInt = #line) -> ServerHandshake.Rejection? {
        switch ServerHandshake.validate(head) {
        case .success(let accepted):
            XCTFail("unexpectedly accepted: \(accepted)", file: file, line: line)
            return nil
        case .failure(let rejection):
            return rejection
        }
    }

    private func assertRejected(
        _ head: HTTPRequestHead, status: Int, reasonContains: String? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        guard let rejection = rejection(head, file: file, line: line) else { return }
        XCTAssertEqual(rejection.status, status, rejection.reason, file: file, line: line)
        if let reasonContains {
            XCTAssertTrue(rejection.reason.contains(reasonContains), "reason: \(rejection.reason)", file: file, line: line)
        }
        if status == 426 {
            XCTAssertEqual(rejection.headers.values("Sec-WebSocket-Version"), ["13"], file: file, line: line)
        } else {
            XCTAssertEqual(rejection.headers.count, 0, file: file, line: line)
        }
    }

    private func remove(_ name: String) -> (inout [(name: String, value: String)]) -> Void {
        { fields in fields.removeAll { $0.name == name } }
    }

    private func set(_ name: String, _ value: String) -> (inout [(name: String, value: String)]) -> Void {
        { fields in
            fields.removeAll { $0.name == name }
            fields.append((name: name, value: value))
        }
    }

    private func add(_ name: String, _ value: String) -> (inout [(name: String, value: String)]) -> Void {
        { fields in fields.append((name: name, value: value)) }
    }

    // MARK: Accept value

    func testRFC6455AcceptValue() {
        // RFC 6455 §1.3 (and the second well-known example key).
        XCTAssertEqual(ServerHandshake.acceptValue(forKey: sampleKey), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        XCTAssertEqual(
            Base64.encode(SHA1.digest(Array((sampleKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        // The SHA-1 bytes printed in RFC 6455 §1.3.
        XCTAssertEqual(
            SHA1.digest(Array((sampleKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)),
            [0xb3, 0x7a, 0x4f, 0x2c, 0xc0, 0x62, 0x4f, 0x16, 0x90, 0xf6, 0x46, 0x06, 0xcf, 0x38, 0x59, 0x45, 0xb2, 0xbe, 0xc4, 0xea])
        // Mis-remembered variants of the example must not match.
        XCTAssertNotEqual(ServerHandshake.acceptValue(forKey: sampleKey), "s3pPLMBiTxaK9kQGzVOo0YLfhM0=")
        XCTAssertNotEqual(ServerHandshake.acceptValue(forKey: sampleKey), "s3pPLMBiTxaK9kQGzVOo+xbmo0=")
        XCTAssertEqual(ServerHandshake.acceptValue(forKey: "x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
    }

    // MARK: Accepted

    func testValidRequestAccepted() throws {
        let accepted = try ServerHandshake.validate(request()).get()
        XCTAssertEqual(accepted.key, sampleKey)
        XCTAssertEqual(accepted.acceptValue, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        XCTAssertEqual(
            String(decoding: accepted.response(), as: UTF8.self),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
    }

    func testResponseWithExtraHeaders() throws {
        let accepted = try ServerHandshake.validate(request()).get()
        XCTAssertEqual(
            String(decoding: accepted.response(extraHeaders: ["X-Request-ID": "r-42", "Sec-WebSocket-Protocol": "chat"]), as: UTF8.self),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Request-ID: r-42\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        )
    }

    func testLenientTokenMatching() throws {
        XCTAssertNoThrow(try ServerHandshake.validate(request(set("Connection", "keep-alive, Upgrade"))).get())
        XCTAssertNoThrow(try ServerHandshake.validate(request(set("Connection", "UPGRADE"))).get())
        XCTAssertNoThrow(try ServerHandshake.validate(request(set("Upgrade", "WebSocket"))).get())
        XCTAssertNoThrow(try ServerHandshake.validate(request(set("Upgrade", "h2c, websocket"))).get())
        XCTAssertNoThrow(
            try ServerHandshake.validate(
                request { fields in
                    fields = fields.map { (name: $0.name.lowercased(), value: $0.value) }
                }
            ).get())
        XCTAssertNoThrow(try ServerHandshake.validate(request(add("Connection", "upgrade"))).get())
    }

    func testParsedRequestAccepted() throws {
        let text =
            "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==  \r\nOrigin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard case .complete(let head, _) = httpAssertSplitInvariant(HTTPRequestParser(), [UInt8](http: text)) else { return XCTFail() }
        XCTAssertEqual(try ServerHandshake.validate(head).get().acceptValue, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    // MARK: Rejections

    func testMethodMustBeGet() {
        assertRejected(request(method: "POST"), status: 400, reasonContains: "GET")
        assertRejected(request(method: "get"), status: 400, reasonContains: "GET")
        // The method check comes first, even when the version is also wrong.
        assertRejected(request(method: "POST", remove("Sec-WebSocket-Version")), status: 400, reasonContains: "GET")
    }

    func testHTTP10Rejected() {
        assertRejected(request(minor: 0), status: 400, reasonContains: "HTTP/1.1")
    }

    func testHigherMinorAccepted() {
        XCTAssertNoThrow(try ServerHandshake.validate(request(minor: 2)).get())
    }

    func testUpgradeHeader() {
        assertRejected(request(remove("Upgrade")), status: 400, reasonContains: "Upgrade")
        assertRejected(request(set("Upgrade", "h2c")), status: 400, reasonContains: "Upgrade")
        assertRejected(request(set("Upgrade", "websockets")), status: 400)
        assertRejected(request(set("Upgrade", "")), status: 400)
    }

    func testConnectionHeader() {
        assertRejected(request(remove("Connection")), status: 400, reasonContains: "Connection")
        assertRejected(request(set("Connection", "keep-alive")), status: 400, reasonContains: "Connection")
        assertRejected(request(set("Connection", "upgrades")), status: 400)
    }

    func testVersion() {
        assertRejected(request(remove("Sec-WebSocket-Version")), status: 426)
        assertRejected(request(set("Sec-WebSocket-Version", "8")), status: 426)
        assertRejected(request(set("Sec-WebSocket-Version", "")), status: 426)
        assertRejected(request(set("Sec-WebSocket-Version", "13, 8")), status: 426)
        assertRejected(request(add("Sec-WebSocket-Version", "8")), status: 426)
        // The version is checked before Host and the key.
        assertRejected(request { fields in fields.removeAll { $0.name == "Host" || $0.name.hasPrefix("Sec-") } }, status: 426)
    }

    func testHost() {
        assertRejected(request(remove("Host")), status: 400, reasonContains: "Host")
        assertRejected(request(add("Host", "other.example.com")), status: 400, reasonContains: "Host")
    }

    func testKey() {
        assertRejected(request(remove("Sec-WebSocket-Key")), status: 400, reasonContains: "Sec-WebSocket-Key")
        assertRejected(request(add("Sec-WebSocket-Key", sampleKey)), status: 400, reasonContains: "Sec-WebSocket-Key")
        assertRejected(request(set("Sec-WebSocket-Key", "")), status: 400)
        assertRejected(request(set("Sec-WebSocket-Key", "not base64!")), status: 400)
        assertRejected(request(set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j")), status: 400)  // 15 bytes
        assertRejected(request(set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZTE=")), status: 400)  // 17 bytes
        assertRejected(request(set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")), status: 400)  // no padding
        assertRejected(request(set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==")), status: 400)  // non-zero pad bits
        assertRejected(request(set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ-_")), status: 400)  // URL alphabet
    }

    func testRejectionResponse() {
        guard let rejection = rejection(request(remove("Sec-WebSocket-Version"))) else { return }
        let bytes = rejection.response()
        guard case .complete(let head, let consumed) = httpFeed(HTTPResponseParser(), bytes, sizes: [bytes.count]) else { return XCTFail() }
        XCTAssertEqual(head.status, 426)
        XCTAssertEqual(head.reason, "Upgrade Required")
        XCTAssertEqual(head.headers["Sec-WebSocket-Version"], "13")
        XCTAssertEqual(head.headers["Connection"], "close")
        XCTAssertEqual(Array(bytes[consumed...]), Array((rejection.reason + "\n").utf8))
        XCTAssertEqual(head.headers["Content-Length"], String(rejection.reason.utf8.count + 1))
    }

    /// The 101 is written straight into one buffer: the same bytes as the generic serializer.
    func testResponseMatchesTheGenericSerializer() {
        let accepted = ServerHandshake.Accepted(key: "dGhlIHNhbXBsZSBub25jZQ==", acceptValue: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        var extra = HTTPHeaders()
        extra.add("X-Request-ID", "0123456789abcdef0123456789abcdef")
        extra.add("X-Odd", "a\r\nb")
        for headers in [HTTPHeaders(), extra] {
            var expected: HTTPHeaders = ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accepted.acceptValue]
            for field in headers { expected.add(field.name, field.value) }
            XCTAssertEqual(accepted.response(extraHeaders: headers), HTTPResponse(status: 101, headers: expected).serialized())
        }
    }
}
