import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Presence details (docs/protocol.md, "Presence") over real sockets on every backend, in embedded
/// mode and in Redis mode with two instances: `name` in snapshots, announcements and
/// `GET /api/v1/presence?channel=`, `last_seen` (the leave time, not the end of the grace period)
/// on `online:false`, the same for every instance, and the frames' key order.
final class PresenceDetailsTests: XCTestCase {
    /// Long enough to tell the leave time from the end of the grace period.
    static let grace: Int64 = 1_500

    func testFrameKeyOrder() {
        func text(_ frame: SharedBytes) -> String {
            let bytes = frame.withBytes { Array($0) }
            XCTAssertLessThan(bytes.count, 126 + 2)
            return String(decoding: bytes.dropFirst(2), as: UTF8.self)  // short frames: a 2-byte header
        }
        XCTAssertEqual(
            text(ServerMessage.presence(userID: "a", name: "Al \"A\"", online: true, channel: "c")),
            #"{"type":"presence","user_id":"a","name":"Al \"A\"","online":true,"channel":"c"}"#)
        XCTAssertEqual(
            text(ServerMessage.presence(userID: "a", name: "Al", online: false, channel: "c", lastSeen: "2026-12-05T10:00:00.123Z")),
            #"{"type":"presence","user_id":"a","name":"Al","online":false,"channel":"c","last_seen":"2026-12-05T10:00:00.123Z"}"#)
        XCTAssertEqual(
            text(ServerMessage.presence(userID: "a", online: false, channel: "c", lastSeen: "2026-12-05T10:00:00.123Z")),
            #"{"type":"presence","user_id":"a","online":false,"channel":"c","last_seen":"2026-12-05T10:00:00.123Z"}"#)
        XCTAssertEqual(
            text(ServerMessage.presence(userID: "a", online: true, channel: "c")),
            #"{"type":"presence","user_id":"a","online":true,"channel":"c"}"#)
    }

    func testNamesAndLastSeenEmbedded() throws {
        for backend in availableBackends {
            let server = try PresenceDetails.instance(backend, redis: nil, grace: Self.grace)
            defer { server.stop() }
            try namesAndLastSeen(a: server, b: server, "\(backend) embedded")
        }
    }

    func testNamesAndLastSeenAcrossRedisInstances() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()  // fresh: nothing left by the previous backend's run
            let a = try PresenceDetails.instance(backend, redis: redis, grace: Self.grace)
            let b = try PresenceDetails.instance(backend, redis: redis, grace: Self.grace)
            defer {
                a.stop()
                b.stop()
            }
            try namesAndLastSeen(a: a, b: b, "\(backend) Redis")
        }
    }

    /// alice (named, on `a`), bob (no name, on `b`) and carol (named, on `b`) in "room".
    private func namesAndLastSeen(a: TestServer, b: TestServer, _ label: String) throws {
        let alice = try PresenceDetails.client(a.port, "alice", name: "Alice A.")
        XCTAssertEqual(
            try alice.joinSnapshot("room", count: 1),
            ["alice": #"{"type":"presence","user_id":"alice","name":"Alice A.","online":true,"channel":"room"}"#], label)

        let bob = try PresenceDetails.client(b.port, "bob")
        XCTAssertEqual(
            try bob.joinSnapshot("room", count: 2),
            [
                "alice": #"{"type":"presence","user_id":"alice","name":"Alice A.","online":true,"channel":"room"}"#,
                "bob": #"{"type":"presence","user_id":"bob","online":true,"channel":"room"}"#,
            ], label)
        XCTAssertEqual(try alice.nextPresenceText(), #"{"type":"presence","user_id":"bob","online":true,"channel":"room"}"#, label)

        let carol = try PresenceDetails.client(b.port, "carol", name: "Carol \"Cé\" ✓")
        let carolOnline = #"{"type":"presence","user_id":"carol","name":"Carol \"Cé\" ✓","online":true,"channel":"room"}"#
        XCTAssertEqual(try carol.joinSnapshot("room", count: 3)["carol"], carolOnline, label)
        XCTAssertEqual(try alice.nextPresenceText(), carolOnline, label)
        XCTAssertEqual(try bob.nextPresenceText(), carolOnline, label)

        // The REST view, from either instance: names where known.
        for server in [a, b] {
            let (head, body) = try ServerProbe.get(server.port, "/api/v1/presence?channel=room", bearer: server.token("reader"))
            XCTAssertEqual(head.status, 200, "\(label): \(body)")
            let list = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] ?? []
            let names = Dictionary(uniqueKeysWithValues: list.map { ($0["user_id"] as? String ?? "?", $0["name"] as? String ?? "-") })
            XCTAssertEqual(names, ["alice": "Alice A.", "bob": "-", "carol": "Carol \"Cé\" ✓"], "\(label): \(body)")
            XCTAssertTrue(body.contains(#"{"user_id":"alice","name":"Alice A.","online":true,"channel":"room","connections":1}"#), body)
        }

        // carol's tab closes: after the grace period alice and bob hear it, with her name and the
        // time she left (not the end of the grace period), the same value on both instances.
        let closedAt = UnixTime.nowMillis()
        carol.disconnect()
        let prefix = #"{"type":"presence","user_id":"carol","name":"Carol \"Cé\" ✓","online":false,"channel":"room","last_seen":""#
        let heardByAlice = try alice.nextPresenceText(), heardByBob = try bob.nextPresenceText()
        let heardAt = UnixTime.nowMillis()
        XCTAssertEqual(heardByAlice, heardByBob, "\(label): one last_seen for everyone")
        XCTAssertTrue(heardByAlice.hasPrefix(prefix) && heardByAlice.hasSuffix(#""}"#), "\(label): \(heardByAlice)")
        let lastSeen = PresenceDetails.millis(iso8601: String(heardByAlice.dropFirst(prefix.count).dropLast(2)))
        XCTAssertNotNil(lastSeen, heardByAlice)
        if let lastSeen {
            XCTAssertLessThanOrEqual(abs(lastSeen - closedAt), 1_000, "\(label): last_seen \(lastSeen) vs close \(closedAt)")
            XCTAssertGreaterThanOrEqual(heardAt - lastSeen, Self.grace - 300, "\(label): announced after the grace period")
        }

        // bob (no name) leaves the channel: no name in his offline frame, a last_seen still.
        let leftAt = UnixTime.nowMillis()
        try bob.sendText(#"{"type":"leave","channel":"room"}"#)
        let bobOffline = try alice.nextPresenceText()
        let bobPrefix = #"{"type":"presence","user_id":"bob","online":false,"channel":"room","last_seen":""#
        XCTAssertTrue(bobOffline.hasPrefix(bobPrefix), "\(label): \(bobOffline)")
        let bobSeen = PresenceDetails.millis(iso8601: String(bobOffline.dropFirst(bobPrefix.count).dropLast(2)))
        XCTAssertLessThanOrEqual(abs((bobSeen ?? 0) - leftAt), 1_000, "\(label): \(bobOffline)")
        alice.expectSilence(millis: 300)
    }

    /// A name comes from the connection's own token: a second tab without one keeps the name the
    /// first gave; a joiner's re-join confirmation carries it too.
    func testASecondTabWithoutANameKeepsTheName() throws {
        for backend in availableBackends {
            let server = try PresenceDetails.instance(backend, redis: nil, grace: 300)
            defer { server.stop() }
            let first = try PresenceDetails.client(server.port, "dora", name: "Dora")
            _ = try first.joinSnapshot("room", count: 1)
            try first.sendText(#"{"type":"join","channel":"room"}"#)
            XCTAssertEqual(
                try first.nextPresenceText(), #"{"type":"presence","user_id":"dora","name":"Dora","online":true,"channel":"room"}"#)
            let second = try PresenceDetails.client(server.port, "dora")
            XCTAssertEqual(
                try second.joinSnapshot("room", count: 1)["dora"],
                #"{"type":"presence","user_id":"dora","name":"Dora","online":true,"channel":"room"}"#, "\(backend)")
        }
    }
}
