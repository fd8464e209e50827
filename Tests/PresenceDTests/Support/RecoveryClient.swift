import Foundation
import Glibc
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// What a join answered: its presence snapshot, the replayed messages, and `joined`.
struct JoinAnswer {
    var presence: [[String: Any]] = []
    var replay: [[String: Any]] = []
    var joined: [String: Any] = [:]

    var recovered: Bool? { joined["recovered"] as? Bool }
    var latest: StreamPosition? {
        guard let offset = joined["offset"] as? Int, let epoch = joined["epoch"] as? String else { return nil }
        return StreamPosition(offset: Int64(offset), epoch: epoch)
    }
}

extension TestWebSocket {
    /// Joins `channel` (with `since` when given) and reads up to and including `joined`.
    func join(_ channel: String, since: StreamPosition?, file: StaticString = #filePath, line: UInt = #line) throws -> JoinAnswer {
        if let since {
            try sendText(#"{"type":"join","channel":"\#(channel)","since":{"offset":\#(since.offset),"epoch":"\#(since.epoch)"}}"#)
        } else {
            try sendText(#"{"type":"join","channel":"\#(channel)"}"#)
        }
        var answer = JoinAnswer()
        while true {
            let m = try nextJSON(file: file, line: line)
            switch m["type"] as? String {
            case "presence": answer.presence.append(m)
            case "message": answer.replay.append(m)
            case "joined":
                XCTAssertEqual(m["channel"] as? String, channel, file: file, line: line)
                answer.joined = m
                return answer
            default:
                XCTFail("unexpected during a join: \(m)", file: file, line: line)
            }
        }
    }

    /// Drops the connection with a TCP reset (no close frame, no FIN): a phone losing the network.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        shutdown(socket.fd, Int32(SHUT_RD))
        close(socket.fd)
    }

    /// The next chat message (presence and typing skipped).
    func nextMessage(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        while true {
            let m = try nextJSON(file: file, line: line)
            if m["type"] as? String == "message" { return m }
        }
    }
}

/// A message's offset and epoch.
func position(of message: [String: Any]) -> StreamPosition? {
    guard let offset = message["offset"] as? Int, let epoch = message["epoch"] as? String else { return nil }
    return StreamPosition(offset: Int64(offset), epoch: epoch)
}

/// A thread that keeps sending chat messages (`prefix` + a counter) until `stop()`; it reads
/// nothing (its own copies are drained by `drain`).
final class SteadySender: @unchecked Sendable {
    private let ws: TestWebSocket
    private let stopped = Lock(false)
    private let count = Lock(0)
    private let finished = DispatchSemaphore(value: 0)

    init(_ ws: TestWebSocket, channel: String, prefix: String, everyMillis: Int) {
        self.ws = ws
        Thread { [self] in
            var n = 0
            while !stopped.withLock({ $0 }) {
                guard (try? ws.sendText(#"{"type":"message","channel":"\#(channel)","content":"\#(prefix)\#(n)"}"#)) != nil else { break }
                n += 1
                count.withLock { $0 = n }
                usleep(UInt32(everyMillis * 1000))
            }
            finished.signal()
        }.start()
        Thread { while (try? ws.receive()).map({ $0 != .eof }) ?? false {} }.start()
    }

    /// Stops and returns how many it sent.
    @discardableResult
    func stop() -> Int {
        stopped.withLock { $0 = true }
        finished.wait()
        return count.withLock { $0 }
    }
}
