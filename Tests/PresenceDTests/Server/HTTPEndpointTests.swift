import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// Plain HTTP on the WebSocket port: health endpoints, refused upgrades, malformed heads.
final class HTTPEndpointTests: XCTestCase {
    private func request(_ server: TestServer, _ text: String) throws -> (HTTPResponseHead, [UInt8]) {
        let socket = try TestSocket(port: server.port)
        try socket.write(text)
        return try socket.readHTTPResponse()
    }

    func testHealthAndRequestIDs() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false)
            defer { server.stop() }
            let (head, body) = try request(server, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-123\r\n\r\n")
            XCTAssertEqual(head.status, 200)
            XCTAssertEqual(head.headers["x-request-id"], "abc-123")
            XCTAssertEqual(String(decoding: body, as: UTF8.self), #"{"status":"ok"}"#)
            let (ready, _) = try request(server, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(ready.status, 200)
            XCTAssertEqual(ready.headers["x-request-id"]?.count, 32, "a new request id is made when none is given")
            let (missing, missingBody) = try request(server, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(missing.status, 404)
            XCTAssertTrue(String(decoding: missingBody, as: UTF8.self).contains(#""code":"not_found""#))
        }
    }

    func testMetricsInEmbeddedModeHaveNoRedisSeries() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        let client = try server.client("alice")
        let (head, body) = try request(server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["content-type"], Metrics.contentType)
        let text = String(decoding: body, as: UTF8.self)
        XCTAssertTrue(text.contains("# TYPE presenced_connections gauge\npresenced_connections 1\n"), text)
        XCTAssertFalse(text.contains("presenced_redis"), text)
        withExtendedLifetime(client) {}
    }

    func testKeepAliveServesSeveralPipelinedRequests() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false)
            defer { server.stop() }
            let socket = try TestSocket(port: server.port)
            try socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let all = String(decoding: try socket.readToEnd(), as: UTF8.self)
            XCTAssertTrue(all.contains(#"{"status":"ok"}"#) && all.contains(#"{"status":"ready"}"#), "\(backend): \(all)")
        }
    }

    func testRefusedUpgradesAndMalformedHeads() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend)
            defer { server.stop() }
            let upgrade =
                "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            let (old, _) = try request(server, upgrade + "Sec-WebSocket-Version: 8\r\n\r\n")
            XCTAssertEqual(old.status, 426, "\(backend)")
            XCTAssertEqual(old.headers["sec-websocket-version"], "13")
            let (noKey, body) = try request(
                server, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
            XCTAssertEqual(noKey.status, 400, "\(backend)")
            XCTAssertTrue(String(decoding: body, as: UTF8.self).contains(#""code":"bad_upgrade""#))
            XCTAssertNotNil(noKey.headers["x-request-id"])
            let (garbage, _) = try request(server, "GARBAGE\r\n\r\n")
            XCTAssertEqual(garbage.status, 400, "\(backend)")
            let (huge, _) = try request(server, "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 9000) + "\r\n\r\n")
            XCTAssertEqual(huge.status, 431, "\(backend)")
        }
    }
}
