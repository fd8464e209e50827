import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// Recovery after a reconnect (docs/protocol.md, "Recovery after a reconnect") over real sockets on
/// every backend: a client dropped by a TCP reset while 500 messages are sent, rejoining with
/// `since`, gets exactly what it missed, in order, then `joined` with `recovered:true`, then the
/// live messages, with no gap and no repeat — while another client keeps sending through the
/// rejoin. Embedded mode, Redis mode across two instances, and after the receiving instance
/// restarts. And every way recovery is refused: a gap beyond HISTORY_SIZE, an old epoch, history
/// off, a message past HISTORY_TTL.
final class RecoveryTests: XCTestCase {
    static let patience = 20_000

    /// Equal sequences, or one failure naming the counts and the first difference (not both lists).
    private func assertSame<T: Equatable>(_ got: [T], _ expected: [T], _ label: String, file: StaticString = #filePath, line: UInt = #line)
    {
        guard got != expected else { return }
        let first = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
        XCTFail(
            "\(label): \(got.count) vs \(expected.count) expected; first difference at \(first): "
                + "\(first < got.count ? "\(got[first])" : "end") vs \(first < expected.count ? "\(expected[first])" : "end")", file: file,
            line: line)
    }

    private func embedded(_ backend: IOBackendKind, threads: Int = 2, configure: (inout Config) -> Void = { _ in }) throws -> TestServer {
        try TestServer(backend: backend, threads: threads, echo: false) {
            $0.messageRate = 0
            $0.historySize = 1_000
            configure(&$0)
        }
    }

    private func redisInstance(_ backend: IOBackendKind, _ redis: RedisServerProcess) throws -> TestServer {
        let server = try embedded(backend) { $0.redisURL = redis.url() }
        let end = EventLoop.monotonicMillis() + 10_000
        while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
        XCTAssertTrue(server.hub!.redisReady)
        return server
    }

    /// The scenario: bob on `receiving()` (asked again after the drop: a restarted instance may
    /// answer), alice sending 500 on `sending`, carol sending all along on `sending`.
    private func dropAndRecover(
        sending: TestServer, receiving: () throws -> TestServer, beforeRejoin: () throws -> Void = {},
        label: String
    ) throws {
        let room = "room-" + RequestID.make().prefix(8)
        let bob = try receiving().client("bob", receiveTimeoutMillis: Self.patience)
        let first = try bob.join(room, since: nil)
        XCTAssertNotNil(first.latest, label)
        let alice = try sending.client("alice", receiveTimeoutMillis: Self.patience)
        _ = try alice.join(room, since: nil)
        // Olivia stays: when she has "missed 499", all 500 are in the channel's history.
        let olivia = try sending.client("olivia", receiveTimeoutMillis: Self.patience)
        _ = try olivia.join(room, since: nil)
        for i in 0..<5 { try alice.sendText(#"{"type":"message","channel":"\#(room)","content":"before \#(i)"}"#) }
        var last: StreamPosition?
        for _ in 0..<5 { last = position(of: try bob.nextMessage()) }
        let dropped = try XCTUnwrap(last, label)
        bob.reset()

        let carolWS = try sending.client("carol", receiveTimeoutMillis: Self.patience)
        _ = try carolWS.join(room, since: nil)
        let carol = SteadySender(carolWS, channel: room, prefix: "carol ", everyMillis: 5)
        let drainAlice = Thread { while (try? alice.receive()).map({ $0 != .eof }) ?? false {} }
        drainAlice.start()
        for i in 0..<500 { try alice.sendText(#"{"type":"message","channel":"\#(room)","content":"missed \#(i)"}"#) }
        while try olivia.nextMessage()["content"] as? String != "missed 499" {}
        try beforeRejoin()

        let back = try receiving().client("bob", receiveTimeoutMillis: Self.patience)
        let answer = try back.join(room, since: dropped)
        XCTAssertEqual(answer.recovered, true, "\(label): \(answer.joined)")
        // Live messages while carol goes on, then carol stops and the stream drains.
        var live: [[String: Any]] = []
        let liveUntil = EventLoop.monotonicMillis() + 300
        while EventLoop.monotonicMillis() < liveUntil { live.append(try back.nextMessage()) }
        let sentByCarol = carol.stop()
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(back.socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        while let m = try? back.nextMessage() { live.append(m) }

        // Offsets: one run from the drop on, each exactly once, replay then live.
        let all = answer.replay + live
        let positions = all.compactMap(position(of:))
        XCTAssertEqual(positions.count, all.count, label)
        XCTAssertEqual(Set(positions.map(\.epoch)), [dropped.epoch], label)
        assertSame(
            positions.map(\.offset), Array((dropped.offset + 1)...(dropped.offset + Int64(positions.count))),
            "\(label): a gap or a repeat")
        XCTAssertEqual(answer.latest, answer.replay.last.flatMap(position(of:)), "\(label): joined names the last replayed message")
        // Exactly alice's 500, in order, all in the replay; every one of carol's once.
        let missed = answer.replay.compactMap { $0["content"] as? String }.filter { $0.hasPrefix("missed ") }
        assertSame(missed, (0..<500).map { "missed \($0)" }, "\(label): alice's 500, replayed in order")
        let carols = all.compactMap { $0["content"] as? String }.filter { $0.hasPrefix("carol ") }
        assertSame(carols, (0..<sentByCarol).map { "carol \($0)" }, "\(label): carol's, in order, once each")
        XCTAssertGreaterThan(live.count, 0, "\(label): carol kept sending through the rejoin")
        print("recovery \(label): \(answer.replay.count) replayed, \(live.count) live, carol sent \(sentByCarol)")
    }

    func testARejoinGetsExactlyWhatItMissedEmbedded() throws {
        for backend in availableBackends {
            let server = try embedded(backend)
            defer { server.stop() }
            try dropAndRecover(sending: server, receiving: { server }, label: "\(backend) embedded")
        }
    }

    func testARejoinGetsExactlyWhatItMissedAcrossInstances() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()
            let a = try redisInstance(backend, redis), b = try redisInstance(backend, redis)
            defer {
                a.stop()
                b.stop()
            }
            try dropAndRecover(sending: a, receiving: { b }, label: "\(backend) Redis")
        }
    }

    /// The receiving instance stops (SIGTERM's drain) and a new one starts while the 500 are sent:
    /// the history is in Redis, so the new instance recovers the client.
    func testARejoinAfterTheInstanceRestartedRecovers() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()
            let a = try redisInstance(backend, redis)
            var b = try redisInstance(backend, redis)
            defer {
                a.stop()
                b.stop()
            }
            try dropAndRecover(
                sending: a, receiving: { b },
                beforeRejoin: {
                    b.stop()
                    b = try self.redisInstance(backend, redis)
                }, label: "\(backend) Redis, restarted")
        }
    }

    /// While Redis is unreachable, messages still carry an offset and an epoch — this process's
    /// own — so a recovery across the outage answers recovered:false rather than guessing; and a
    /// recovery within the outage, on the same instance, works.
    func testDuringARedisOutageMessagesCarryThisProcesssEpoch() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()
            let server = try redisInstance(backend, redis)
            defer { server.stop() }
            let alice = try server.client("alice", receiveTimeoutMillis: Self.patience)
            let before = try XCTUnwrap(try alice.join("room", since: nil).latest)
            try alice.sendText(#"{"type":"message","channel":"room","content":"in Redis"}"#)
            let shared = try XCTUnwrap(position(of: try alice.nextMessage()))
            XCTAssertEqual(shared.epoch, before.epoch)
            redis.kill()
            let end = EventLoop.monotonicMillis() + 10_000
            while server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 20) }
            try alice.sendText(#"{"type":"message","channel":"room","content":"during the outage"}"#)
            let local = try XCTUnwrap(position(of: try alice.nextMessage()), "\(backend): an offset during the outage too")
            XCTAssertTrue(local.epoch.hasPrefix("local-"), "\(backend): this process's epoch: \(local)")
            XCTAssertNotEqual(local.epoch, shared.epoch)
            let across = try server.client("bob").join("room", since: shared)
            XCTAssertEqual(across.recovered, false, "\(backend): across the outage: not guessed")
            XCTAssertEqual(across.latest, local)
            try alice.sendText(#"{"type":"message","channel":"room","content":"still out"}"#)
            _ = try alice.nextMessage()
            let within = try server.client("carol").join("room", since: local)
            XCTAssertEqual(within.recovered, true, "\(backend): within the outage, on this instance")
            XCTAssertEqual(within.replay.compactMap { $0["content"] as? String }, ["still out"])
        }
    }

    /// Every refusal: a gap beyond HISTORY_SIZE, an epoch not the channel's, history off, and a
    /// message older than HISTORY_TTL. Nothing is replayed then.
    func testRecoveryIsRefusedWhenHistoryCannotCoverTheGap() throws {
        for backend in availableBackends {
            try refusals(backend, redis: nil)
        }
    }

    /// The same refusals with the history in Redis (its read script decides).
    func testRecoveryIsRefusedWhenRedisHistoryCannotCoverTheGap() throws {
        for backend in availableBackends {
            try refusals(backend, redis: try RedisServerProcess())
        }
    }

    private func refusals(_ backend: IOBackendKind, redis: RedisServerProcess?) throws {
        do {
            let small = try embedded(backend) {
                $0.historySize = 10
                $0.historyTTLMillis = 1_500
                $0.redisURL = redis?.url()
            }
            defer { small.stop() }
            if redis != nil {
                let end = EventLoop.monotonicMillis() + 10_000
                while !small.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
            }
            let alice = try small.client("alice")
            let joined = try alice.join("room", since: nil)
            let start = try XCTUnwrap(joined.latest)
            XCTAssertEqual(start.offset, 0)
            for i in 0..<15 { try alice.sendText(#"{"type":"message","channel":"room","content":"m\#(i)"}"#) }
            var lastSeen: StreamPosition?
            for _ in 0..<15 { lastSeen = position(of: try alice.nextMessage()) }
            XCTAssertEqual(lastSeen?.offset, 15)

            func rejoin(_ since: StreamPosition) throws -> JoinAnswer { try small.client("bob").join("room", since: since) }
            let beyond = try rejoin(StreamPosition(offset: 2, epoch: start.epoch))
            XCTAssertEqual(beyond.recovered, false, "\(backend): 13 missed, 10 kept")
            XCTAssertEqual(beyond.replay.count, 0)
            XCTAssertEqual(beyond.latest, lastSeen)
            let within = try rejoin(StreamPosition(offset: 6, epoch: start.epoch))
            XCTAssertEqual(within.recovered, true, "\(backend)")
            XCTAssertEqual(within.replay.compactMap { $0["content"] as? String }, (6..<15).map { "m\($0)" })
            XCTAssertEqual(try rejoin(StreamPosition(offset: 15, epoch: start.epoch)).recovered, true, "\(backend): nothing missed")
            let ahead = try rejoin(StreamPosition(offset: 99, epoch: start.epoch))
            XCTAssertEqual(ahead.recovered, false, "\(backend): an offset the channel never reached")
            let otherEpoch = try rejoin(StreamPosition(offset: 14, epoch: "not-this-one"))
            XCTAssertEqual(otherEpoch.recovered, false, "\(backend): another epoch (a restart)")
            XCTAssertEqual(otherEpoch.replay.count, 0)
            pause(millis: 1_600)
            XCTAssertEqual(try rejoin(StreamPosition(offset: 14, epoch: start.epoch)).recovered, false, "\(backend): past HISTORY_TTL")
            // A join without since: joined without recovered.
            XCTAssertNil(try small.client("carol").join("room", since: nil).joined["recovered"])

            let off = try embedded(backend) {
                $0.historySize = 0
                $0.redisURL = redis?.url()
            }
            defer { off.stop() }
            if redis != nil {
                let end = EventLoop.monotonicMillis() + 10_000
                while !off.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
            }
            let dave = try off.client("dave")
            let plain = try dave.join("room", since: nil)
            XCTAssertNil(plain.joined["offset"], "\(backend): no history, no offset")
            try dave.sendText(#"{"type":"message","channel":"room","content":"no offset"}"#)
            let m = try dave.nextMessage()
            XCTAssertNil(m["offset"])
            XCTAssertNil(m["epoch"])
            let refused = try off.client("erin").join("room", since: StreamPosition(offset: 0, epoch: "any"))
            XCTAssertEqual(refused.recovered, false, "\(backend): history off")
        }
    }

    /// Messages from several loops and senders reach every member with consecutive offsets:
    /// each loop delivers a channel's messages in offset order.
    func testEveryMemberSeesConsecutiveOffsets() throws {
        for backend in availableBackends {
            let server = try embedded(backend, threads: 4)
            defer { server.stop() }
            let readers = try (0..<4).map { try server.client("reader\($0)", receiveTimeoutMillis: Self.patience) }
            for r in readers { _ = try r.join("busy", since: nil) }
            let senders = try (0..<4).map { try server.client("sender\($0)", receiveTimeoutMillis: Self.patience) }
            for s in senders { _ = try s.join("busy", since: nil) }
            let steady = senders.enumerated().map { SteadySender($1, channel: "busy", prefix: "s\($0) ", everyMillis: 1) }
            pause(millis: 1_000)
            let sent = steady.map { $0.stop() }.reduce(0, +)
            for (i, reader) in readers.enumerated() {
                var offsets: [Int64] = []
                while offsets.count < sent { offsets.append(try XCTUnwrap(position(of: try reader.nextMessage())).offset) }
                assertSame(offsets, Array(1...Int64(sent)), "\(backend) reader \(i): out of order, a gap or a repeat")
            }
        }
    }
}
