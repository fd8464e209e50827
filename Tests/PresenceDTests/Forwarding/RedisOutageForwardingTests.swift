import Foundation
import Glibc
import RedisTestSupport
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceForwarding
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// Chat through a Redis outage (docs/operations.md, "Through a Redis outage (Redis mode)"), Redis
/// mode with forwarding on: messages are kept in the instance's local queue while Redis is away and
/// moved to the shared stream when it returns — none refused, none lost, none forwarded twice.
final class RedisOutageForwardingTests: StandInServerTestCase {
    private var redis: RedisServerProcess!
    private var directories: [String] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        // Durable like a production Redis (AOF, every write synced): what it acknowledged survives
        // the SIGKILL, so whatever goes missing would be presenced's doing. DEBUG SLEEP freezes it.
        redis = try RedisServerProcess(extraArguments: [
            "--appendonly", "yes", "--appendfsync", "always",
            "--enable-debug-command", "yes",
        ])
    }

    override func tearDown() {
        redis?.stop()
        if let redis { _ = try? FileManager.default.removeItem(atPath: redis.directory + "/appendonlydir") }
        redis = nil
        super.tearDown()
        for directory in directories { _ = try? FileManager.default.removeItem(atPath: directory) }
    }

    private func stateDirectory() -> String {
        let path = NSTemporaryDirectory() + "presenced-outage-" + RequestID.make()
        directories.append(path)
        return path
    }

    /// An instance in Redis mode forwarding to `service`, its local queue in `directory`. The
    /// reader lease outlasts the outage (30 s), so the reader does not change hands meanwhile.
    private func instance(
        _ backend: IOBackendKind, _ service: StandInHTTPServer, directory: String? = nil,
        configure: (inout Config) -> Void = { _ in }
    ) throws -> ForwardingTestServer {
        let directory = directory ?? stateDirectory()
        return try ForwardingTestServer(backend: backend) { config in
            config.redisURL = self.redis.url()
            config.chatServiceURL = service.baseURL
            config.stateDirectory = directory
            config.forwardClaimIdleMillis = 30_000
            configure(&config)
        }
    }

    private func streamLength() -> Int {
        Int(redis.redisCLI("XLEN", "presenced:{forward}").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Entries ever added to the forward stream (XINFO STREAM's `entries-added`): one per message
    /// unless one was added twice.
    private func entriesAdded() -> Int {
        let lines = redis.redisCLI("XINFO", "STREAM", "presenced:{forward}").split(separator: "\n").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard let at = lines.firstIndex(of: "entries-added"), at + 1 < lines.count else { return -1 }
        return Int(lines[at + 1]) ?? -1
    }

    /// Two instances (one on each backend where io_uring works), two senders and two listeners;
    /// Redis SIGKILLed for 10 s while the senders go on, then started again. No message is refused,
    /// each instance's local fan-out goes on, and afterwards chat-service has every accepted message
    /// exactly once, each instance's in the order it accepted them.
    func testChatGoesOnThroughARedisOutageAndEveryMessageIsForwardedOnce() throws {
        let service = try chatService { 201 }
        let a = try instance(availableBackends[0], service), b = try instance(availableBackends.last!, service)
        waitUntil("Redis ready") { a.hub.redisReady && b.hub.redisReady }
        let alice = try a.client("alice"), carol = try a.client("carol")
        let bob = try b.client("bob"), dave = try b.client("dave")
        try alice.join("family", expecting: ["alice"])
        try carol.join("family", expecting: ["alice", "carol"])
        try bob.join("family", expecting: ["alice", "carol", "bob"])
        try dave.join("family", expecting: ["alice", "carol", "bob", "dave"])

        var fromAlice: [String] = [], fromBob: [String] = []
        func round(_ tag: String) throws {
            fromAlice.append(try sendMessage(alice, "alice \(tag)"))
            fromBob.append(try sendMessage(bob, "bob \(tag)"))
        }
        for i in 0..<20 { try round("before \(i)") }

        redis.kill()
        let down = EventLoop.monotonicMillis()
        let (aliceBefore, bobBefore) = (fromAlice.count, fromBob.count)
        var i = 0
        // A message every 50 ms from each sender: a few hundred to forward one by one afterwards
        // (one channel), which a loaded machine does in seconds.
        while EventLoop.monotonicMillis() - down < 10_000 {
            try round("during \(i)")
            i += 1
            pause(millis: 50)
        }
        // Fan-out on each instance went on: carol heard alice, dave heard bob, all along.
        try expectMessages(carol, Array(fromAlice[aliceBefore...]))
        try expectMessages(dave, Array(fromBob[bobBefore...]))
        XCTAssertGreaterThan(fromAlice.count - aliceBefore, 30, "messages were sent during the outage")

        try redis.start()
        // Sent while each instance moves its backlog (they must queue behind it, not overtake
        // it), until both have moved it, and a few after.
        var moved = 0
        i = 0
        while moved < 10 {
            try round("after \(i)")
            i += 1
            pause(millis: 20)
            if i % 5 == 0 || moved > 0 {
                let backlogs = [try metrics(port: a.port), try metrics(port: b.port)].map {
                    ($0["presenced_forward_moved_to_stream_total"] ?? 0, $0["presenced_forward_local_depth"] ?? -1)
                }
                if backlogs.allSatisfy({ $0.0 > 0 && $0.1 == 0 }) { moved += 1 }
            }
            XCTAssertLessThan(i, 1_000, "the backlogs were not moved")
            if i >= 1_000 { break }
        }

        let accepted = fromAlice + fromBob
        waitUntil("every accepted message at chat-service", timeoutMillis: 45_000) {
            Set(self.deliveredIDs(service)).isSuperset(of: accepted)
        }
        waitUntil("the stream emptied") { self.streamLength() == 0 }
        pause(millis: 500)  // a second delivery would show up now
        let posted = deliveredIDs(service)
        XCTAssertEqual(posted.count, Set(posted).count, "a message was posted twice")
        XCTAssertEqual(entriesAdded(), accepted.count, "a message was added to the stream twice")
        XCTAssertEqual(Set(posted), Set(accepted))
        XCTAssertEqual(posted.filter(Set(fromAlice).contains), fromAlice, "A's messages out of the order A accepted them in")
        XCTAssertEqual(posted.filter(Set(fromBob).contains), fromBob, "B's messages out of the order B accepted them in")

        for (name, server) in [("A", a), ("B", b)] {
            var figures: [String: Double] = [:]
            waitUntil("\(name)'s local queue emptied") {
                figures = (try? self.metrics(port: server.port)) ?? [:]
                return figures["presenced_forward_local_depth"] == 0
            }
            XCTAssertGreaterThan(figures["presenced_forward_queued_locally_total"] ?? 0, 30, name)
            XCTAssertEqual(figures["presenced_forward_moved_to_stream_total"], figures["presenced_forward_queued_locally_total"], name)
            XCTAssertEqual(figures["presenced_forward_refused_total"], 0, name)
        }
    }

    /// An append whose reply is lost may have run: Redis frozen (DEBUG SLEEP) past presenced's
    /// command timeout takes the append, presenced gives up on the connection and keeps the
    /// message locally, then Redis wakes and runs it. The writer mark shows it ran, so it is not
    /// added to the stream a second time: chat-service gets it once.
    func testAnAppendThatRanWithoutAReplyIsNotAddedTwice() throws {
        let service = try chatService { 201 }
        let server = try instance(availableBackends[0], service) { $0.redisTimeoutMillis = 300 }
        waitUntil("Redis ready") { server.hub.redisReady }
        let alice = try server.client("alice")
        try alice.join("family", expecting: ["alice"])
        let first = try sendMessage(alice, "before the freeze")
        waitUntil("the first forwarded") { self.deliveredIDs(service).contains(first) }

        // Written without waiting for the answer: Redis sleeps from the moment it reads it.
        let sleeper = try TestSocket(port: redis.port)
        try sleeper.write("DEBUG SLEEP 1.5\r\n")
        pause(millis: 100)
        let frozen = try sendMessage(alice, "sent to a sleeping Redis")
        let later = try sendMessage(alice, "after it")
        waitUntil("both forwarded", timeoutMillis: 20_000) { Set(self.deliveredIDs(service)).isSuperset(of: [frozen, later]) }
        waitUntil("the stream emptied") { self.streamLength() == 0 }
        pause(millis: 500)
        let posted = deliveredIDs(service)
        XCTAssertEqual(posted, [first, frozen, later], "once each, in order")
        XCTAssertEqual(entriesAdded(), 3, "the frozen message was added to the stream twice")
        let figures = try metrics(port: server.port)
        XCTAssertGreaterThanOrEqual(figures["presenced_forward_queued_locally_total"] ?? 0, 1, "the frozen append was kept locally")
        XCTAssertEqual(figures["presenced_forward_local_depth"], 0)
        withExtendedLifetime(sleeper) {}
    }

    /// Redis is down from the start: messages are kept locally; presenced stops with them still
    /// there; the next start (same state directory, Redis back) moves them to the stream first.
    func testMessagesKeptDuringAnOutageAreMovedAfterARestart() throws {
        let service = try chatService { 201 }
        let directory = stateDirectory()
        redis.stop()
        var kept: [String] = []
        do {
            let first = try instance(availableBackends[0], service, directory: directory)
            defer { first.stop() }
            let alice = try first.client("alice")
            try alice.sendText(#"{"type":"join","channel":"family"}"#)
            _ = try alice.nextJSON()  // her own presence (Redis down: this instance's view)
            for i in 0..<30 { kept.append(try sendMessage(alice, "kept \(i)", channel: "family")) }
            XCTAssertEqual(try metrics(port: first.port)["presenced_forward_local_depth"], 30)
        }
        XCTAssertTrue(deliveredIDs(service).isEmpty)
        XCTAssertEqual(FileForwardQueue.existingIndices(in: directory).isEmpty, false, "the local queue is on disk")
        try redis.start()
        let second = try instance(availableBackends[0], service, directory: directory)
        defer { second.stop() }
        waitUntil("the kept messages forwarded after the restart", timeoutMillis: 20_000) {
            Set(self.deliveredIDs(service)).isSuperset(of: kept)
        }
        XCTAssertEqual(deliveredIDs(service), kept, "once each, in order")
        XCTAssertEqual(entriesAdded(), 30)
        waitUntil("the local queue emptied") { (try? self.metrics(port: second.port))?["presenced_forward_local_depth"] == 0 }
        XCTAssertEqual(try metrics(port: second.port)["presenced_forward_moved_to_stream_total"], 30)
    }

    /// In Redis mode the state directory is needed too: one that cannot be made, or one another
    /// instance holds, fails the start (a clear error) instead of the first outage.
    func testAnUnusableOrSharedStateDirectoryFailsTheStartInRedisMode() throws {
        var config = try Config.parse(environment: ["REDIS_URL": redis.url(), "CHAT_SERVICE_URL": "http://127.0.0.1:9"], arguments: [])
        config.threads = 1
        config.stateDirectory = "/proc/presenced-cannot-be-made"
        XCTAssertThrowsError(try DaemonAssembly.makeForwarding(config: config)) { error in
            XCTAssertTrue("\(error)".contains("/proc/presenced-cannot-be-made"), "\(error)")
        }
        config.stateDirectory = stateDirectory()
        let holder = try XCTUnwrap(try DaemonAssembly.makeForwarding(config: config))
        XCTAssertThrowsError(try DaemonAssembly.makeForwarding(config: config)) { error in
            XCTAssertTrue("\(error)".contains("in use by another presenced"), "\(error)")
        }
        withExtendedLifetime(holder) {}
    }
}
