/// Sends commands to Redis, one node or a cluster: presenced's code is the same for both.
///
/// Implemented by ``RedisConnection`` (one node; `routingKey` is ignored) and ``RedisCluster``
/// (`routingKey` picks the node that owns the key's hash slot). Every call and callback happens on
/// the host's thread.
public protocol RedisCommanding: AnyObject {
    /// True when commands can be sent (a cluster: the slot map is known and every master is connected).
    var isReady: Bool { get }
    /// Sends `command` and calls `completion` with its reply. `routingKey` is a key the command
    /// touches (for a hash-tagged layout, any key with the right tag, e.g. `presence:{family}`);
    /// nil sends it to any node. Fails at once with ``RedisError/notConnected`` when the target
    /// is not connected.
    func send(_ command: RedisCommand, routingKey: String?, _ completion: @escaping (Result<RedisValue, RedisError>) -> Void)
    /// `command`, an `EVALSHA` of `script` (``RedisScript/command(keyCount:)`` with its keys and
    /// arguments appended), with a `NOSCRIPT` → `EVAL` fallback, routed by `routingKey` (every
    /// key must share its hash slot in a cluster).
    func evalScript(
        _ script: RedisScript, command: RedisCommand, routingKey: String?,
        _ completion: @escaping (Result<RedisValue, RedisError>) -> Void)
    /// Called each time it becomes ready (a cluster: after every node it needs is connected again).
    var onReady: (() -> Void)? { get set }
    /// Called when a connection is lost or a connection attempt fails (a cluster: any node's).
    var onDown: ((RedisError) -> Void)? { get set }
    /// Counters for metrics (a cluster: the sum over its nodes).
    var stats: RedisStats { get }
    /// Starts connecting (once).
    func start()
    /// Closes everything for good; pending commands fail with ``RedisError/notConnected``.
    func shutdown()
}

/// Channel subscriptions that survive reconnects (and, in a cluster, slot moves).
///
/// Implemented by ``RedisSubscriber`` (one node, classic or sharded pub/sub) and
/// ``RedisClusterSubscriber`` (sharded pub/sub, one subscriber connection per master).
/// ``subscribe(_:)`` and ``unsubscribe(_:)`` are idempotent and recorded while disconnected.
public protocol RedisSubscribing: AnyObject {
    /// Adds a channel to the desired set.
    func subscribe(_ channel: String)
    /// Removes a channel from the desired set.
    func unsubscribe(_ channel: String)
    /// Calls `done(true)` once the server has taken the subscription to `channel` (a `PING`
    /// written after it on the same connection is answered: from then on every message
    /// published there arrives), `done(false)` when that cannot be told (not desired, not
    /// connected, no node assigned yet).
    func whenSubscribed(_ channel: String, _ done: @escaping (Bool) -> Void)
    /// A message on a desired channel: channel name and payload bytes.
    var onMessage: ((_ channel: String, _ payload: [UInt8]) -> Void)? { get set }
    /// Called after each (re)connect once the re-subscriptions are written (a cluster: each time
    /// every master's subscriber connection is up again).
    var onReady: (() -> Void)? { get set }
    /// Called when a subscriber connection is lost or an attempt fails.
    var onDown: ((RedisError) -> Void)? { get set }
    /// True when every subscriber connection is up.
    var isReady: Bool { get }
    /// Starts connecting (once).
    func start()
    /// Closes everything for good.
    func shutdown()
}

extension RedisCommanding {
    /// `EVALSHA` with a `NOSCRIPT` → `EVAL` fallback, routed by `keys[0]`.
    public func evalScript(
        _ script: RedisScript, keys: [String] = [], args: [String] = [],
        _ completion: @escaping (Result<RedisValue, RedisError>) -> Void
    ) {
        evalScript(script, command: script.command(keys: keys, args: args), routingKey: keys.first, completion)
    }
}

extension RedisConnection: RedisCommanding {
    /// ``send(_:_:)``; a single node serves every key, so `routingKey` is ignored.
    public func send(
        _ command: RedisCommand, routingKey: String?,
        _ completion: @escaping (Result<RedisValue, RedisError>) -> Void
    ) {
        send(command, completion)
    }
}

extension RedisSubscriber: RedisSubscribing {}
