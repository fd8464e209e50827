#if canImport(Glibc)
import Glibc
#endif

/// A throwaway Redis Cluster for tests: `masters` ``RedisServerProcess``es (no replicas) on free
/// loopback ports with `--cluster-enabled yes`, joined into one cluster, waited for until every
/// node reports `cluster_state:ok`. Each node keeps its `nodes.conf` in its own temporary
/// directory (so ``restart(_:)`` brings it back with the same id and slots) and an explicit
/// cluster bus port (`--cluster-port`, since `port + 10000` may be taken or above 65535).
/// Stopped on ``stop()`` or `deinit`. Same thread rule as ``RedisServerProcess``.
public final class RedisClusterProcess {
    /// The nodes, node 0 with the lowest slots.
    public let nodes: [RedisServerProcess]
    /// The cluster bus port of each node.
    public let busPorts: [UInt16]
    /// `--requirepass` (and `--masterauth`) of every node.
    public let password: String?

    private static let configFile = "nodes.conf"

    /// Starts `masters` nodes, gives each an equal share of the slots and joins them, then waits
    /// until the cluster is ok everywhere (up to `readyTimeoutMillis`).
    ///
    /// With `redisCLICreate` the join is `redis-cli --cluster create … --cluster-yes` (at least 3
    /// masters); it polls once a second and takes 1–5 s. The default sends the same commands
    /// itself (`CLUSTER ADDSLOTSRANGE`, `SET-CONFIG-EPOCH`, `MEET`) and polls every 20 ms.
    public init(
        masters: Int = 3, password: String? = nil, readyTimeoutMillis: Int = 10_000,
        redisCLICreate: Bool = false
    ) throws {
        precondition(masters >= (redisCLICreate ? 3 : 1), "redis-cli --cluster create needs at least 3 masters")
        self.password = password
        var started: [(RedisServerProcess, UInt16)] = []
        do {
            for _ in 0..<masters { started.append(try Self.startNode(password: password)) }
        } catch {
            for (node, _) in started { Self.stopAndClean(node) }
            throw error
        }
        nodes = started.map(\.0)
        busPorts = started.map(\.1)
        if redisCLICreate {
            let create = nodes[0].redisCLI(["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-yes"])
            guard create.contains("All 16384 slots covered") else {
                throw RedisServerError("redis-cli --cluster create failed: \(create)")
            }
        } else {
            for (i, node) in nodes.enumerated() {
                let (low, high) = Self.slotRange(node: i, of: masters)
                try expectOK(node.redisCLI("CLUSTER", "ADDSLOTSRANGE", String(low), String(high)))
                try expectOK(node.redisCLI("CLUSTER", "SET-CONFIG-EPOCH", String(i + 1)))
            }
            // Every pair meets directly: waiting for gossip to introduce them takes seconds.
            for i in nodes.indices {
                for j in nodes.indices where j > i {
                    try expectOK(nodes[i].redisCLI("CLUSTER", "MEET", "127.0.0.1", String(nodes[j].port), String(busPorts[j])))
                }
            }
        }
        guard waitUntilOK(timeoutMillis: readyTimeoutMillis) else {
            throw RedisServerError(
                "cluster not ok within \(readyTimeoutMillis) ms: " + nodes.map { $0.redisCLI("CLUSTER", "INFO") }.joined(separator: " | "))
        }
    }

    deinit { stop() }

    /// Stops every node and removes its cluster configuration (each node's ``RedisServerProcess``
    /// removes the rest of its directory when released).
    public func stop() {
        for node in nodes { Self.stopAndClean(node) }
    }

    /// `redis://[:password@]127.0.0.1:port` of node `index` (any node seeds a cluster client).
    public func url(node index: Int = 0) -> String { nodes[index].url() }

    /// The ports of the nodes.
    public var ports: [UInt16] { nodes.map(\.port) }

    /// Node `index`'s cluster id (`CLUSTER MYID`).
    public func nodeID(_ index: Int) -> String { nodes[index].redisCLI("CLUSTER", "MYID") }

    /// The index of the node listening on `port`.
    public func index(ofPort port: Int) -> Int? { nodes.firstIndex { Int($0.port) == port } }

    /// `CLUSTER KEYSLOT key` as the server computes it.
    public func keySlot(_ key: String) -> Int { Int(nodes[0].redisCLI("CLUSTER", "KEYSLOT", key)) ?? -1 }

    /// The index of the node that owns `slot` according to node `view`'s `CLUSTER NODES`.
    public func owner(ofSlot slot: Int, view: Int = 0) -> Int? { slotOwners(view: view)[slot] }

    /// The owner (node index) of every slot according to node `view`'s `CLUSTER NODES`.
    public func slotOwners(view: Int = 0) -> [Int?] {
        var owners = [Int?](repeating: nil, count: 16384)
        for line in nodes[view].redisCLI("CLUSTER", "NODES").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[2].contains("master") else { continue }
            let address = fields[1].split(separator: "@")[0]
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
                let index = index(ofPort: port)
            else { continue }
            for range in fields.dropFirst(8) where !range.hasPrefix("[") {
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                guard let low = bounds.first, let high = bounds.last, low <= high, high < 16384 else { continue }
                for slot in low...high { owners[slot] = index }
            }
        }
        return owners
    }

    /// `redis-cli -c` against node `index` (follows redirects): output as ``RedisServerProcess/redisCLI(_:)``.
    public func redisCLI(node index: Int = 0, _ args: String...) -> String {
        nodes[index].redisCLI(["-c"] + args)
    }

    /// Polls until every node reports `cluster_state:ok`, all slots assigned and every node known.
    @discardableResult
    public func waitUntilOK(timeoutMillis: Int = 10_000) -> Bool {
        let deadline = Self.nowMillis() + timeoutMillis
        while true {
            let ok = nodes.allSatisfy { node in
                let info = node.redisCLI("CLUSTER", "INFO")
                return info.contains("cluster_state:ok") && info.contains("cluster_slots_assigned:16384")
                    && info.contains("cluster_known_nodes:\(nodes.count)")
            }
            if ok { return true }
            if Self.nowMillis() >= deadline { return false }
            usleep(20_000)
        }
    }

    // MARK: - Slot migration (the steps of `redis-cli --cluster reshard`, one slot at a time)

    /// `CLUSTER SETSLOT slot IMPORTING` on the target and `MIGRATING` on the owner: from now on
    /// the owner answers `ASK` for keys it does not have.
    public func beginMigration(slot: Int, to target: Int) throws {
        guard let source = owner(ofSlot: slot) else { throw RedisServerError("slot \(slot) has no owner") }
        guard source != target else { throw RedisServerError("slot \(slot) is already on node \(target)") }
        try expectOK(nodes[target].redisCLI("CLUSTER", "SETSLOT", String(slot), "IMPORTING", nodeID(source)))
        try expectOK(nodes[source].redisCLI("CLUSTER", "SETSLOT", String(slot), "MIGRATING", nodeID(target)))
    }

    /// `MIGRATE`s the keys of `slot` (or only `keys`) from its owner to `target`.
    public func migrateKeys(slot: Int, to target: Int, keys: [String]? = nil) throws {
        guard let source = owner(ofSlot: slot) else { throw RedisServerError("slot \(slot) has no owner") }
        var auth: [String] = []
        if let password { auth = ["AUTH", password] }
        if let keys {
            guard !keys.isEmpty else { return }
            let out = nodes[source].redisCLI(
                ["MIGRATE", "127.0.0.1", String(nodes[target].port), "", "0", "5000"] + auth + ["KEYS"] + keys)
            try expectOK(out)
            return
        }
        while true {
            let batch = nodes[source].redisCLI("CLUSTER", "GETKEYSINSLOT", String(slot), "100")
                .split(separator: "\n").map(String.init)
            if batch.isEmpty { return }
            let out = nodes[source].redisCLI(
                ["MIGRATE", "127.0.0.1", String(nodes[target].port), "", "0", "5000"] + auth + ["KEYS"] + batch)
            try expectOK(out)
        }
    }

    /// `CLUSTER SETSLOT slot NODE target` on the target, the old owner, then the others: the
    /// slot is the target's; the old owner answers `MOVED` (and unsubscribes the slot's shard channels).
    public func finishMigration(slot: Int, to target: Int) throws {
        let source = owner(ofSlot: slot, view: target)
        let id = nodeID(target)
        var order = [target]
        if let source, source != target { order.append(source) }
        order += nodes.indices.filter { !order.contains($0) }
        for index in order { try expectOK(nodes[index].redisCLI("CLUSTER", "SETSLOT", String(slot), "NODE", id)) }
    }

    /// Moves `slot` with its keys to node `target`.
    public func moveSlot(_ slot: Int, to target: Int) throws {
        try beginMigration(slot: slot, to: target)
        try migrateKeys(slot: slot, to: target)
        try finishMigration(slot: slot, to: target)
    }

    /// Restarts node `index` on the same port with its `nodes.conf` (same id and slots; its data
    /// is gone). Does not wait for `cluster_state:ok` (see ``waitUntilOK(timeoutMillis:)``).
    public func restart(_ index: Int) throws {
        try nodes[index].restart()
    }

    // MARK: - Helpers

    /// The slots `redis-cli --cluster create` gives master `index` of `count` (3 masters:
    /// 0-5460, 5461-10922, 10923-16383).
    public static func slotRange(node index: Int, of count: Int) -> (Int, Int) {
        let perNode = 16384.0 / Double(count)
        var first = 0, cursor = 0.0, last = 0
        for i in 0...index {
            last = Int((cursor + perNode - 1).rounded())
            if last > 16383 || i == count - 1 { last = 16383 }
            if last < first { last = first }
            if i < index {
                first = last + 1
                cursor += perNode
            }
        }
        return (first, last)
    }

    private static func startNode(password: String?) throws -> (RedisServerProcess, UInt16) {
        var lastError: Error = RedisServerError("no attempt")
        for _ in 0..<3 {
            let busPort = try RedisServerProcess.freePort()
            var args = [
                "--cluster-enabled", "yes", "--cluster-config-file", configFile,
                "--cluster-port", String(busPort),
            ]
            if let password { args += ["--masterauth", password] }
            do {
                return (try RedisServerProcess(extraArguments: args, password: password), busPort)
            } catch {
                lastError = error  // maybe the bus port was taken in between
            }
        }
        throw lastError
    }

    private static func stopAndClean(_ node: RedisServerProcess) {
        node.kill()
        unlink(node.directory + "/" + configFile)
    }

    private func expectOK(_ output: String) throws {
        guard output == "OK" else { throw RedisServerError("expected OK, got: \(output)") }
    }

    private static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}
