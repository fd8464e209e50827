import RedisShim
import XCTest

/// Hash slots, slot-map parsing and INFO parsing: no server.
final class RedisKeySlotTests: XCTestCase {
    func testKnownSlotsMatchClusterKeyslot() {
        // Values from `redis-cli CLUSTER KEYSLOT` on Redis 7.0.15.
        let known: [(String, Int)] = [
            ("foo", 12182), ("bar", 5061), ("hello", 866), ("a", 15495), ("", 0),
            ("123456789", 12739),  // the CRC16-XMODEM check value 0x31C3
            ("user1000", 3443), ("{user1000}.following", 3443), ("{user1000}.followers", 3443),
            ("presence:{family}:members", 9507),
        ]
        for (key, slot) in known {
            XCTAssertEqual(RedisCluster.keySlot(key), slot, key)
            XCTAssertEqual(RedisCluster.keySlot(Array(key.utf8)), slot, key)
        }
        var check = Array("123456789".utf8)
        XCTAssertEqual(check.withUnsafeMutableBytes { RedisCluster.crc16(UnsafeRawBufferPointer($0)) }, 0x31C3)
    }

    func testHashTagRules() {
        // The tag is between the first "{" and the first "}" after it, when not empty.
        XCTAssertEqual(RedisCluster.keySlot("{user1000}.following"), RedisCluster.keySlot("{user1000}.followers"))
        XCTAssertEqual(RedisCluster.keySlot("presence:{family}:members"), RedisCluster.keySlot("family"))
        XCTAssertEqual(RedisCluster.keySlot("foo{bar}{zap}"), RedisCluster.keySlot("bar"))
        XCTAssertEqual(RedisCluster.keySlot("foo{bar}{zap}"), 5061)
        XCTAssertEqual(RedisCluster.keySlot("foo{{bar}}zap"), RedisCluster.keySlot("{bar"))
        XCTAssertEqual(RedisCluster.keySlot("foo{{bar}}zap"), 4015)
        // An empty tag hashes the whole key, even when a later tag is not empty.
        XCTAssertEqual(RedisCluster.keySlot("{}foo"), 9500)
        XCTAssertNotEqual(RedisCluster.keySlot("{}foo"), RedisCluster.keySlot("foo"))
        XCTAssertEqual(RedisCluster.keySlot("foo{}{bar}"), 8363)
        XCTAssertNotEqual(RedisCluster.keySlot("foo{}{bar}"), RedisCluster.keySlot("bar"))
        // No closing brace, or a closing brace only before: the whole key.
        XCTAssertEqual(RedisCluster.keySlot("{bar"), 4015)
        XCTAssertEqual(RedisCluster.keySlot("}bar{"), RedisCluster.keySlot(Array("}bar{".utf8)))
        XCTAssertNotEqual(RedisCluster.keySlot("}bar{"), RedisCluster.keySlot("bar"))
        // Multi-byte UTF-8 and binary keys hash their bytes.
        XCTAssertEqual(RedisCluster.keySlot("{café}:x"), RedisCluster.keySlot(Array("café".utf8)))
        XCTAssertEqual(RedisCluster.keySlot([0xff, 0x7b, 0x00, 0x7d]), RedisCluster.keySlot([0x00]))
        for i in 0..<1000 { XCTAssertLessThan(RedisCluster.keySlot("k\(i)"), 16384) }
    }

    func testSlotMapFromClusterSlotsReply() {
        func b(_ s: String) -> RedisValue { .bulk(Array(s.utf8)) }
        let reply = RedisValue.array([
            .array([
                .integer(0), .integer(5460), .array([b("10.0.0.1"), .integer(7000), b("id1"), .array([])]),
                .array([b("10.0.0.4"), .integer(7003), b("id4")]),
            ]),
            .array([.integer(5461), .integer(10922), .array([b(""), .integer(7001), b("id2")])]),
            .array([.integer(10923), .integer(16000), .array([b("10.0.0.3"), .integer(7002), b("id3")])]),
            .array([.integer(16001), .integer(16383), .array([b("?"), .integer(7009), b("id9")])]),
        ])
        guard let map = RedisSlotMap(clusterSlots: reply, replyingHost: "10.0.0.2") else { return XCTFail("not parsed") }
        let n1 = RedisNodeAddress(host: "10.0.0.1", port: 7000)
        let n2 = RedisNodeAddress(host: "10.0.0.2", port: 7001)  // empty host: the node that answered
        let n3 = RedisNodeAddress(host: "10.0.0.3", port: 7002)
        XCTAssertEqual(map.nodes, [n1, n2, n3], "masters only, no replica")
        XCTAssertEqual(map.owner(ofSlot: 0), n1)
        XCTAssertEqual(map.owner(ofSlot: 5460), n1)
        XCTAssertEqual(map.owner(ofSlot: 5461), n2)
        XCTAssertEqual(map.owner(ofSlot: 16000), n3)
        XCTAssertNil(map.owner(ofSlot: 16001), "unknown endpoint: unserved")
        XCTAssertNil(map.owner(ofSlot: 16384))
        XCTAssertEqual(map.coveredSlots, 16001)
        XCTAssertEqual(map.owner(ofKey: "foo"), n3)  // 12182

        var moved = map
        moved.assign(12182...12182, to: n1)
        XCTAssertEqual(moved.owner(ofKey: "foo"), n1)
        XCTAssertEqual(moved.slots(of: n3).count, 16000 - 10923)
        moved.assign(10923...16383, to: n1)
        XCTAssertEqual(moved.nodes, [n1, n2], "a master without slots is no longer listed")

        XCTAssertTrue(RedisSlotMap().isEmpty)
        XCTAssertEqual(RedisSlotMap(clusterSlots: .array([]), replyingHost: "h")?.isEmpty, true)
        XCTAssertNil(RedisSlotMap(clusterSlots: .simple("OK"), replyingHost: "h"))
        XCTAssertNil(
            RedisSlotMap(
                clusterSlots: .array([.array([.integer(5), .integer(1), .array([b("h"), .integer(1)])])]),
                replyingHost: "h"), "start after end")
        XCTAssertNil(
            RedisSlotMap(
                clusterSlots: .array([.array([.integer(0), .integer(16384), .array([b("h"), .integer(1)])])]),
                replyingHost: "h"), "slot out of range")
    }

    func testNodeAddressParsing() {
        XCTAssertEqual(RedisNodeAddress("127.0.0.1:7000", defaultHost: "x"), RedisNodeAddress(host: "127.0.0.1", port: 7000))
        XCTAssertEqual(RedisNodeAddress("::1:7000", defaultHost: "x"), RedisNodeAddress(host: "::1", port: 7000))
        XCTAssertEqual(RedisNodeAddress("[::1]:7000", defaultHost: "x")?.host, "::1")
        XCTAssertEqual(RedisNodeAddress(":7000", defaultHost: "10.1.1.1"), RedisNodeAddress(host: "10.1.1.1", port: 7000))
        XCTAssertNil(RedisNodeAddress("host", defaultHost: "x"))
        XCTAssertNil(RedisNodeAddress("host:0", defaultHost: "x"))
        XCTAssertNil(RedisNodeAddress("host:port", defaultHost: "x"))
        XCTAssertEqual(RedisNodeAddress(host: "::1", port: 1).description, "[::1]:1")
    }

    func testServerInfoParsing() {
        let cluster = RedisServerInfo(
            info: "# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n\n# Cluster\r\ncluster_enabled:1\r\n")
        XCTAssertEqual(cluster, RedisServerInfo(isCluster: true, version: "7.0.15"))
        XCTAssertTrue(cluster.supportsShardedPubSub)
        let single = RedisServerInfo(info: "# Server\nredis_version:6.2.14\n# Cluster\ncluster_enabled:0\n")
        XCTAssertEqual(single, RedisServerInfo(isCluster: false, version: "6.2.14"))
        XCTAssertEqual(single.majorVersion, 6)
        XCTAssertFalse(single.supportsShardedPubSub)
        XCTAssertEqual(RedisServerInfo(info: "").majorVersion, 0)
    }
}
