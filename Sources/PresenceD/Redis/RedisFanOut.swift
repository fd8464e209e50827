import Synchronization
import RedisShim
import WSCore

/// Cross-instance fan-out through Redis pub/sub (CONTRACT §6): every channel event is published
/// once — the WebSocket frame already encoded, in a small envelope naming the instance it came
/// from — on `presenced:{channel}` (sharded `SPUBLISH` where the server has it), and this
/// instance subscribes to a channel while any of its loops has members there. Its own
/// publications are skipped on the way back: local members got them without a Redis round trip.
///
/// Envelope: version (1), instance id (16 bytes), flags (bit 0 droppable, bit 1 except-user),
/// except-user length (2 bytes, big-endian) and bytes, then the frame.
final class RedisFanOut: @unchecked Sendable {
    let instanceID: [UInt8]
    /// Each loop's command connection, written at its registration (loops register concurrently).
    private let publishers: LoopSlots<(any RedisCommanding)?>
    /// channel → number of this instance's loops with members there, and loop 0's mailbox once
    /// the subscriber runs there.
    private let active = Lock<(channels: [String: Int], subscriberLoop: Mailbox?)>(([:], nil))
    /// SPUBLISH (true) or PUBLISH; set from the server's version by each loop as it registers
    /// (the same value from all; atomic, as the loops register while others already publish).
    var sharded: Bool { shardedPubSub.load(ordering: .relaxed) }
    private let shardedPubSub = Atomic<Bool>(true)
    /// The subscription connection; lives on loop 0 (`start`), touched on its thread only.
    private var subscriber: (any RedisSubscribing)?
    /// Delivers a frame from another instance to this instance's members (set by the hub).
    var deliver: ((_ channel: String, _ frame: SharedBytes, _ exceptUser: String?, _ droppable: Bool) -> Void)?

    init(instanceID: [UInt8], loops: Int) {
        precondition(instanceID.count == 16)
        self.instanceID = instanceID
        publishers = LoopSlots(count: loops, initial: nil)
    }

    static func pubsubChannel(_ channel: String) -> String { "presenced:{" + channel + "}" }

    /// Called on each loop's thread once the server is known (`sharded` is the same for all).
    func register(loop: EventLoop, redis: any RedisCommanding, sharded: Bool) {
        shardedPubSub.store(sharded, ordering: .relaxed)
        publishers[loop.index] = redis
    }

    /// On loop 0's thread: takes the subscriber, subscribes every channel active so far.
    func start(subscriber: any RedisSubscribing, on loop: EventLoop) {
        self.subscriber = subscriber
        subscriber.onMessage = { [unowned self] name, payload in self.received(name, payload) }
        let channels = active.withLock { state -> [String] in
            state.subscriberLoop = loop.mailbox
            return Array(state.channels.keys)
        }
        for channel in channels { subscriber.subscribe(Self.pubsubChannel(channel)) }
        subscriber.start()
    }

    /// A loop got its first member in `channel` (from any loop's thread).
    func activate(_ channel: String) {
        active.withLock { state in
            state.channels[channel, default: 0] += 1
            // Posted under the lock: (un)subscriptions reach loop 0 in the order of the counts.
            if state.channels[channel] == 1, let mailbox = state.subscriberLoop {
                onSubscriberLoop(mailbox) { $0.subscribe(Self.pubsubChannel(channel)) }
            }
        }
    }

    /// A loop lost its last member in `channel`.
    func deactivate(_ channel: String) {
        active.withLock { state in
            guard let n = state.channels[channel] else { return }
            state.channels[channel] = n > 1 ? n - 1 : nil
            if n == 1, let mailbox = state.subscriberLoop {
                onSubscriberLoop(mailbox) { $0.unsubscribe(Self.pubsubChannel(channel)) }
            }
        }
    }

    /// Runs `body` with the subscriber on its loop. Before `start`, nothing: it subscribes what is active then.
    private func onSubscriberLoop(_ mailbox: Mailbox, _ body: @escaping (any RedisSubscribing) -> Void) {
        let work = UnsafeSendable(body)
        mailbox.post { [unowned self] _ in
            if let subscriber = self.subscriber { work.value(subscriber) }
        }
    }

    /// On the calling loop: publishes one event for the other instances.
    func publish(channel: String, frame: SharedBytes, exceptUser: String?, droppable: Bool) {
        guard let loop = EventLoop.current, let redis = publishers[loop.index], redis.isReady else { return }
        let except = exceptUser.map { Array($0.utf8) } ?? []
        var envelope: [UInt8] = []
        envelope.reserveCapacity(20 + except.count + frame.count)
        envelope.append(1)
        envelope += instanceID
        envelope.append((droppable ? 1 : 0) | (exceptUser != nil ? 2 : 0))
        envelope.append(UInt8(truncatingIfNeeded: except.count >> 8))
        envelope.append(UInt8(truncatingIfNeeded: except.count))
        envelope += except
        frame.withBytes { envelope += $0 }
        let name = Self.pubsubChannel(channel)
        let command = RedisCommand(arguments: [Array((sharded ? "SPUBLISH" : "PUBLISH").utf8), Array(name.utf8), envelope])
        redis.send(command, routingKey: name) { _ in }
    }

    /// On loop 0: one message from Redis.
    private func received(_ name: String, _ payload: [UInt8]) {
        guard name.hasPrefix("presenced:{"), name.hasSuffix("}") else { return }
        guard payload.count >= 20, payload[0] == 1 else { return }
        if payload[1...16].elementsEqual(instanceID) { return } // ours: delivered locally already
        let flags = payload[17]
        let exceptLength = Int(payload[18]) << 8 | Int(payload[19])
        guard payload.count >= 20 + exceptLength else { return }
        let exceptUser = flags & 2 != 0 ? String(decoding: payload[20..<(20 + exceptLength)], as: UTF8.self) : nil
        let frame = SharedBytes.copying(payload[(20 + exceptLength)...])
        let channel = String(name.dropFirst("presenced:{".count).dropLast())
        deliver?(channel, frame, exceptUser, flags & 1 != 0)
    }
}
