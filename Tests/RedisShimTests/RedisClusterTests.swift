import RedisShim
import RedisTestSupport
import XCTest

/// RedisCluster against a real 3-master cluster on loopback (RedisClusterProcess), driven by PollHost.
final class RedisClusterTests: XCTestCase {
    func testCommandsAreRoutedToTheOwnerOfEachKeysSlot() throws {
        let process = try RedisClusterProcess(redisCLICreate: true)  // the other tests join the nodes faster by hand
        let host = PollHost()
        let cluster = try host.cluster(process, seed: 1)
        XCTAssertEqual(Set(cluster.masters), Set((0..<3).map { process.address($0) }))
        XCTAssertEqual(cluster.slotMap.coveredSlots, 16384)
        let owners = process.slotOwners()
        XCTAssertEqual(process.slotRanges(), [0...5460, 5461...10922, 10923...16383], "redis-cli's layout")
        for slot in stride(from: 0, to: 16384, by: 97) {
            XCTAssertEqual(cluster.slotMap.owner(ofSlot: slot), owners[slot].map { process.address($0) }, "slot \(slot)")
        }

        // One key per node: each lands on its owner directly, without a redirect.
        let keys = process.names(onEachNode: "user:")
        for (node, key) in keys.enumerated() {
            XCTAssertEqual(host.call(cluster, key: key, "SET", key, "v-\(node)"), .success(.simple("OK")))
            XCTAssertEqual(host.call(cluster, key: key, "GET", key), bulk("v-\(node)"))
            XCTAssertEqual(process.nodes[node].redisCLI("GET", key), "v-\(node)", "stored on its owner")
            XCTAssertEqual(cluster.endpoint(forKey: key)?.port, Int(process.nodes[node].port))
        }
        XCTAssertEqual(cluster.clusterStats.moved, 0)
        XCTAssertEqual(cluster.clusterStats.asked, 0)
        XCTAssertEqual(host.call(cluster, key: nil, "PING"), .success(.simple("PONG")))

        // The client's slot function agrees with the server's for plain, tagged and odd keys.
        var names = (0..<300).map { "presence:{room-\($0)}:members" }
        names += ["{}x", "a{}{b}", "{{x}}", "}{", "x{y", "😀{é}", ""] + (0..<100).map { "k\($0 * 7919)" }
        var serverSlots: [Int: Int64] = [:]
        for (i, name) in names.enumerated() {
            cluster.send(RedisCommand("CLUSTER", "KEYSLOT", name), routingKey: nil) { serverSlots[i] = (try? $0.get())?.int ?? -1 }
        }
        XCTAssertTrue(host.run(until: { serverSlots.count == names.count }))
        for (i, name) in names.enumerated() { XCTAssertEqual(Int64(RedisCluster.keySlot(name)), serverSlots[i], name) }

        // A script on two keys with the same hash tag runs on their node; NOSCRIPT falls back once.
        let script = RedisScript(
            """
            redis.call('SET', KEYS[1], ARGV[1]); redis.call('SADD', KEYS[2], ARGV[2])
            return {redis.call('GET', KEYS[1]), redis.call('SCARD', KEYS[2])}
            """)
        let scriptKeys = ["presence:{family}:last", "presence:{family}:members"]
        XCTAssertEqual(
            host.eval(cluster, script, keys: scriptKeys, args: ["hello", "alice"]),
            .success(.array([.bulk(Array("hello".utf8)), .integer(1)])))
        XCTAssertEqual(
            host.eval(cluster, script, keys: scriptKeys, args: ["again", "bob"]),
            .success(.array([.bulk(Array("again".utf8)), .integer(2)])))
        XCTAssertEqual(cluster.clusterStats.scriptFallbacks, 1)
        let familyNode = try XCTUnwrap(owners[RedisCluster.keySlot("family")])
        XCTAssertEqual(process.nodes[familyNode].redisCLI("SCARD", "presence:{family}:members"), "2")
        // Keys of different slots are the server's error, passed through.
        guard case .failure(.server(let crossSlot))? = host.eval(cluster, script, keys: ["{a}x", "{b}y"], args: ["1", "2"]) else {
            return XCTFail("CROSSSLOT expected")
        }
        XCTAssertTrue(crossSlot.hasPrefix("CROSSSLOT"), crossSlot)

        XCTAssertGreaterThan(cluster.stats.replies, 400)
        XCTAssertEqual(cluster.clusterStats.moved, 0)
        cluster.shutdown()
        XCTAssertFalse(cluster.isReady)
        let rejected = cluster.stats.rejected
        XCTAssertEqual(host.call(cluster, key: keys[0], "GET", keys[0]), .failure(.notConnected))
        XCTAssertEqual(cluster.stats.rejected, rejected + 1)
    }

    func testMovedAndAskFollowASlotMigration() throws {
        let process = try RedisClusterProcess()
        let host = PollHost()
        let cluster = try host.cluster(process)
        let strict = try host.cluster(process, maxRedirects: 0)
        let a = "{moving}:a", b = "{moving}:b"
        let slot = RedisCluster.keySlot(a)
        let source = try XCTUnwrap(process.owner(ofSlot: slot))
        let target = (source + 1) % 3
        let c = "{moving}:c"
        XCTAssertEqual(host.call(cluster, key: a, "SET", a, "1"), .success(.simple("OK")))
        XCTAssertEqual(host.call(cluster, key: c, "SET", c, "3"), .success(.simple("OK")))

        // Migrating: a has moved to the target, the slot is still the source's → ASK.
        try process.beginMigration(slot: slot, to: target)
        try process.migrateKeys(slot: slot, to: target, keys: [a])
        XCTAssertEqual(host.call(cluster, key: a, "GET", a), bulk("1"))
        XCTAssertEqual(cluster.clusterStats.asked, 1)
        XCTAssertEqual(host.call(cluster, key: b, "SET", b, "2"), .success(.simple("OK")), "a new key goes to the importing node")
        XCTAssertEqual(cluster.clusterStats.asked, 2)
        XCTAssertEqual(process.nodes[target].redisCLI("CLUSTER", "COUNTKEYSINSLOT", String(slot)), "2")
        XCTAssertEqual(cluster.slotMap.owner(ofSlot: slot), process.address(source), "ASK does not change the map")
        XCTAssertEqual(cluster.clusterStats.moved, 0)

        // Keys split between the two nodes: TRYAGAIN, retried after a pause; once c has moved
        // too, the retry is sent to the target with ASKING.
        var both: Result<RedisValue, RedisError>?
        cluster.send(RedisCommand("MGET", a, c), routingKey: a) { both = $0 }
        XCTAssertTrue(host.run(until: { cluster.clusterStats.retried == 1 }))
        XCTAssertNil(both)
        try process.migrateKeys(slot: slot, to: target, keys: [c])
        XCTAssertTrue(host.run(until: { both != nil }))
        XCTAssertEqual(both, .success(.array([.bulk(Array("1".utf8)), .bulk(Array("3".utf8))])))
        XCTAssertEqual(cluster.clusterStats.retried, 1)
        XCTAssertEqual(cluster.clusterStats.asked, 3)

        // Done: the slot is the target's → MOVED, the map learns it, the command is retried there.
        try process.finishMigration(slot: slot, to: target)
        let refreshes = cluster.clusterStats.slotRefreshes
        XCTAssertEqual(host.call(cluster, key: a, "GET", a), bulk("1"))
        XCTAssertEqual(cluster.clusterStats.moved, 1)
        XCTAssertEqual(cluster.slotMap.owner(ofSlot: slot), process.address(target))
        XCTAssertTrue(host.run(until: { cluster.clusterStats.slotRefreshes > refreshes }), "refreshed in the background")
        host.run(forMillis: 50)
        XCTAssertEqual(cluster.slotMap.owner(ofSlot: slot), process.address(target))
        let script = RedisScript("return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])")
        XCTAssertEqual(host.eval(cluster, script, keys: [a, b], args: []), bulk("12"))
        XCTAssertEqual(cluster.clusterStats.moved, 1, "no redirect once the map is right")
        XCTAssertTrue(cluster.isReady)

        // Without a redirect budget the server's MOVED is the result.
        guard case .failure(.server(let moved))? = host.call(strict, key: a, "GET", a) else { return XCTFail("MOVED expected") }
        XCTAssertEqual(moved, "MOVED \(slot) 127.0.0.1:\(process.nodes[target].port)")
        XCTAssertEqual(strict.clusterStats.redirectLimit, 1)
    }

    func testANodeThatLosesAllItsSlotsIsDropped() throws {
        let process = try RedisClusterProcess()
        let host = PollHost()
        let cluster = try host.cluster(process)
        let subscriber = RedisClusterSubscriber(cluster: cluster, options: fastRetry)
        var messages: [String] = []
        subscriber.onMessage = { messages.append($0 + "=" + String(decoding: $1, as: UTF8.self)) }
        let channels = process.names(onEachNode: "room-")
        subscriber.subscribe(channels[0])
        subscriber.start()
        XCTAssertTrue(host.run(until: { subscriber.isReady && process.shardSubscribers(channels[0], node: 0) == 1 }))
        XCTAssertEqual(clients(process, node: 2), 2, "the cluster's and the subscriber's connections")

        // Hand every (empty) slot of node 2 to node 0: node 2 lets go first, then the others agree.
        let owners = process.slotOwners()
        XCTAssertEqual(process.slotRanges(), [0...5460, 5461...10922, 10923...16383], "joined by hand, same layout")
        let slots = owners.indices.filter { owners[$0] == 2 }
        let key = process.names(onEachNode: "key-")[2]
        let admin = try (0..<3).map { try host.connect(process.url(node: $0), options: RedisOptions(clientName: "admin")) }
        let id0 = process.nodeID(0)
        for order in [[2], [0, 1]] {
            var replies = 0, failures: [RedisError] = []
            for node in order {
                for slot in slots {
                    admin[node].send(RedisCommand("CLUSTER", "SETSLOT", String(slot), "NODE", id0)) {
                        if case .failure(let e) = $0 { failures.append(e) }
                        replies += 1
                    }
                }
            }
            XCTAssertTrue(host.run(until: { replies == slots.count * order.count }))
            XCTAssertEqual(failures, [])
        }
        XCTAssertTrue(process.waitUntilOK())
        XCTAssertEqual(process.owner(ofSlot: RedisCluster.keySlot(key)), 0)
        XCTAssertEqual(cluster.slotMap.owner(ofKey: key), process.address(2), "the client does not know yet")

        // The next command on one of those slots is MOVED; the refresh drops node 2.
        XCTAssertEqual(host.call(cluster, key: key, "SET", key, "y"), .success(.simple("OK")))
        XCTAssertEqual(cluster.clusterStats.moved, 1)
        XCTAssertTrue(host.run(until: { !cluster.connectedNodes.contains(process.address(2)) }))
        XCTAssertEqual(Set(cluster.masters), [process.address(0), process.address(1)])
        XCTAssertTrue(cluster.isReady)
        XCTAssertEqual(process.nodes[0].redisCLI("GET", key), "y")

        // The subscriber let go of node 2 too, and subscribes its former channels on node 0.
        XCTAssertTrue(host.run(until: { clients(process, node: 2) == 0 }), "both connections to node 2 closed")
        subscriber.subscribe(channels[2])
        XCTAssertTrue(host.run(until: { process.shardSubscribers(channels[2], node: 0) == 1 }))
        XCTAssertEqual(subscriber.node(ofChannel: channels[2]), process.address(0))
        XCTAssertEqual(process.redisCLI("SPUBLISH", channels[2], "moved"), "1")
        XCTAssertTrue(host.run(until: { messages == [channels[2] + "=moved"] }), "\(messages)")
        XCTAssertTrue(subscriber.isReady)
    }

    /// Clients named `presenced` connected to node `index`.
    private func clients(_ process: RedisClusterProcess, node index: Int) -> Int {
        process.nodes[index].redisCLI("CLIENT", "LIST").split(separator: "\n").filter { $0.contains(" name=presenced ") }.count
    }

    func testDetectTellsAClusterFromASingleNode() throws {
        let process = try RedisClusterProcess()
        let single = try RedisServerProcess()
        let host = PollHost()
        var results: [Int: Result<RedisServerInfo, RedisError>] = [:]
        RedisCluster.detect(endpoint: try RedisEndpoint.parse(process.url(node: 2)), host: host) { results[0] = $0 }
        RedisCluster.detect(endpoint: try RedisEndpoint.parse(single.url(database: 3)), host: host) { results[1] = $0 }
        let closed = try RedisServerProcess()
        closed.kill()
        RedisCluster.detect(endpoint: try RedisEndpoint.parse(closed.url()), host: host) { results[2] = $0 }
        XCTAssertTrue(host.run(until: { results.count == 3 }))
        let cluster = try XCTUnwrap(try? results[0]?.get())
        XCTAssertTrue(cluster.isCluster)
        XCTAssertTrue(cluster.supportsShardedPubSub)
        XCTAssertTrue(cluster.version.hasPrefix("7."), cluster.version)
        let plain = try XCTUnwrap(try? results[1]?.get())
        XCTAssertFalse(plain.isCluster)
        guard case .failure(.connectionLost)? = results[2] else { return XCTFail("\(String(describing: results[2]))") }
        host.run(forMillis: 50)
        XCTAssertEqual(single.redisCLI("CLIENT", "LIST").split(separator: "\n").count, 1, "detect closed its connection")

        // A cluster client seeded with a single node reports why it cannot start.
        let wrong = RedisCluster(seed: try RedisEndpoint.parse(single.url()), host: host, options: fastRetry)
        var downs: [RedisError] = []
        wrong.onDown = { downs.append($0) }
        wrong.start()
        XCTAssertTrue(host.run(until: { !downs.isEmpty }))
        guard case .server(let message) = downs[0] else { return XCTFail("\(downs)") }
        XCTAssertTrue(message.contains("cluster support disabled"), message)
        XCTAssertFalse(wrong.isReady)
        wrong.shutdown()
    }

    func testSingleNodeThroughTheSameProtocols() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let commanding: RedisCommanding = RedisConnection(endpoint: try RedisEndpoint.parse(server.url()), host: host)
        let subscribing: RedisSubscribing = RedisSubscriber(
            endpoint: try RedisEndpoint.parse(server.url()), host: host,
            sharded: true)
        var readies = 0
        var messages: [String] = []
        commanding.onReady = { readies += 1 }
        subscribing.onMessage = { messages.append($0 + "=" + String(decoding: $1, as: UTF8.self)) }
        subscribing.subscribe("presence:{family}")
        commanding.start()
        subscribing.start()
        XCTAssertTrue(host.run(until: { commanding.isReady && subscribing.isReady && readies == 1 }))
        XCTAssertEqual(host.call(commanding, key: "ignored", "SET", "k", "v"), .success(.simple("OK")))
        XCTAssertEqual(host.eval(commanding, RedisScript("return redis.call('GET', KEYS[1])"), keys: ["k"], args: []), bulk("v"))
        XCTAssertTrue(host.run(until: { server.subscribers("presence:{family}", sharded: true) == 1 }))
        XCTAssertEqual(host.call(commanding, key: "presence:{family}", "SPUBLISH", "presence:{family}", "hi"), .success(.integer(1)))
        XCTAssertTrue(host.run(until: { messages == ["presence:{family}=hi"] }))
        commanding.shutdown()
        subscribing.shutdown()
        XCTAssertFalse(commanding.isReady)
    }
}
