import RedisShim
import RedisTestSupport
import XCTest

/// Sharded pub/sub across a real 3-master cluster: RedisClusterSubscriber, driven by PollHost.
final class RedisClusterSubscriberTests: XCTestCase {
    /// Delivered messages as `channel=payload`.
    private final class Inbox {
        var messages: [String] = []
        func count(_ channel: String, _ payload: String) -> Int { messages.filter { $0 == channel + "=" + payload }.count }
    }

    private func subscriber(_ cluster: RedisCluster, into inbox: Inbox) -> RedisClusterSubscriber {
        let subscriber = RedisClusterSubscriber(cluster: cluster, options: fastRetry)
        subscriber.onMessage = { inbox.messages.append($0 + "=" + String(decoding: $1, as: UTF8.self)) }
        return subscriber
    }

    func testChannelsOnEveryNodeAndASlotMove() throws {
        let process = try RedisClusterProcess()
        let host = PollHost()
        let cluster = try host.cluster(process)
        let inbox = Inbox()
        let subscriber = subscriber(cluster, into: inbox)
        var errors: [RedisError] = []
        subscriber.onError = { errors.append($0) }
        // Two channels per node, several slots per node: re-subscription must not mix slots (CROSSSLOT).
        let channels = process.names(onEachNode: "room-") + process.names(onEachNode: "events-")
        for channel in channels { subscriber.subscribe(channel) }
        subscriber.subscribe(channels[0])  // idempotent
        subscriber.start()
        XCTAssertTrue(
            host.run(until: {
                subscriber.isReady && (0..<6).allSatisfy { process.shardSubscribers(channels[$0], node: $0 % 3) == 1 }
            }))
        for (i, channel) in channels.enumerated() {
            XCTAssertEqual(subscriber.node(ofChannel: channel), process.address(i % 3))
            XCTAssertEqual(process.shardSubscribers(channel, node: (i + 1) % 3), 0)
        }

        // SPUBLISH from redis-cli (following MOVED) and through the cluster client.
        for channel in channels { XCTAssertEqual(process.redisCLI("SPUBLISH", channel, "cli"), "1") }
        XCTAssertEqual(host.call(cluster, key: channels[4], "SPUBLISH", channels[4], "client"), .success(.integer(1)))
        XCTAssertEqual(process.redisCLI("SPUBLISH", "nobody-listens", "x"), "0")
        XCTAssertTrue(host.run(until: { inbox.messages.count == 7 }), "\(inbox.messages)")
        XCTAssertEqual(Set(inbox.messages), Set(channels.map { $0 + "=cli" } + [channels[4] + "=client"]))

        // Move the slot of channel 0 from node 0 to node 1: node 0 pushes sunsubscribe, the
        // subscriber re-subscribes on node 1.
        let slot = RedisCluster.keySlot(channels[0])
        try process.moveSlot(slot, to: 1)
        XCTAssertTrue(host.run(until: { process.shardSubscribers(channels[0], node: 1) == 1 }), "re-subscribed at the new owner")
        XCTAssertEqual(subscriber.node(ofChannel: channels[0]), process.address(1))
        XCTAssertEqual(cluster.slotMap.owner(ofSlot: slot), process.address(1), "the map was refreshed")
        XCTAssertEqual(process.shardSubscribers(channels[3], node: 0), 1, "other channels of node 0 stay")
        XCTAssertEqual(process.redisCLI("SPUBLISH", channels[0], "after-move"), "1")
        XCTAssertTrue(host.run(until: { inbox.count(channels[0], "after-move") == 1 }), "\(inbox.messages)")
        XCTAssertEqual(errors, [])

        // Unsubscribe reaches the owning node; nothing more is delivered for it.
        subscriber.unsubscribe(channels[1])
        XCTAssertNil(subscriber.node(ofChannel: channels[1]))
        XCTAssertTrue(host.run(until: { process.shardSubscribers(channels[1], node: 1) == 0 }))
        XCTAssertEqual(process.redisCLI("SPUBLISH", channels[1], "gone"), "0")
        XCTAssertEqual(process.redisCLI("SPUBLISH", channels[2], "still"), "1")
        XCTAssertTrue(host.run(until: { inbox.count(channels[2], "still") == 1 }))
        XCTAssertEqual(inbox.count(channels[1], "gone"), 0)
        XCTAssertTrue(subscriber.isReady)

        // whenSubscribed asks the channel's node: after `true` a publish there reaches us at once.
        for channel in process.names(onEachNode: "late-") {
            subscriber.subscribe(channel)
            var answer: Bool?
            subscriber.whenSubscribed(channel) { answer = $0 }
            XCTAssertTrue(host.run(until: { answer != nil }))
            XCTAssertEqual(answer, true, channel)
            XCTAssertEqual(host.call(cluster, key: channel, "SPUBLISH", channel, "late"), .success(.integer(1)), channel)
            XCTAssertTrue(host.run(until: { inbox.count(channel, "late") == 1 }), channel)
        }
        var unknown: Bool?
        subscriber.whenSubscribed("never-subscribed") { unknown = $0 }
        XCTAssertEqual(unknown, false)

        subscriber.shutdown()
        XCTAssertTrue(host.run(until: { process.shardSubscribers(channels[2], node: 2) == 0 }))
        XCTAssertTrue(cluster.isReady, "a shared cluster keeps running")
    }

    func testSubscriberAndCommandsSurviveANodeRestart() throws {
        let process = try RedisClusterProcess()
        let host = PollHost()
        let cluster = try host.cluster(process)
        var clusterReadies = 0, clusterDowns = 0
        cluster.onReady = { clusterReadies += 1 }
        cluster.onDown = { _ in clusterDowns += 1 }
        let inbox = Inbox()
        // Its own RedisCluster for the slot map, seeded from another node.
        let subscriber = RedisClusterSubscriber(
            endpoint: try RedisEndpoint.parse(process.url(node: 2)), host: host,
            options: fastRetry)
        subscriber.onMessage = { inbox.messages.append($0 + "=" + String(decoding: $1, as: UTF8.self)) }
        var readies = 0, downs = 0
        subscriber.onReady = { readies += 1 }
        subscriber.onDown = { _ in downs += 1 }
        let channels = process.names(onEachNode: "fam-")
        for channel in channels { subscriber.subscribe(channel) }
        subscriber.start()
        XCTAssertTrue(host.run(until: { readies == 1 && (0..<3).allSatisfy { process.shardSubscribers(channels[$0], node: $0) == 1 } }))
        let keys = process.names(onEachNode: "k-")
        XCTAssertEqual(host.call(cluster, key: keys[1], "SET", keys[1], "before"), .success(.simple("OK")))

        // Node 1 restarts on its port with its nodes.conf: same id and slots, no data, no subscribers.
        try process.restart(1)
        XCTAssertEqual(process.shardSubscribers(channels[1], node: 1), 0)
        XCTAssertTrue(host.run(until: { downs > 0 && clusterDowns > 0 }), "both noticed: \(downs) \(clusterDowns)")
        XCTAssertTrue(
            host.run(
                until: { process.shardSubscribers(channels[1], node: 1) == 1 && subscriber.isReady },
                timeoutMillis: 5000), "re-subscribed on the restarted node")
        XCTAssertEqual(readies, 2)
        // Messages arrive again within a few seconds (publishing while the node finishes rejoining).
        var published = 0
        XCTAssertTrue(
            host.run(
                until: {
                    if inbox.count(channels[1], "back") > 0 { return true }
                    if process.redisCLI("SPUBLISH", channels[1], "back") == "1" { published += 1 }
                    return false
                }, timeoutMillis: 8000), "\(inbox.messages)")
        XCTAssertEqual(process.redisCLI("SPUBLISH", channels[0], "other"), "1")
        XCTAssertTrue(host.run(until: { inbox.count(channels[0], "other") == 1 }))

        // Commands on the restarted node's slots work again once the cluster accepts writes.
        XCTAssertTrue(host.run(until: { cluster.isReady }), "reconnected")
        XCTAssertEqual(clusterReadies, 1, "ready again once")
        var stored: Result<RedisValue, RedisError>?
        XCTAssertTrue(
            host.run(
                until: {
                    if case .success? = stored { return true }
                    stored = host.call(cluster, key: keys[1], "SET", keys[1], "after")  // CLUSTERDOWN for ~2 s after a restart
                    return false
                }, timeoutMillis: 8000), "\(String(describing: stored))")
        XCTAssertEqual(host.call(cluster, key: keys[1], "GET", keys[1]), bulk("after"))
        XCTAssertEqual(process.nodes[1].redisCLI("GET", keys[1]), "after")
        XCTAssertEqual(inbox.messages.filter { $0.hasPrefix(channels[2]) }, [], "nothing spurious")
        subscriber.shutdown()
        XCTAssertTrue(
            host.run(until: { process.shardSubscribers(channels[0], node: 0) == 0 }),
            process.nodes[0].redisCLI("CLIENT", "LIST"))
    }
}
