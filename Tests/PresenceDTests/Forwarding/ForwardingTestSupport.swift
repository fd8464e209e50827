import Foundation
import Glibc
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceLoop

/// What the forwarding tests share: a chat-service stand-in, the message ids it received, chat
/// messages sent and received, dead letters, a wait, and a `/metrics` scrape.
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

    /// Sends a chat message and returns its id, from its echo (other frames are skipped); an
    /// `error` answer fails the test and throws.
    func sendMessage(
        _ socket: TestWebSocket, _ content: String, channel: String = "family",
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> String {
        try socket.sendText(#"{"type":"message","channel":"\#(channel)","content":"\#(content)"}"#)
        while true {
            let json = try socket.nextJSON()
            if json["type"] as? String == "error" {
                XCTFail("message \(content) refused: \(json)", file: file, line: line)
                throw SystemError(call: "message refused: \(json)", errno: EIO)
            }
            if json["type"] as? String == "message", json["content"] as? String == content { return json["id"] as! String }
        }
    }

    /// Reads `socket` until every message id in `ids` has arrived (other frames are skipped).
    func expectMessages(_ socket: TestWebSocket, _ ids: [String]) throws {
        var missing = Set(ids)
        while !missing.isEmpty {
            let json = try socket.nextJSON()
            if json["type"] as? String == "message", let id = json["id"] as? String { missing.remove(id) }
        }
    }

    /// `presenced dead-letters list` (Redis when `environment` has REDIS_URL, else STATE_DIRECTORY):
    /// one JSON object per dead letter.
    func listDeadLetters(_ environment: [String: String]) -> [[String: Any]] {
        var lines: [String] = []
        _ = DeadLettersCommand.run(arguments: ["list"], environment: environment, output: { lines.append($0) }, errorOutput: { _ in })
        return lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
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
