import PresenceLoop
import RedisShim
import Synchronization

/// Redis mode's set-up on the loops. Loop 0 first asks the server what it is (`INFO`: a
/// cluster or one node, and whether it has sharded pub/sub), then every loop opens its own
/// command connection (or cluster client) and registers it with presence, the single-use
/// token guard and fan-out; loop 0 also runs the subscription connection. Until then (and
/// whenever Redis is unreachable) the loops serve from their own view and `/readyz` says 503:
/// ready means every loop's command connection and the subscriber are up, so no loop checks a
/// single-use token in memory only while the instance calls itself ready.
final class RedisRuntime: @unchecked Sendable {
    let endpoint: RedisEndpoint
    let presence: RedisPresenceStore
    let replayGuard: RedisReplayGuard
    /// Channel history and nonces, shared by every instance.
    let history: RedisHistory
    let instanceID: [UInt8]
    /// Cross-instance fan-out (publishers attach once the server is known).
    let fanOut: RedisFanOut
    /// How many loops' command connections are up, and whether the subscriber is.
    private let commandsUp = Atomic<Int>(0)
    private let subscriberUp = Atomic<Bool>(false)
    /// The loops started so far and, once loop 0 has asked, what the server is.
    private let setup = Lock<(mailboxes: [Mailbox], server: (cluster: Bool, sharded: Bool)?)>(([], nil))
    private var probe: RedisConnection?
    private let options: RedisOptions
    /// Each loop's Redis clients (its box is touched by that loop's thread only).
    private final class LoopClients {
        var commands: (any RedisCommanding)?
        var subscriber: (any RedisSubscribing)?
        /// Whether `commands` is counted in `commandsUp`.
        var up = false
    }
    private let clients: [LoopClients]

    /// Forwarding's queues live on the loops' Redis connections (nil: not forwarding).
    private let forwarding: (any ChatForwarding)?
    /// `instanceID` in hex (presence members, the forward stream's consumer name).
    let instanceHex: String

    init(
        endpoint: RedisEndpoint, loops: Int, ttlMillis: Int64, graceMillis: Int64, commandTimeoutMillis: Int64,
        historySize: Int = 200, historyTTLMillis: Int64 = 600_000, nonceWindowMillis: Int64 = 300_000,
        forwarding: (any ChatForwarding)? = nil
    ) {
        self.endpoint = endpoint
        self.forwarding = forwarding
        var id = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in id.indices { id[i] = rng.next() }
        instanceID = id
        let hex = id.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        instanceHex = hex
        presence = RedisPresenceStore(instanceID: hex, loops: loops, ttlMillis: ttlMillis, graceMillis: graceMillis)
        replayGuard = RedisReplayGuard(loops: loops)
        fanOut = RedisFanOut(instanceID: id, loops: loops)
        history = RedisHistory(
            size: historySize, ttlMillis: historyTTLMillis, nonceWindowMillis: nonceWindowMillis,
            loops: loops, fanOut: fanOut)
        options = RedisOptions(commandTimeoutMillis: commandTimeoutMillis, clientName: "presenced")
        clients = (0..<loops).map { _ in LoopClients() }
    }

    /// This loop's Redis counters (its command connection, and the subscriber on loop 0); call
    /// on the loop's own thread.
    func stats(on loop: EventLoop) -> RedisStats {
        let mine = clients[loop.index]
        var stats = mine.commands.map(Self.stats(of:)) ?? RedisStats()
        if let subscriber = mine.subscriber { stats.add(Self.stats(of: subscriber)) }
        return stats
    }

    private static func stats(of client: AnyObject) -> RedisStats {
        switch client {
        case let c as RedisConnection: return c.stats
        case let c as RedisCluster: return c.stats
        case let s as RedisSubscriber: return s.stats
        case let s as RedisClusterSubscriber: return s.stats
        default: return RedisStats()
        }
    }

    /// Redis answers on every loop's connection and the subscription connection is up.
    var isReady: Bool {
        commandsUp.load(ordering: .relaxed) == clients.count && subscriberUp.load(ordering: .relaxed)
    }

    /// On each loop's thread at its start. Loop 0 asks the server what it is; then every loop
    /// (started by then or later) opens its connection.
    func loopStarted(_ loop: EventLoop) {
        presence.register(loop: loop)
        let known = setup.withLock { state -> (cluster: Bool, sharded: Bool)? in
            state.mailboxes.append(loop.mailbox)
            return state.server
        }
        if let known { connect(loop, cluster: known.cluster, sharded: known.sharded) }
        guard loop.index == 0 else { return }
        let probe = RedisConnection(endpoint: endpoint, host: LoopRedisHost(loop: loop), options: options)
        self.probe = probe
        probe.onReady = { [unowned self, unowned probe] in
            probe.send(RedisCommand("INFO"), routingKey: nil) { [unowned self] result in
                guard case .success(let value) = result, let text = value.string else { return }
                self.probe?.shutdown()
                self.probe = nil
                let info = RedisServerInfo(info: text)
                let cluster = info.isCluster, sharded = info.supportsShardedPubSub
                Log.info(
                    "Redis reached",
                    [
                        "url": "\(self.endpoint)", "version": info.version,
                        "cluster": "\(cluster)", "pubsub": sharded ? "sharded" : "plain",
                    ])
                let mailboxes = self.setup.withLock { state -> [Mailbox] in
                    state.server = (cluster, sharded)
                    return state.mailboxes
                }
                for mailbox in mailboxes {
                    mailbox.post { [unowned self] loop in self.connect(loop, cluster: cluster, sharded: sharded) }
                }
            }
        }
        probe.onDown = { error in Log.warn("Redis unreachable", ["error": "\(error)"]) }
        probe.start()
    }

    private func connect(_ loop: EventLoop, cluster: Bool, sharded: Bool) {
        let host = LoopRedisHost(loop: loop)
        let commands: any RedisCommanding =
            cluster
            ? RedisCluster(seed: endpoint, host: host, options: options)
            : RedisConnection(endpoint: endpoint, host: host, options: options)
        let mine = clients[loop.index]
        commands.onReady = { [unowned self, unowned mine] in
            guard !mine.up else { return }
            mine.up = true
            self.commandsUp.add(1, ordering: .relaxed)
        }
        commands.onDown = { [unowned self, unowned mine] error in
            guard mine.up else { return }
            mine.up = false
            let before = self.commandsUp.subtract(1, ordering: .relaxed).oldValue
            if before == self.clients.count { Log.warn("Redis connection lost", ["error": "\(error)"]) }
        }
        mine.commands = commands
        presence.attach(loop: loop, redis: commands)
        replayGuard.register(loop: loop, redis: commands)
        history.register(loop: loop, redis: commands)
        fanOut.register(loop: loop, redis: commands, sharded: sharded)
        forwarding?.redisAttached(loop: loop, redis: commands, instanceID: instanceHex)
        commands.start()
        guard loop.index == 0 else { return }
        var subscriberOptions = options
        subscriberOptions.healthCheckIntervalMillis = 5_000
        // In a cluster the subscriber follows loop 0's slot map (one sharded subscriber per master).
        let subscriber: any RedisSubscribing =
            (commands as? RedisCluster).map { RedisClusterSubscriber(cluster: $0, options: subscriberOptions) }
            ?? RedisSubscriber(endpoint: endpoint, host: host, options: subscriberOptions, sharded: sharded)
        clients[loop.index].subscriber = subscriber
        subscriber.onReady = { [unowned self] in self.subscriberUp.store(true, ordering: .relaxed) }
        subscriber.onDown = { [unowned self] _ in self.subscriberUp.store(false, ordering: .relaxed) }
        fanOut.start(subscriber: subscriber, on: loop)
    }
}
