import Foundation
import Glibc
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound

/// Plain HTTP and metrics reads against a running presenced, shared by the tests that need them.
enum ServerProbe {
    /// One request on a fresh connection: the response head and the body as text.
    static func exchange(
        _ port: UInt16, _ request: String, source: String? = nil,
        timeoutMillis: Int = 10_000
    ) throws -> (head: HTTPResponseHead, body: String) {
        let socket = try TestSocket(port: port, source: source, receiveTimeoutMillis: timeoutMillis)
        try socket.write(request)
        let (head, body) = try socket.readHTTPResponse()
        return (head, String(decoding: body, as: UTF8.self))
    }

    /// `GET path` with an optional bearer token.
    static func get(_ port: UInt16, _ path: String, bearer: String? = nil) throws -> (head: HTTPResponseHead, body: String) {
        let auth = bearer.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        return try exchange(port, "GET \(path) HTTP/1.1\r\nHost: x\r\n\(auth)\r\n")
    }

    /// `POST path` with a JSON body and an optional bearer token.
    static func post(_ port: UInt16, _ path: String, json: String, bearer: String? = nil) throws -> (head: HTTPResponseHead, body: String) {
        let auth = bearer.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        return try exchange(
            port,
            "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(auth)"
                + "Content-Length: \(json.utf8.count)\r\n\r\n\(json)")
    }

    /// A JSON body as a dictionary (empty when it is not an object).
    static func object(_ body: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    /// `/metrics` as series → value (labels included in the series name, as written).
    static func metrics(_ port: UInt16) throws -> [String: Double] {
        let (head, body) = try get(port, "/metrics")
        XCTAssertEqual(head.status, 200)
        var values: [String: Double] = [:]
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = v
        }
        return values
    }
}

extension TestWebSocket {
    /// The next message is an `error` with this code (and channel, when given).
    func expectError(_ code: String, channel: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try nextJSON(file: file, line: line)
        XCTAssertEqual(m["type"] as? String, "error", "\(m)", file: file, line: line)
        XCTAssertEqual(m["code"] as? String, code, "\(m)", file: file, line: line)
        if let channel { XCTAssertEqual(m["channel"] as? String, channel, "\(m)", file: file, line: line) }
    }

    /// The connection ends with a close frame carrying `code` (pings skipped).
    func expectClose(_ code: UInt16, file: StaticString = #filePath, line: UInt = #line) throws {
        while true {
            let frame = try receiveMessage()
            if case .text = frame { continue }  // events still on their way before the close
            XCTAssertEqual(frame, .close(code), file: file, line: line)
            return
        }
    }
}

/// A file a daemon's stdout (its JSON log lines) goes to, read back by the test; removed at deinit.
final class TemporaryLogFile {
    let path = NSTemporaryDirectory() + "presenced-log-" + RequestID.make()
    let fd: Int32

    init() throws {
        fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError(call: "open \(path)", errno: errno) }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Everything written so far.
    func text() -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}
