/// Sharded pub/sub across a Redis Cluster: each desired channel is `SSUBSCRIBE`d on the master
/// that owns its hash slot, through one sharded ``RedisSubscriber`` per master.
///
/// - Follows the slot map of a ``RedisCluster`` (shared with the command side, or its own).
///   When a slot moves — the old owner pushes `sunsubscribe` for the channel, or answers a
///   (re)subscription with `MOVED` — the channel is subscribed again at the new owner and the map
///   is refreshed.
/// - Each per-node subscriber re-subscribes its channels after its own reconnects (one
///   `SSUBSCRIBE` per slot: a node refuses channels of several slots in one command).
/// - ``isReady`` once the slot map is known and every master's subscriber connection is up;
///   ``onReady`` each time that becomes true again (e.g. after a node restart). Messages may
///   have been missed while it was not ready.
///
/// Publish with `SPUBLISH channel payload` through ``RedisCluster/send(_:routingKey:_:)`` with
/// `routingKey: channel`. On the host's thread only.
public final class RedisClusterSubscriber: RedisSubscribing {
    /// The cluster whose slot map decides where each channel is subscribed.
    public let cluster: RedisCluster
    /// Options of every per-node subscriber connection.
    public let options: RedisOptions
    /// A message on a desired channel: channel name and payload bytes.
    public var onMessage: ((_ channel: String, _ payload: [UInt8]) -> Void)?
    /// Called each time every master's subscriber connection is up (again).
    public var onReady: (() -> Void)?
    /// Called when a subscriber connection is lost or an attempt fails.
    public var onDown: ((RedisError) -> Void)?
    /// A node refused a subscription command (`NOPERM`, or `MOVED`, which is handled by
    /// subscribing at the new owner).
    public var onError: ((RedisError) -> Void)?
    /// The desired channels.
    public private(set) var channels: Set<String> = []
    /// True when the slot map is known and every master's subscriber connection is up.
    public private(set) var isReady = false

    private enum Life { case idle, running, closed }
    private var life = Life.idle
    private let ownsCluster: Bool
    private var observer: Int?
    private var subscribers: [RedisNodeAddress: RedisSubscriber] = [:]
    /// Where each desired channel is currently subscribed; absent while the map is unknown or
    /// the channel's slot is being moved.
    private var assignment: [String: RedisNodeAddress] = [:]
    private var retiredStats = RedisStats()

    /// A subscriber that follows `cluster`'s slot map (typically the one presenced sends its
    /// commands through). ``start()`` starts the cluster too; ``shutdown()`` leaves it running.
    public init(cluster: RedisCluster, options: RedisOptions = RedisOptions()) {
        self.cluster = cluster
        self.options = options
        ownsCluster = false
    }

    /// A subscriber with its own ``RedisCluster`` (for the slot map only), seeded from `endpoint`.
    public init(endpoint: RedisEndpoint, host: RedisHost, options: RedisOptions = RedisOptions()) {
        cluster = RedisCluster(seed: endpoint, host: host, options: options)
        self.options = options
        ownsCluster = true
    }

    deinit {
        if let observer { cluster.removeObserver(observer) }
        for subscriber in subscribers.values { subscriber.shutdown() }
        if ownsCluster { cluster.shutdown() }
    }

    /// The master on which `channel` is subscribed (nil while unassigned).
    public func node(ofChannel channel: String) -> RedisNodeAddress? { assignment[channel] }

    /// Sum of the per-node subscriber connections' counters.
    public var stats: RedisStats {
        var total = retiredStats
        for subscriber in subscribers.values { total.add(subscriber.stats) }
        return total
    }

    /// Starts following the cluster's slot map (and starts the cluster).
    public func start() {
        guard life == .idle else { return }
        life = .running
        observer = cluster.addObserver { [weak self] in self?.topologyChanged() }
        cluster.start()
        topologyChanged()
    }

    /// Closes every subscriber connection for good (and the cluster when it is its own).
    public func shutdown() {
        guard life != .closed else { return }
        life = .closed
        isReady = false
        if let observer { cluster.removeObserver(observer) }
        observer = nil
        let all = subscribers.values
        subscribers = [:]
        assignment = [:]
        for subscriber in all { retire(subscriber) }
        if ownsCluster { cluster.shutdown() }
    }

    /// Adds a channel; subscribes at once at its slot's owner when the map is known.
    public func subscribe(_ channel: String) {
        subscribe(contentsOf: CollectionOfOne(channel))
    }

    /// Adds channels; subscribes to the new ones at once when the map is known.
    public func subscribe<S: Sequence>(contentsOf channels: S) where S.Element == String {
        var added: [String] = []
        for channel in channels where self.channels.insert(channel).inserted { added.append(channel) }
        guard life == .running, !added.isEmpty else { return }
        assign(added)
    }

    /// Removes a channel; unsubscribes at once where it is subscribed.
    public func unsubscribe(_ channel: String) {
        unsubscribe(contentsOf: CollectionOfOne(channel))
    }

    /// Removes channels; unsubscribes at once where they are subscribed.
    public func unsubscribe<S: Sequence>(contentsOf channels: S) where S.Element == String {
        var byNode: [RedisNodeAddress: [String]] = [:]
        for channel in channels where self.channels.remove(channel) != nil {
            if let address = assignment.removeValue(forKey: channel) { byNode[address, default: []].append(channel) }
        }
        for (address, removed) in byNode { subscribers[address]?.unsubscribe(contentsOf: removed) }
    }

    /// See ``RedisSubscribing/whenSubscribed(_:_:)``: asked of the node the channel is assigned to.
    public func whenSubscribed(_ channel: String, _ done: @escaping (Bool) -> Void) {
        guard let address = assignment[channel], let subscriber = subscribers[address] else { return done(false) }
        subscriber.whenSubscribed(channel, done)
    }

    // MARK: - Assignment

    /// Subscribes unassigned `channels` at their owners in the current map.
    private func assign<C: Collection>(_ channels: C) where C.Element == String {
        let map = cluster.slotMap
        guard life == .running, !map.isEmpty else { return }
        var byNode: [RedisNodeAddress: [String]] = [:]
        for channel in channels {
            guard let owner = map.owner(ofSlot: RedisCluster.keySlot(channel)) else { continue }
            assignment[channel] = owner
            byNode[owner, default: []].append(channel)
        }
        for (address, added) in byNode { subscriber(address).subscribe(contentsOf: added) }
    }

    private func topologyChanged() {
        let map = cluster.slotMap
        guard life == .running, !map.isEmpty else { return }
        let masters = map.nodes
        for address in masters { _ = subscriber(address) }
        let current = Set(masters)
        for (address, subscriber) in subscribers where !current.contains(address) {
            subscribers[address] = nil
            retire(subscriber)
        }
        // Move what is assigned elsewhere than the map says; assign what is unassigned.
        var unassigned: [String] = []
        for channel in channels {
            let owner = map.owner(ofSlot: RedisCluster.keySlot(channel))
            guard let assigned = assignment[channel] else {
                unassigned.append(channel)
                continue
            }
            if assigned != owner {
                // The old owner no longer serves the slot (or is gone): nothing to tell it.
                subscribers[assigned]?.forget(channel)
                assignment[channel] = nil
                unassigned.append(channel)
            }
        }
        assign(unassigned)
        updateReadiness()
    }

    private func subscriber(_ address: RedisNodeAddress) -> RedisSubscriber {
        if let existing = subscribers[address] { return existing }
        let subscriber = RedisSubscriber(
            endpoint: cluster.endpoint(for: address), host: cluster.host,
            options: options, sharded: true)
        subscriber.groupsBySlot = true
        subscriber.onMessage = { [weak self] channel, payload in
            guard let self, self.assignment[channel] == address else { return }
            self.onMessage?(channel, payload)
        }
        subscriber.onReady = { [weak self] in self?.updateReadiness() }
        subscriber.onDown = { [weak self] error in
            guard let self, self.life == .running else { return }
            self.updateReadiness()
            self.onDown?(error)
        }
        subscriber.onError = { [weak self] error in self?.subscriptionRefused(error, at: address) }
        subscriber.onServerUnsubscribe = { [weak self] channel in self?.slotMovedAway(channel, from: address) }
        subscribers[address] = subscriber
        subscriber.start()
        return subscriber
    }

    /// The server unsubscribed `channel` by itself: its slot moved away from `address`.
    private func slotMovedAway(_ channel: String, from address: RedisNodeAddress) {
        guard life == .running, assignment[channel] == address else { return }
        subscribers[address]?.forget(channel)
        assignment[channel] = nil
        // Assigned again when the refreshed map arrives (topologyChanged).
        cluster.refreshSlots()
    }

    private func subscriptionRefused(_ error: RedisError, at address: RedisNodeAddress) {
        guard life == .running else { return }
        if case .server(let message) = error, message.hasPrefix("MOVED ") {
            let parts = message.split(separator: " ")
            if parts.count == 3, let slot = Int(parts[1]),
                let owner = RedisNodeAddress(parts[2], defaultHost: address.host)
            {
                for (channel, assigned) in assignment where assigned == address && RedisCluster.keySlot(channel) == slot {
                    subscribers[address]?.forget(channel)
                    assignment[channel] = nil
                }
                cluster.learnOwner(slot: slot, address: owner)  // notifies topologyChanged
                topologyChanged()  // in case the cluster already knew
            }
        }
        onError?(error)
    }

    private func retire(_ subscriber: RedisSubscriber) {
        subscriber.onMessage = nil
        subscriber.onReady = nil
        subscriber.onDown = nil
        subscriber.onError = nil
        subscriber.onServerUnsubscribe = nil
        retiredStats.add(subscriber.stats)
        subscriber.shutdown()
    }

    private func updateReadiness() {
        let masters = cluster.slotMap.nodes
        let ready = life == .running && !masters.isEmpty && masters.allSatisfy { subscribers[$0]?.isReady == true }
        guard ready != isReady else { return }
        isReady = ready
        if ready { onReady?() }
    }
}
