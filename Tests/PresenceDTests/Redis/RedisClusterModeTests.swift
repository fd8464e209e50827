import XCTest
import WSCore
import RedisShim
import RedisTestSupport
@testable import PresenceD

/// Two instances on a 3-master Redis Cluster (loopback): presence and fan-out cross instances on
/// channels whose slots live on different masters; single-use tokens hold across instances.
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
        defer { a.stop(); b.stop() }

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
            _ = try bob.nextJSON() // bob's own copy
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
    }
}
