import RedisShim
import RedisTestSupport
import XCTest

/// Shared steps of the tests that talk to a real Redis Cluster through ``PollHost``.
extension PollHost {
    /// Sends one command through any ``RedisCommanding`` and turns the loop until its completion
    /// runs (nil after `timeoutMillis`).
    func call(
        _ target: RedisCommanding, key: String?, _ args: String..., timeoutMillis: Int64 = 5000
    )
        -> Result<RedisValue, RedisError>?
    {
        var result: Result<RedisValue, RedisError>?
        target.send(RedisCommand(args), routingKey: key) { result = $0 }
        run(until: { result != nil }, timeoutMillis: timeoutMillis)
        return result
    }

    /// ``RedisCommanding/evalScript(_:keys:args:_:)`` and wait.
    func eval(
        _ target: RedisCommanding, _ script: RedisScript, keys: [String], args: [String]
    )
        -> Result<RedisValue, RedisError>?
    {
        var result: Result<RedisValue, RedisError>?
        target.evalScript(script, keys: keys, args: args) { result = $0 }
        run(until: { result != nil })
        return result
    }

    /// A started cluster client seeded from `process`'s node `seed`, asserted ready within 5 s.
    func cluster(
        _ process: RedisClusterProcess, seed: Int = 0, maxRedirects: Int = 5,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> RedisCluster {
        let cluster = RedisCluster(
            seed: try RedisEndpoint.parse(process.url(node: seed)), host: self,
            options: fastRetry, maxRedirects: maxRedirects)
        cluster.start()
        XCTAssertTrue(run(until: { cluster.isReady }, timeoutMillis: 5000), "cluster not ready", file: file, line: line)
        return cluster
    }
}

/// Reconnects within ~200 ms, so restarts show up quickly.
let fastRetry = RedisOptions(backoffBaseMillis: 20, backoffCapMillis: 200)

extension RedisClusterProcess {
    /// One name per node (`prefix` + number) whose slot that node owns, node 0 first.
    func names(onEachNode prefix: String) -> [String] {
        let owners = slotOwners()
        var found = [String?](repeating: nil, count: nodes.count)
        var i = 0
        while found.contains(where: { $0 == nil }) {
            let name = "\(prefix)\(i)"
            if let owner = owners[RedisCluster.keySlot(name)], found[owner] == nil { found[owner] = name }
            i += 1
        }
        return found.map { $0! }
    }

    /// The slots of each node as one range (nil when not contiguous).
    func slotRanges() -> [ClosedRange<Int>?] {
        let owners = slotOwners()
        return nodes.indices.map { node in
            let slots = owners.indices.filter { owners[$0] == node }
            guard let low = slots.first, let high = slots.last, high - low + 1 == slots.count else { return nil }
            return low...high
        }
    }

    /// Sharded subscribers of `channel` on node `index` (`PUBSUB SHARDNUMSUB`).
    func shardSubscribers(_ channel: String, node index: Int) -> Int {
        Int(nodes[index].redisCLI("PUBSUB", "SHARDNUMSUB", channel).split(separator: "\n").last ?? "") ?? -1
    }

    /// The address a cluster client sees for node `index`.
    func address(_ index: Int) -> RedisNodeAddress { RedisNodeAddress(host: "127.0.0.1", port: Int(nodes[index].port)) }
}
