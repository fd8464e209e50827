import Foundation
import Glibc
import WSCore
import XCTest

@testable import PresenceD

/// Reading the realtime protocol's JSON messages in tests.
extension TestWebSocket {
    /// The next server message as a dictionary.
    func nextJSON(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let frame = try receiveMessage()
        guard case .text(let text) = frame else {
            XCTFail("expected a text message, got \(frame)", file: file, line: line)
            return [:]
        }
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    func expectPresence(_ user: String, _ online: Bool, _ channel: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try nextJSON(file: file, line: line)
        XCTAssertEqual(m["type"] as? String, "presence", "\(m)", file: file, line: line)
        XCTAssertEqual(m["user_id"] as? String, user, "\(m)", file: file, line: line)
        XCTAssertEqual(m["online"] as? Bool, online, "\(m)", file: file, line: line)
        XCTAssertEqual(m["channel"] as? String, channel, "\(m)", file: file, line: line)
    }

    /// Joins and reads the snapshot (one presence per online user, the joiner included) and the
    /// `joined` frame that ends it; returns `joined`.
    @discardableResult
    func join(_ channel: String, expecting users: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try sendText(#"{"type":"join","channel":"\#(channel)"}"#)
        return try expectSnapshot(channel, users, file: file, line: line)
    }

    /// The snapshot (one presence per online user) and `joined`; returns `joined`.
    @discardableResult
    func expectSnapshot(_ channel: String, _ users: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        var seen: [String] = []
        for _ in users {
            let m = try nextJSON(file: file, line: line)
            XCTAssertEqual(m["type"] as? String, "presence", "\(m)", file: file, line: line)
            XCTAssertEqual(m["online"] as? Bool, true, file: file, line: line)
            seen.append(m["user_id"] as? String ?? "?")
        }
        XCTAssertEqual(seen.sorted(), users.sorted(), file: file, line: line)
        let joined = try nextJSON(file: file, line: line)
        XCTAssertEqual(joined["type"] as? String, "joined", "\(joined)", file: file, line: line)
        XCTAssertEqual(joined["channel"] as? String, channel, "\(joined)", file: file, line: line)
        return joined
    }

    /// Drops the TCP connection (no close frame), like a closed tab.
    func disconnect() {
        shutdown(socket.fd, Int32(SHUT_RDWR))
    }

    /// The JSON messages that arrive within `millis` (read with a short receive timeout).
    func messages(within millis: Int) -> [[String: Any]] {
        var previous = timeval()
        var length = socklen_t(MemoryLayout<timeval>.size)
        getsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &previous, &length)
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        defer { setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &previous, socklen_t(MemoryLayout<timeval>.size)) }
        var seen: [[String: Any]] = []
        let until = Date().addingTimeInterval(Double(millis) / 1000)
        while Date() < until {
            if let m = try? nextJSON() { seen.append(m) }
        }
        return seen
    }

    /// Nothing arrives within `millis` (the receive timeout is shortened for the check).
    func expectSilence(millis: Int = 300, file: StaticString = #filePath, line: UInt = #line) {
        var previous = timeval()
        var length = socklen_t(MemoryLayout<timeval>.size)
        getsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &previous, &length)
        var tv = timeval(tv_sec: millis / 1000, tv_usec: (millis % 1000) * 1000)
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        defer { setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &previous, socklen_t(MemoryLayout<timeval>.size)) }
        if let frame = try? receiveMessage() { XCTFail("unexpected \(frame)", file: file, line: line) }
    }
}
