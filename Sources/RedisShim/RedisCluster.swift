/// A Redis Cluster client on the host's event loop: one ``RedisConnection`` per master, commands
/// routed by the hash slot of their routing key.
///
/// - Seeds from one endpoint; user, password and TLS apply to every node, the database is
///   always 0 (a cluster has no other).
/// - Learns the slot map with `CLUSTER SLOTS` once the seed (or any node) is connected, again in
///   the background after every `MOVED`, when a node connection fails, and when asked
///   (``refreshSlots()``). A node that no longer serves any slot is dropped at the refresh.
/// - `MOVED slot host:port`: records the new owner and retries there; `ASK slot host:port`: sends
///   `ASKING` and the command to that node once; `TRYAGAIN` (a multi-key command in a slot being
///   migrated): retries after ``tryAgainDelayMillis``. At most ``maxRedirects`` of these per
///   command, then the last error reply is the result.
/// - Each connection reconnects on its own (``RedisConnection`` backoff). A command whose node is
///   not connected fails at once with ``RedisError/notConnected``, except while the node's first
///   connection attempt is under way (then it waits for it).
/// - ``isReady`` once the slot map is known and every master in it is connected.
///
/// Whether an endpoint is a cluster at all: ``detect(endpoint:host:options:_:)``.
/// On the host's thread only.
public final class RedisCluster: RedisCommanding {
    /// The endpoint the cluster was seeded from.
    public let seed: RedisEndpoint
    /// Options of every node connection.
    public let options: RedisOptions
    /// Redirects (`MOVED`, `ASK`, `TRYAGAIN`) followed per command at most.
    public let maxRedirects: Int
    /// Wait before retrying a command answered `TRYAGAIN`.
    public var tryAgainDelayMillis: Int64 = 50
    /// Called each time the cluster becomes ready (slot map known, every master connected).
    public var onReady: (() -> Void)?
    /// Called when a node connection is lost or a connection attempt fails (as
    /// ``RedisConnection/onDown``), and when `CLUSTER SLOTS` is answered with an error (e.g. the
    /// server has cluster support disabled).
    public var onDown: ((RedisError) -> Void)?
    /// The current slot map; empty until the first `CLUSTER SLOTS` reply.
    public private(set) var slotMap = RedisSlotMap()
    /// True when the slot map is known and every master in it is connected.
    public private(set) var isReady = false
    /// Redirect and refresh counters.
    public private(set) var clusterStats = RedisClusterStats()

    let host: RedisHost

    private enum Life { case idle, running, closed }
    private var life = Life.idle
    private var nodes: [RedisNodeAddress: Node] = [:]
    private let seedAddress: RedisNodeAddress
    private var refreshInFlight = false
    private var refreshAgain = false
    /// A refresh is due once some node is connected.
    private var refreshWanted = false
    private var refreshTimer: RedisTimer?
    private var refreshFailures = 0
    private var roundRobin = 0
    /// Counters of dropped nodes, so ``stats`` stays monotonic, and of commands the cluster
    /// refused itself (no slot map, no owner, no connected master).
    private var retiredStats = RedisStats()
    private var observers: [Int: () -> Void] = [:]
    private var nextObserver = 0
    private var random = SystemRandomNumberGenerator()

    private final class Node {
        let address: RedisNodeAddress
        let connection: RedisConnection
        var everReady = false
        /// Commands that arrived during the node's first connection attempt.
        var waiting: [(Request, asking: Bool)] = []

        init(address: RedisNodeAddress, connection: RedisConnection) {
            self.address = address
            self.connection = connection
        }
    }

    private struct Request {
        let command: RedisCommand
        let routingKey: String?
        let completion: (Result<RedisValue, RedisError>) -> Void
        var redirectsLeft: Int
    }

    private enum Redirect {
        case moved(slot: Int, RedisNodeAddress)
        case ask(slot: Int, RedisNodeAddress)
        case tryAgain

        init?(_ message: String, replyingHost: String) {
            if message.hasPrefix("TRYAGAIN") {
                self = .tryAgain
                return
            }
            let parts = message.split(separator: " ")
            guard parts.count == 3, let slot = Int(parts[1]), slot >= 0, slot < RedisSlotMap.slotCount,
                let address = RedisNodeAddress(parts[2], defaultHost: replyingHost)
            else { return nil }
            switch parts[0] {
            case "MOVED": self = .moved(slot: slot, address)
            case "ASK": self = .ask(slot: slot, address)
            default: return nil
            }
        }
    }

    /// A cluster client that does nothing until ``start()``. `seed` is any node of the cluster.
    public init(seed: RedisEndpoint, host: RedisHost, options: RedisOptions = RedisOptions(), maxRedirects: Int = 5) {
        var seed = seed
        seed.database = 0
        self.seed = seed
        self.host = host
        self.options = options
        self.maxRedirects = max(0, maxRedirects)
        seedAddress = RedisNodeAddress(host: seed.host, port: seed.port)
    }

    deinit {
        refreshTimer?.cancel()
        for node in nodes.values { node.connection.shutdown() }
    }

    /// The masters of the current slot map.
    public var masters: [RedisNodeAddress] { slotMap.nodes }

    /// Addresses with an open (or opening) connection: the masters, plus the seed or a redirect
    /// target until the next refresh.
    public var connectedNodes: [RedisNodeAddress] { Array(nodes.keys) }

    /// The endpoint of a node: the seed's credentials and TLS at `address`.
    public func endpoint(for address: RedisNodeAddress) -> RedisEndpoint {
        var endpoint = seed
        endpoint.host = address.host
        endpoint.port = address.port
        return endpoint
    }

    /// Sum of the node connections' counters (dropped nodes included), plus the commands refused
    /// before reaching a node (in `rejected`).
    public var stats: RedisStats {
        var total = retiredStats
        for node in nodes.values { total.add(node.connection.stats) }
        total.scriptFallbacks &+= clusterStats.scriptFallbacks
        return total
    }

    /// Connects to the seed and learns the slot map (once; later calls do nothing).
    public func start() {
        guard life == .idle else { return }
        life = .running
        refreshWanted = true
        _ = node(seedAddress)
    }

    /// Closes every connection for good; pending and waiting commands fail with
    /// ``RedisError/notConnected``. `onDown` is not called.
    public func shutdown() {
        guard life != .closed else { return }
        life = .closed
        refreshTimer?.cancel()
        refreshTimer = nil
        isReady = false
        let all = nodes.values
        nodes = [:]
        for node in all { retire(node) }
        observers = [:]
    }

    // MARK: - Commands

    /// Sends `command` to the master that owns `routingKey`'s slot (nil: any connected master),
    /// following redirects; see the type's notes.
    public func send(
        _ command: RedisCommand, routingKey: String?,
        _ completion: @escaping (Result<RedisValue, RedisError>) -> Void
    ) {
        route(Request(command: command, routingKey: routingKey, completion: completion, redirectsLeft: maxRedirects))
    }

    /// Runs `command`, an `EVALSHA` of `script`, on the master of `routingKey` (every key must
    /// share its hash slot); on `NOSCRIPT` it retries once with `EVAL`.
    public func evalScript(
        _ script: RedisScript, command: RedisCommand, routingKey: String?,
        _ completion: @escaping (Result<RedisValue, RedisError>) -> Void
    ) {
        send(command, routingKey: routingKey) { [weak self] result in
            if case .failure(.server(let message)) = result, message.hasPrefix("NOSCRIPT"), let self {
                self.clusterStats.scriptFallbacks += 1
                self.send(script.bySource(command), routingKey: routingKey, completion)
            } else {
                completion(result)
            }
        }
    }

    /// The endpoint of the master that serves `key` in the current map.
    public func endpoint(forKey key: String) -> RedisEndpoint? {
        slotMap.owner(ofKey: key).map { endpoint(for: $0) }
    }

    private func route(_ request: Request) {
        guard life == .running, !slotMap.isEmpty else {
            retiredStats.rejected += 1
            request.completion(.failure(.notConnected))
            return
        }
        let target: RedisNodeAddress
        if let key = request.routingKey {
            guard let owner = slotMap.owner(ofSlot: Self.keySlot(key)) else {
                retiredStats.rejected += 1
                request.completion(.failure(.notConnected))  // slot not served; the map refresh may fix it
                refreshSlots()
                return
            }
            target = owner
        } else {
            guard let any = anyReadyMaster() else {
                retiredStats.rejected += 1
                request.completion(.failure(.notConnected))
                return
            }
            target = any
        }
        dispatch(request, to: target, asking: false)
    }

    private func anyReadyMaster() -> RedisNodeAddress? {
        let masters = slotMap.nodes
        guard !masters.isEmpty else { return nil }
        for i in 0..<masters.count {
            let address = masters[(roundRobin + i) % masters.count]
            if nodes[address]?.connection.isReady == true {
                roundRobin = (roundRobin + i + 1) % masters.count
                return address
            }
        }
        return nil
    }

    private func dispatch(_ request: Request, to address: RedisNodeAddress, asking: Bool) {
        guard life == .running else {
            retiredStats.rejected += 1
            request.completion(.failure(.notConnected))
            return
        }
        let node = node(address)
        if node.connection.isReady {
            transmit(request, on: node, asking: asking)
        } else if !node.everReady && (node.connection.state == .connecting || node.connection.state == .handshaking) {
            guard node.waiting.count < options.maxPending else {
                retiredStats.rejected += 1
                request.completion(.failure(.tooManyPending))
                return
            }
            node.waiting.append((request, asking))
        } else {
            retiredStats.rejected += 1
            request.completion(.failure(.notConnected))
        }
    }

    private func transmit(_ request: Request, on node: Node, asking: Bool) {
        if asking { node.connection.send(RedisCommand("ASKING")) { _ in } }
        let from = node.address
        node.connection.send(request.command) { [weak self] result in
            guard let self else { return request.completion(result) }
            self.reply(result, to: request, from: from)
        }
    }

    private func reply(_ result: Result<RedisValue, RedisError>, to request: Request, from: RedisNodeAddress) {
        guard case .failure(.server(let message)) = result,
            let redirect = Redirect(message, replyingHost: from.host)
        else {
            return request.completion(result)
        }
        guard request.redirectsLeft > 0, life == .running else {
            clusterStats.redirectLimit += 1
            return request.completion(result)
        }
        var next = request
        next.redirectsLeft -= 1
        switch redirect {
        case .moved(let slot, let address):
            clusterStats.moved += 1
            learnOwner(slot: slot, address: address)
            dispatch(next, to: address, asking: false)
        case .ask(_, let address):
            clusterStats.asked += 1
            dispatch(next, to: address, asking: true)
        case .tryAgain:
            clusterStats.retried += 1
            _ = host.schedule(afterMillis: tryAgainDelayMillis) { [weak self] in
                guard let self else { return next.completion(.failure(.notConnected)) }
                self.route(next)
            }
        }
    }

    // MARK: - Slot map

    /// Asks a connected node for `CLUSTER SLOTS` now (or right after the request in flight) and
    /// applies the answer. Called by the cluster itself after `MOVED` and node failures.
    public func refreshSlots() {
        guard life == .running else { return }
        if refreshInFlight {
            refreshAgain = true
            return
        }
        refreshTimer?.cancel()
        refreshTimer = nil
        guard let node = readyNodeForRefresh() else {
            refreshWanted = true
            if nodes[seedAddress] == nil { _ = self.node(seedAddress) }  // every known node is down: try the seed too
            return
        }
        refreshWanted = false
        refreshInFlight = true
        clusterStats.slotRefreshes += 1
        let from = node.address
        node.connection.send(RedisCommand("CLUSTER", "SLOTS")) { [weak self] result in
            self?.slotsReply(result, from: from)
        }
    }

    /// Records `address` as the owner of `slot` (from a `MOVED`) and refreshes the whole map in
    /// the background.
    func learnOwner(slot: Int, address: RedisNodeAddress) {
        guard life == .running else { return }
        if slotMap.owner(ofSlot: slot) != address {
            slotMap.assign(slot...slot, to: address)
            _ = node(address)
            updateReadiness()
            notifyObservers()
        }
        refreshSlots()
    }

    private func readyNodeForRefresh() -> Node? {
        // Prefer a master of the current map (the seed may be a stale name), rotating.
        if let address = anyReadyMaster(), let node = nodes[address] { return node }
        return nodes.values.first { $0.connection.isReady }
    }

    private func slotsReply(_ result: Result<RedisValue, RedisError>, from: RedisNodeAddress) {
        guard life == .running else { return }
        refreshInFlight = false
        switch result {
        case .success(let value):
            guard let map = RedisSlotMap(clusterSlots: value, replyingHost: from.host), !map.isEmpty else {
                refreshFailed(
                    .protocolError(
                        value.array == nil
                            ? "CLUSTER SLOTS: unexpected reply"
                            : "CLUSTER SLOTS: no slot is served"), report: true)
                return
            }
            refreshFailures = 0
            apply(map)
        case .failure(let error):
            // Connection failures are reported by the node itself.
            var report = false
            if case .server = error { report = true }
            if case .protocolError = error { report = true }
            refreshFailed(error, report: report)
            return
        }
        if refreshAgain {
            refreshAgain = false
            refreshSlots()
        }
    }

    private func refreshFailed(_ error: RedisError, report: Bool) {
        clusterStats.slotRefreshFailures += 1
        refreshAgain = false
        let delay = options.backoff.delay(attempt: refreshFailures, using: &random)
        refreshFailures += 1
        refreshTimer?.cancel()
        refreshTimer = host.schedule(afterMillis: max(10, delay)) { [weak self] in
            guard let self else { return }
            self.refreshTimer = nil
            self.refreshSlots()
        }
        if report { onDown?(error) }
    }

    private func apply(_ map: RedisSlotMap) {
        slotMap = map
        let masters = Set(map.nodes)
        for address in map.nodes { _ = node(address) }
        for (address, node) in nodes where !masters.contains(address) {
            nodes[address] = nil
            retire(node)
        }
        updateReadiness()
        notifyObservers()
    }

    // MARK: - Nodes

    private func node(_ address: RedisNodeAddress) -> Node {
        if let node = nodes[address] { return node }
        let connection = RedisConnection(endpoint: endpoint(for: address), host: host, options: options)
        let node = Node(address: address, connection: connection)
        connection.onReady = { [weak self, weak node] in
            guard let self, let node else { return }
            self.nodeReady(node)
        }
        connection.onDown = { [weak self, weak node] error in
            guard let self, let node else { return }
            self.nodeDown(node, error)
        }
        nodes[address] = node
        connection.start()
        return node
    }

    private func nodeReady(_ node: Node) {
        guard life == .running, nodes[node.address] === node else { return }
        node.everReady = true
        let waiting = node.waiting
        node.waiting = []
        for (request, asking) in waiting { transmit(request, on: node, asking: asking) }
        if refreshWanted || slotMap.isEmpty { refreshSlots() }
        updateReadiness()
    }

    private func nodeDown(_ node: Node, _ error: RedisError) {
        guard life == .running, nodes[node.address] === node else { return }
        let waiting = node.waiting
        node.waiting = []
        for (request, _) in waiting { request.completion(.failure(error)) }
        updateReadiness()
        // The node may have failed over or left: the other nodes know.
        if !slotMap.isEmpty { refreshSlots() }
        onDown?(error)
    }

    /// Shuts a node's connection down (it is no longer in `nodes`).
    private func retire(_ node: Node) {
        node.connection.onReady = nil
        node.connection.onDown = nil
        let waiting = node.waiting
        node.waiting = []
        retiredStats.add(node.connection.stats)
        node.connection.shutdown()
        for (request, _) in waiting { request.completion(.failure(.notConnected)) }
    }

    private func updateReadiness() {
        let masters = slotMap.nodes
        let ready = life == .running && !masters.isEmpty && masters.allSatisfy { nodes[$0]?.connection.isReady == true }
        guard ready != isReady else { return }
        isReady = ready
        if ready { onReady?() }
    }

    // MARK: - Observers (RedisClusterSubscriber)

    /// `callback` runs after every slot map change or refresh; returns a token for
    /// ``removeObserver(_:)``.
    func addObserver(_ callback: @escaping () -> Void) -> Int {
        nextObserver += 1
        observers[nextObserver] = callback
        return nextObserver
    }

    func removeObserver(_ token: Int) {
        observers[token] = nil
    }

    private func notifyObservers() {
        for key in observers.keys.sorted() {
            observers[key]?()
        }
    }
}
