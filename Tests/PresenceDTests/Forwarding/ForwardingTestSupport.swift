import Foundation
import XCTest
@testable import PresenceD

/// What the forwarding tests share: a chat-service stand-in, the message ids it received, a
/// wait, and a `/metrics` scrape.
extension StandInServerTestCase {
    /// The chat-service stand-in: answers with `status()` and records every message id it got.
    func chatService(_ status: @escaping @Sendable () -> Int) throws -> StandInHTTPServer {
        try startServer { _ in StandInHTTPServer.response(status: status(), body: "{}") }
    }

    /// The `id` of every message posted to `server`, in arrival order (repeats included).
    func deliveredIDs(_ server: StandInHTTPServer) -> [String] {
        server.requests.compactMap { request in
            guard let json = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] else { return nil }
            return json["id"] as? String
        }
    }

    func waitUntil(_ what: String, timeoutMillis: Int64 = 15_000, _ condition: () -> Bool) {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while !condition() {
            if EventLoop.monotonicMillis() > end { return XCTFail("timed out waiting for \(what)") }
            pause(millis: 20)
        }
    }

    /// Unlabelled samples of `GET /metrics`, by name.
    func metrics(port: UInt16) throws -> [String: Double] {
        let socket = try TestSocket(port: port)
        try socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let (_, body) = try socket.readHTTPResponse()
        var values: [String: Double] = [:]
        for line in String(decoding: body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Double(parts[1]) { values[String(parts[0])] = v }
        }
        return values
    }
}
