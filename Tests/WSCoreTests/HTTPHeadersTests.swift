import XCTest

@testable import WSCore

final class HTTPHeadersTests: XCTestCase {
    func testLookupIsCaseInsensitive() {
        var headers = HTTPHeaders([(name: "Content-Type", value: "text/plain")])
        headers.add("X-Multi", "1")
        headers.add("x-multi", "2")
        XCTAssertEqual(headers["content-type"], "text/plain")
        XCTAssertEqual(headers["CONTENT-TYPE"], "text/plain")
        XCTAssertNil(headers["Content-Typ"])
        XCTAssertNil(headers["Content-Type2"])
        XCTAssertEqual(headers.values("X-MULTI"), ["1", "2"])
        XCTAssertEqual(headers.values("absent"), [])
        XCTAssertEqual(headers.count, 3)
        XCTAssertTrue(headers.contains("x-multi"))
        headers.remove("X-Multi")
        XCTAssertEqual(headers.count, 1)
        XCTAssertEqual(Array(headers).map(\.value), ["text/plain"])
    }

    func testContainsToken() {
        let headers: HTTPHeaders = ["Connection": "keep-alive, Upgrade", "Upgrade": "h2c", "upgrade": " WebSocket ,", "Empty": ", ,"]
        XCTAssertTrue(headers.containsToken("upgrade", in: "Connection"))
        XCTAssertTrue(headers.containsToken("KEEP-ALIVE", in: "connection"))
        XCTAssertFalse(headers.containsToken("keep", in: "Connection"))
        XCTAssertFalse(headers.containsToken("alive", in: "Connection"))
        XCTAssertTrue(headers.containsToken("websocket", in: "Upgrade"), "later occurrences count")
        XCTAssertTrue(headers.containsToken("h2c", in: "Upgrade"))
        XCTAssertFalse(headers.containsToken("websocket", in: "Connection"))
        XCTAssertFalse(headers.containsToken("", in: "Empty"))
        XCTAssertFalse(headers.containsToken("x", in: "Missing"))
        XCTAssertFalse((["Connection": "upgrades"] as HTTPHeaders).containsToken("upgrade", in: "Connection"))
        XCTAssertTrue((["Connection": "Upgrade"] as HTTPHeaders).containsToken("upgrade", in: "Connection"))
        XCTAssertTrue((["Connection": "\tupgrade\t"] as HTTPHeaders).containsToken("upgrade", in: "Connection"))
    }

    func testEquality() {
        XCTAssertEqual((["A": "1", "b": "2"] as HTTPHeaders), (["a": "1", "B": "2"] as HTTPHeaders))
        XCTAssertNotEqual((["A": "1", "B": "2"] as HTTPHeaders), (["B": "2", "A": "1"] as HTTPHeaders))
        XCTAssertNotEqual((["A": "x"] as HTTPHeaders), (["A": "X"] as HTTPHeaders))
        XCTAssertNotEqual((["A": "1"] as HTTPHeaders), HTTPHeaders())
    }

    func testByteClasses() {
        let tchars = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        for byte in UInt8.min...UInt8.max {
            XCTAssertEqual(HTTPHeaders.isTokenByte(byte), tchars.contains(byte), "byte \(byte)")
            let hex = UInt8(String(UnicodeScalar(byte)), radix: 16)
            XCTAssertEqual(HTTPHeaders.hexDigitValue(byte), byte < 0x80 ? hex : nil, "byte \(byte)")
        }
        XCTAssertTrue(HTTPHeaders.isValidName("X-Request-ID"))
        XCTAssertFalse(HTTPHeaders.isValidName(""))
        XCTAssertFalse(HTTPHeaders.isValidName("Bad Name"))
        XCTAssertFalse(HTTPHeaders.isValidName("Bad:Name"))
    }
}
