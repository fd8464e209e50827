import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// What the presence-details tests (names, last_seen, user presence) share: clients whose token
/// carries a `name`, raw presence frames, ISO 8601 times, the server API's user query, and
/// instances in embedded or Redis mode.
enum PresenceDetails {
    static let apiToken = "server-api-token-presence-details"

    /// A realtime client for `user` whose token has `name` (none when nil).
    static func client(_ port: UInt16, _ user: String, name: String? = nil, timeoutMillis: Int = 15_000) throws -> TestWebSocket {
        let token = TokenMinter(secret: TestServer.secret, audience: "presenced").mint(userID: user, name: name, now: UnixTime.now()).token
        return try TestWebSocket(port: port, path: "/ws?token=" + token, receiveTimeoutMillis: timeoutMillis)
    }

    /// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ` (nil when it is not exactly that form).
    static func millis(iso8601 text: String) -> Int64? {
        guard text.utf8.count == 24, text.hasSuffix("Z") else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = formatter.date(from: text) else { return nil }
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// An in-process realtime instance: embedded without `redis`, else in Redis mode on it
    /// (waits until Redis answers). The server API is on.
    static func instance(
        _ backend: IOBackendKind, redis: RedisServerProcess?, ttl: Int64 = 30_000, grace: Int64,
        apiToken: String? = PresenceDetails.apiToken
    ) throws -> TestServer {
        let server = try TestServer(backend: backend, threads: 2, echo: false) { config in
            config.redisURL = redis?.url()
            config.presenceTTLMillis = ttl
            config.presenceGraceMillis = grace
            config.serverAPIToken = apiToken
        }
        if redis != nil {
            let end = EventLoop.monotonicMillis() + 10_000
            while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
            XCTAssertTrue(server.hub!.redisReady, "Redis ready")
        }
        return server
    }

    /// One user's answer from `GET /api/v1/presence?user=`.
    struct Answer: Equatable {
        var user: String
        var online: Bool
        /// The raw `last_seen`: nil for JSON null.
        var lastSeen: String?
    }

    /// `GET /api/v1/presence?user=…` with the server API token: the status and, on 200, the
    /// answers (every entry checked to have exactly the three keys).
    static func users(
        _ port: UInt16, _ query: String, bearer: String? = PresenceDetails.apiToken,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (status: Int, answers: [Answer], body: String) {
        let (head, body) = try ServerProbe.get(port, "/api/v1/presence?user=" + query, bearer: bearer)
        guard head.status == 200 else { return (head.status, [], body) }
        guard let list = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] else {
            XCTFail("not a JSON array: \(body)", file: file, line: line)
            return (head.status, [], body)
        }
        let answers = list.map { entry -> Answer in
            XCTAssertEqual(Set(entry.keys), ["user_id", "online", "last_seen"], body, file: file, line: line)
            return Answer(
                user: entry["user_id"] as? String ?? "?", online: entry["online"] as? Bool ?? false,
                lastSeen: entry["last_seen"] as? String)
        }
        return (head.status, answers, body)
    }

    /// Asks until `condition` holds for the answers (Redis applies a connection's presence a
    /// moment after the upgrade); the last answers. Fails after `timeoutMillis`.
    @discardableResult
    static func waitForUsers(
        _ port: UInt16, _ query: String, timeoutMillis: Int64 = 10_000, file: StaticString = #filePath,
        line: UInt = #line, until condition: ([Answer]) -> Bool
    ) throws -> [Answer] {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while true {
            let (status, answers, body) = try users(port, query, file: file, line: line)
            if status == 200 && condition(answers) { return answers }
            if EventLoop.monotonicMillis() > end {
                XCTFail("user presence never reached the expected state: \(status) \(body)", file: file, line: line)
                return answers
            }
            pause(millis: 50)
        }
    }
}

extension TestWebSocket {
    /// The next `presence` frame's raw text (other frames — a `joined`, a message — skipped).
    func nextPresenceText(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        while true {
            let frame = try receiveMessage()
            guard case .text(let text) = frame else {
                XCTFail("expected a text message, got \(frame)", file: file, line: line)
                return ""
            }
            if text.hasPrefix(#"{"type":"presence","#) { return text }
        }
    }

    /// Reads the snapshot of a join of `channel`: user → raw frame, one per online user.
    func joinSnapshot(_ channel: String, count: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [String: String] {
        try sendText(#"{"type":"join","channel":"\#(channel)"}"#)
        var frames: [String: String] = [:]
        for _ in 0..<count {
            let text = try nextPresenceText(file: file, line: line)
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
            frames[object["user_id"] as? String ?? "?"] = text
        }
        return frames
    }
}
