import Foundation
import Glibc
import RedisTestSupport
import Synchronization
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// Redis mode's forwarding (docs/operations.md, "Forward queue and dead letters"): every instance
/// appends to one Redis stream, one reads it for all, a crashed instance's entries are taken over,
/// dead letters live in Redis.
final class RedisForwardingTests: StandInServerTestCase {
    private var redis: RedisServerProcess!
    private var directories: [String] = []
    private let minter = TokenMinter(secret: TestServer.secret, audience: "presenced")

    override func setUpWithError() throws {
        try super.setUpWithError()
        redis = try RedisServerProcess()
    }

    override func tearDown() {
        redis?.stop()
        super.tearDown()
        for directory in directories { _ = try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Each instance has a state directory of its own: in Redis mode it keeps the messages of a
    /// Redis outage, and it is locked.
    private func environment(_ service: StandInHTTPServer) -> [String: String] {
        let directory = NSTemporaryDirectory() + "presenced-state-" + RequestID.make()
        directories.append(directory)
        return [
            "REDIS_URL": redis.url(), "CHAT_SERVICE_URL": "http://127.0.0.1:\(service.port)", "WS_TOKEN_SECRET": TestServer.secret,
            "MESSAGE_RATE": "0", "THREADS": "2", "FORWARD_CLAIM_IDLE": "1s", "STATE_DIRECTORY": directory,
        ]
    }

    /// A presenced forwarding to `service`, ready (its Redis connections up) before it is used.
    private func daemon(_ service: StandInHTTPServer) throws -> DaemonProcess {
        try DaemonProcess(environment: environment(service)).waitUntilReady()
    }

    private func client(_ daemon: DaemonProcess, _ user: String) throws -> TestWebSocket {
        try TestWebSocket(
            port: daemon.port, path: "/ws?token=" + minter.mint(userID: user, ttl: 60, now: UnixTime.now()).token,
            receiveTimeoutMillis: 15_000)
    }

    /// Sends one message and returns its id (from its own echo; other frames are skipped).
    private func send(_ socket: TestWebSocket, _ content: String, channel: String = "family") throws -> String {
        try socket.sendText(#"{"type":"message","channel":"\#(channel)","content":"\#(content)"}"#)
        while true {
            let json = try socket.nextJSON()
            if json["type"] as? String == "error" { throw SystemError(call: "message refused: \(json)", errno: EIO) }
            if json["type"] as? String == "message", json["content"] as? String == content { return json["id"] as! String }
        }
    }

    private func streamLength() -> Int {
        Int(redis.redisCLI("XLEN", "presenced:{forward}").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Two instances, one channel: every message reaches chat-service exactly once (it always
    /// answers 201), in the order the channel's messages were accepted, whichever instance took
    /// them; the stream is empty afterwards and the queue depth is reported once, not per loop.
    func testInstancesShareOneStreamAndDeliverInChannelOrder() throws {
        let service = try chatService { 201 }
        let a = try daemon(service), b = try daemon(service)
        let alice = try client(a, "alice"), bob = try client(b, "bob")
        try alice.join("family", expecting: ["alice"])
        try bob.join("family", expecting: ["alice", "bob"])
        var sent: [String] = []
        for i in 0..<20 {
            sent.append(try send(alice, "a\(i)"))
            sent.append(try send(bob, "b\(i)"))
        }
        waitUntil("all 40 forwarded", timeoutMillis: 20_000) { Set(self.deliveredIDs(service)).isSuperset(of: sent) }
        pause(millis: 500)  // a second delivery would show up now
        XCTAssertEqual(deliveredIDs(service), sent, "once each, in the channel's order")
        waitUntil("the stream emptied") { self.streamLength() == 0 }
        let figures = [try metrics(port: a.port), try metrics(port: b.port)]
        XCTAssertEqual(figures.reduce(0) { $0 + ($1["presenced_forward_delivered_total"] ?? 0) }, 40)
        for f in figures { XCTAssertEqual(f["presenced_forward_queue_depth"], 0) }
    }

    /// chat-service down; 30 messages through instance A, which is reading them (its attempts
    /// reach the stand-in); A is SIGKILLed; chat-service back; instance B takes A's entries over
    /// once they have been idle for FORWARD_CLAIM_IDLE and delivers all 30.
    func testACrashedInstancesEntriesAreTakenOverByAnother() throws {
        let healthy = Atomic<Bool>(false)
        let service = try chatService { healthy.load(ordering: .relaxed) ? 200 : 503 }
        var sent: [String] = []
        do {
            let a = try daemon(service)
            let alice = try client(a, "alice")
            try alice.join("family", expecting: ["alice"])
            try alice.join("garden", expecting: ["alice"])
            for i in 0..<30 { sent.append(try send(alice, "m\(i)", channel: i % 2 == 0 ? "family" : "garden")) }
            waitUntil("A's first attempts") { service.requests.count >= 2 }
            var depth: Double?
            waitUntil("the depth reported once") {
                depth = try? self.metrics(port: a.port)["presenced_forward_queue_depth"]
                return depth == 30
            }
            XCTAssertEqual(depth, 30)
            a.crash()
        }
        XCTAssertEqual(streamLength(), 30, "nothing was lost with A")
        healthy.store(true, ordering: .relaxed)
        let b = try daemon(service)
        waitUntil("all 30 through B", timeoutMillis: 20_000) { Set(self.deliveredIDs(service)).isSuperset(of: sent) }
        waitUntil("the stream emptied") { self.streamLength() == 0 }
        withExtendedLifetime(b) {}
    }

    /// A 400 becomes a dead letter in Redis; `presenced dead-letters list` shows it and `retry`
    /// puts it back while presenced runs, and the running instance re-sends it.
    func testDeadLettersAreListedAndRetriedWhilePresencedRuns() throws {
        let accept = Atomic<Bool>(false)
        let service = try chatService { accept.load(ordering: .relaxed) ? 201 : 400 }
        let daemon = try daemon(service)
        let alice = try client(daemon, "alice")
        try alice.join("family", expecting: ["alice"])
        let id = try send(alice, "refused first")
        func command(_ args: [String]) -> (code: Int32, out: [String], err: [String]) {
            var out: [String] = [], err: [String] = []
            let code = DeadLettersCommand.run(
                arguments: args, environment: ["REDIS_URL": redis.url()],
                output: { out.append($0) }, errorOutput: { err.append($0) })
            return (code, out, err)
        }
        waitUntil("the dead letter") { command(["list"]).out.count == 1 }
        let listed = command(["list"])
        XCTAssertEqual(listed.code, 0)
        XCTAssertTrue(
            listed.out.first?.contains(#""id":"\#(id)""#) == true && listed.out.first?.contains("chat-service answered 400") == true,
            listed.out.first ?? "")
        XCTAssertEqual(command(["retry", "no-such-id"]).code, 1)

        accept.store(true, ordering: .relaxed)
        let before = service.requests.count
        XCTAssertEqual(command(["retry", id]).code, 0)
        XCTAssertTrue(command(["list"]).out.isEmpty)
        waitUntil("the re-send") { service.requests.count > before }
        XCTAssertEqual(service.requests.last?.header("idempotency-key"), id)
        waitUntil("no dead letters reported") { (try? self.metrics(port: daemon.port)["presenced_forward_dead_letters"]) == 0 }
    }
}
