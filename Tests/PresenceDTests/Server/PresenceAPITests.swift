import Foundation
import WSCore
import XCTest

@testable import PresenceD

/// `GET /api/v1/presence`, CORS preflights and health endpoints in realtime mode.
final class PresenceAPITests: XCTestCase {
    private func get(
        _ server: TestServer, _ target: String, headers: String = "", method: String = "GET"
    ) throws -> (HTTPResponseHead, String) {
        let socket = try TestSocket(port: server.port)
        try socket.write("\(method) \(target) HTTP/1.1\r\nHost: x\r\n\(headers)\r\n")
        let (head, body) = try socket.readHTTPResponse()
        return (head, String(decoding: body, as: UTF8.self))
    }

    func testPresenceEndpoint() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false)
            defer { server.stop() }
            let a = try server.client("alice"), a2 = try server.client("alice"), b = try server.client("bob")
            for ws in [a, a2, b] {
                try ws.sendText(#"{"type":"join","channel":"room"}"#)
                _ = try ws.receiveMessage()
            }
            pause(millis: 200)
            let bearer = "Authorization: Bearer \(server.token("reader"))\r\n"
            let (ok, body) = try get(server, "/api/v1/presence?channel=room", headers: bearer)
            XCTAssertEqual(ok.status, 200, "\(backend) \(body)")
            XCTAssertNotNil(ok.headers["x-request-id"])
            let list = try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [[String: Any]]
            XCTAssertEqual(list.count, 2)
            let alice = list.first { $0["user_id"] as? String == "alice" }!
            XCTAssertEqual(alice["connections"] as? Int, 2)
            XCTAssertEqual(alice["online"] as? Bool, true)
            XCTAssertEqual(alice["channel"] as? String, "room")
            // Not single use: the same bearer token works again.
            XCTAssertEqual(try get(server, "/api/v1/presence?channel=room", headers: bearer).0.status, 200)
            XCTAssertEqual(try get(server, "/api/v1/presence?channel=room").0.status, 401)
            XCTAssertEqual(try get(server, "/api/v1/presence?channel=room", headers: "Authorization: Bearer nope\r\n").0.status, 401)
            XCTAssertEqual(try get(server, "/api/v1/presence?channel=no%20spaces", headers: bearer).0.status, 400)
            let limited = "Authorization: Bearer \(server.token("reader", channels: ["other"]))\r\n"
            let (forbidden, fbody) = try get(server, "/api/v1/presence?channel=room", headers: limited)
            XCTAssertEqual(forbidden.status, 403)
            XCTAssertTrue(fbody.contains(#""code":"forbidden_channel""#), fbody)
            let (empty, ebody) = try get(server, "/api/v1/presence?channel=nobody", headers: bearer)
            XCTAssertEqual(empty.status, 200)
            XCTAssertEqual(ebody, "[]")
        }
    }

    func testCORSPreflight() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false)
            defer { server.stop() }
            let (ok, _) = try get(
                server, "/api/v1/ws-token", headers: "Origin: https://casa.devarno.cloud\r\nAccess-Control-Request-Method: POST\r\n",
                method: "OPTIONS")
            XCTAssertEqual(ok.status, 204, "\(backend)")
            XCTAssertEqual(ok.headers["access-control-allow-origin"], "https://casa.devarno.cloud")
            XCTAssertEqual(ok.headers["access-control-allow-credentials"], "true")
            XCTAssertTrue(ok.headers["access-control-allow-methods"]?.contains("POST") == true)
            let (refused, _) = try get(server, "/api/v1/presence", headers: "Origin: https://evil.test\r\n", method: "OPTIONS")
            XCTAssertEqual(refused.status, 403)
            XCTAssertNil(refused.headers["access-control-allow-origin"])
        }
    }
}
