import Foundation
import RedisShim
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Two instances on a 3-master Redis Cluster (loopback): presence and fan-out cross instances on
/// channels whose slots live on different masters; single-use tokens hold across instances; user
/// presence answers across the masters.
final class RedisClusterModeTests: XCTestCase {
    /// Receive timeout of the clients: generous, Redis round trips on a loaded CI machine.
    static let patience = 15_000

    func testPresenceAndFanOutAcrossInstancesOnACluster() throws {
        let cluster = try RedisClusterProcess()
        defer { cluster.stop() }
        let backend = availableBackends[0]
        func instance(seed: Int) throws -> TestServer {
            let server = try TestServer(backend: backend, threads: 2, echo: false) { config in
                config.redisURL = cluster.url(node: seed)
                config.presenceGraceMillis = 200
                config.serverAPIToken = "server-api-token-for-cluster-test"
            }
            let end = EventLoop.monotonicMillis() + 15_000
            while !server.hub!.redisReady {
                guard EventLoop.monotonicMillis() < end else {
                    server.stop()
                    XCTFail("instance on the cluster never became ready")
                    throw SystemError(call: "cluster ready", errno: 0)
                }
                pause(millis: 20)
            }
            return server
        }
        let a = try instance(seed: 0), b = try instance(seed: 1)
        defer {
            a.stop()
            b.stop()
        }

        // Channels whose `{tag}` slots are spread over the masters.
        let channels = ["family", "kitchen", "garden", "garage", "attic"]
        let slots = Set(channels.map { RedisCluster.keySlot("presence:{\($0)}:conns") / 5462 })
        XCTAssertGreaterThan(slots.count, 1, "the test channels should cover more than one master")

        let alice = try a.client("alice", receiveTimeoutMillis: Self.patience)
        let bob = try b.client("bob", receiveTimeoutMillis: Self.patience)
        for channel in channels {
            try alice.join(channel, expecting: ["alice"])
            try bob.join(channel, expecting: ["alice", "bob"])
            try alice.expectPresence("bob", true, channel)
        }
        for channel in channels {
            try bob.sendText(#"{"type":"message","channel":"\#(channel)","content":"to \#(channel)"}"#)
            let m = try alice.nextJSON()
            XCTAssertEqual(m["channel"] as? String, channel, "\(m)")
            XCTAssertEqual(m["content"] as? String, "to \(channel)", "\(m)")
            _ = try bob.nextJSON()  // bob's own copy
        }

        // A token used on A is refused on B.
        let token = a.token("erin")
        _ = try TestWebSocket(port: a.port, path: "/ws?token=" + token, receiveTimeoutMillis: Self.patience)
        XCTAssertThrowsError(try TestWebSocket(port: b.port, path: "/ws?token=" + token, receiveTimeoutMillis: Self.patience))

        // bob goes: alice hears it in every channel, once each.
        bob.disconnect()
        var offline = Set<String>()
        for _ in channels {
            let m = try alice.nextJSON()
            XCTAssertEqual(m["type"] as? String, "presence", "\(m)")
            XCTAssertEqual(m["online"] as? Bool, false, "\(m)")
            offline.insert(m["channel"] as? String ?? "?")
        }
        XCTAssertEqual(offline, Set(channels))
        alice.expectSilence(millis: 500)

        // User presence: one script per bucket, the buckets' slots on several masters.
        let users = ["alice", "bob"] + (1...8).map { "u\($0)" }
        let masters = Set(users.map { RedisCluster.keySlot(PresenceScripts.userKeys(bucket: UserPresence.redisBucket(of: $0))[0]) / 5462 })
        XCTAssertGreaterThan(masters.count, 1, "the users' buckets should cover more than one master")
        let (head, body) = try ServerProbe.get(
            b.port, "/api/v1/presence?user=" + users.joined(separator: ","),
            bearer: "server-api-token-for-cluster-test")
        XCTAssertEqual(head.status, 200, body)
        let list = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(list.map { $0["user_id"] as? String ?? "?" }, users, body)
        XCTAssertEqual(list.map { $0["online"] as? Bool ?? false }, [true] + Array(repeating: false, count: users.count - 1), body)
        XCTAssertNotNil(list.count > 1 ? list[1]["last_seen"] as? String : nil, "bob's last_seen: \(body)")
    }
}
