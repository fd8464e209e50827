/// A dedicated pub/sub connection: keeps the set of desired channels and makes the server's
/// subscriptions match it after every (re)connect.
///
/// ``subscribe(_:)`` and ``unsubscribe(_:)`` are idempotent and recorded even while
/// disconnected; on each ready it sends the whole set again (one `SUBSCRIBE` per 1000
/// channels). Subscription confirmations are consumed silently; messages for channels no longer
/// desired are dropped. With `sharded` it uses `SSUBSCRIBE`/`SUNSUBSCRIBE` (Redis 7 sharded
/// pub/sub, `smessage`). Built on ``RedisConnection`` in push mode: same handshake, timeouts and
/// backoff. On the host's thread only.
public final class RedisSubscriber {
    /// Channels per (S)SUBSCRIBE command when re-subscribing.
    public static let chunkSize = 1000

    /// True for sharded pub/sub (`SSUBSCRIBE`, `SPUBLISH` on the publishing side).
    public let sharded: Bool
    /// A message on a desired channel: channel name and payload bytes.
    public var onMessage: ((_ channel: String, _ payload: [UInt8]) -> Void)?
    /// Called after each (re)connect, once the re-subscription commands are written.
    public var onReady: (() -> Void)?
    /// Called when the connection is lost or an attempt fails (see ``RedisConnection/onDown``).
    public var onDown: ((RedisError) -> Void)?
    /// The server refused a (S)SUBSCRIBE/(S)UNSUBSCRIBE (e.g. `NOPERM` from an ACL); the
    /// channels stay desired and are asked for again after the next reconnect.
    public var onError: ((RedisError) -> Void)?
    /// The desired channels.
    public private(set) var channels: Set<String> = []

    private static let message = Array("message".utf8)
    private static let smessage = Array("smessage".utf8)
    private static let pmessage = Array("pmessage".utf8)

    /// Cluster mode (``RedisClusterSubscriber``): one (S)(UN)SUBSCRIBE per hash slot, since a
    /// cluster node refuses channels of different slots in one command (`CROSSSLOT`).
    var groupsBySlot = false
    /// Cluster mode: the server dropped a desired channel by itself (a `sunsubscribe` push when
    /// the channel's slot moved to another node). The channel is still in ``channels``.
    var onServerUnsubscribe: ((String) -> Void)?

    private static let sunsubscribe = Array("sunsubscribe".utf8)

    private let connection: RedisConnection
    private let subscribeName: String
    private let unsubscribeName: String
    private let subscribeKind: [UInt8]
    private let unsubscribeKind: [UInt8]

    /// A subscriber that does nothing until ``start()``.
    public init(endpoint: RedisEndpoint, host: RedisHost, options: RedisOptions = RedisOptions(), sharded: Bool = false) {
        self.sharded = sharded
        subscribeName = sharded ? "SSUBSCRIBE" : "SUBSCRIBE"
        unsubscribeName = sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE"
        subscribeKind = Array(subscribeName.lowercased().utf8)
        unsubscribeKind = Array(unsubscribeName.lowercased().utf8)
        connection = RedisConnection(endpoint: endpoint, host: host, options: options)
        connection.pushHandler = { [weak self] value in self?.push(value) }
        connection.onReady = { [weak self] in
            guard let self else { return }
            self.send(self.subscribeName, self.subscribeKind, Array(self.channels))
            self.onReady?()
        }
        connection.onDown = { [weak self] error in self?.onDown?(error) }
    }

    public var endpoint: RedisEndpoint { connection.endpoint }
    /// True when connected and (re)subscription commands can be sent.
    public var isReady: Bool { connection.isReady }
    /// The underlying connection's counters.
    public var stats: RedisStats { connection.stats }

    /// Starts connecting.
    public func start() { connection.start() }

    /// Closes the connection for good.
    public func shutdown() { connection.shutdown() }

    /// Adds a channel to the desired set; subscribes at once when ready.
    public func subscribe(_ channel: String) {
        subscribe(contentsOf: CollectionOfOne(channel))
    }

    /// Adds channels to the desired set; subscribes to the new ones at once when ready.
    public func subscribe<S: Sequence>(contentsOf channels: S) where S.Element == String {
        var added: [String] = []
        for channel in channels where self.channels.insert(channel).inserted { added.append(channel) }
        send(subscribeName, subscribeKind, added)
    }

    /// Removes a channel from the desired set; unsubscribes at once when ready.
    public func unsubscribe(_ channel: String) {
        unsubscribe(contentsOf: CollectionOfOne(channel))
    }

    /// Removes channels from the desired set; unsubscribes at once when ready.
    public func unsubscribe<S: Sequence>(contentsOf channels: S) where S.Element == String {
        var removed: [String] = []
        for channel in channels where self.channels.remove(channel) != nil { removed.append(channel) }
        send(unsubscribeName, unsubscribeKind, removed)
    }

    /// See ``RedisSubscribing/whenSubscribed(_:_:)``: replies come in order, so the `PING`'s
    /// answer follows the (S)SUBSCRIBE's confirmation.
    public func whenSubscribed(_ channel: String, _ done: @escaping (Bool) -> Void) {
        guard channels.contains(channel), connection.isReady else { return done(false) }
        ping { result in
            if case .success = result { done(true) } else { done(false) }
        }
    }

    /// Removes a channel from the desired set without telling the server (which no longer serves
    /// it: its slot moved). For ``RedisClusterSubscriber``.
    func forget(_ channel: String) {
        channels.remove(channel)
    }

    /// Sends `PING` on the subscriber connection (allowed in subscribed state; the reply is
    /// `["pong", ""]` while subscribed, `PONG` otherwise).
    public func ping(_ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        connection.send(RedisCommand("PING"), completion)
    }

    private func send(_ name: String, _ kind: [UInt8], _ channels: [String]) {
        guard connection.isReady, !channels.isEmpty else { return }
        if groupsBySlot {
            var bySlot: [Int: [String]] = [:]
            for channel in channels { bySlot[RedisCluster.keySlot(channel), default: []].append(channel) }
            for slot in bySlot.keys.sorted() { sendChunks(name, kind, bySlot[slot]!) }
        } else {
            sendChunks(name, kind, channels)
        }
    }

    private func sendChunks(_ name: String, _ kind: [UInt8], _ channels: [String]) {
        var start = 0
        while start < channels.count {
            let end = min(channels.count, start + Self.chunkSize)
            var args = [name]
            args.append(contentsOf: channels[start..<end])
            connection.sendSubscription(RedisCommand(args), confirmations: kind, count: end - start) { [weak self] error in
                self?.onError?(error)
            }
            start = end
        }
    }

    private func push(_ value: RedisValue) {
        guard case .array(let items) = value, case .bulk(let kind) = items[0] else { return }
        // message/smessage: [kind, channel, payload]; pmessage: [kind, pattern, channel, payload].
        let channelIndex: Int
        if kind == Self.message || kind == Self.smessage {
            channelIndex = 1
        } else if kind == Self.pmessage {
            channelIndex = 2
        } else {
            // An unsolicited confirmation: nothing to do on a single node; in a cluster a
            // `sunsubscribe` means the channel's slot moved away from this node.
            if kind == Self.sunsubscribe, let onServerUnsubscribe, items.count >= 2,
                case .bulk(let channelBytes) = items[1]
            {
                let channel = String(decoding: channelBytes, as: UTF8.self)
                if channels.contains(channel) { onServerUnsubscribe(channel) }
            }
            return
        }
        guard items.count > channelIndex + 1,
            case .bulk(let channelBytes) = items[channelIndex],
            case .bulk(let payload) = items[channelIndex + 1]
        else { return }
        let channel = String(decoding: channelBytes, as: UTF8.self)
        guard channels.contains(channel) else { return }
        onMessage?(channel, payload)
    }
}
