import PresenceLoop
import RedisShim
import Synchronization
import WSCore

/// Cross-instance fan-out through Redis pub/sub (docs/operations.md, "Scaling out"): every channel
/// event is published once — the WebSocket frame already encoded, in a small envelope naming the
/// instance it came from — on `presenced:{channel}` (sharded `SPUBLISH` where the server has it),
/// and this instance subscribes to a channel while any of its loops has members there. Its own
/// publications are skipped on the way back: local members got them without a Redis round trip.
///
/// A join waits for its channel's subscription (`whenSubscribed`): the server must have taken
/// the (S)SUBSCRIBE before the joiner's presence snapshot is read, or an event published by
/// another instance in between would reach neither the snapshot nor the joiner.
///
/// Envelope: version (1), instance id (16 bytes), flags (bit 0 droppable, bit 1 except-user),
/// except-user length (2 bytes, big-endian) and bytes, then the frame. Chat messages published
/// by the history script (`HistoryScripts.append`) use version 2: the instance id as 32 hex
/// digits (script arguments are text), and after the except-user a one-byte length and the
/// message's position as `<offset> <epoch>` (empty without history).
final class RedisFanOut: @unchecked Sendable {
    let instanceID: [UInt8]
    /// `instanceID` in hex (version 2 envelopes).
    let instanceHex: String
    /// `instanceHex` as bytes, to recognise this instance's own version 2 envelopes.
    private let instanceHexBytes: [UInt8]
    /// The start of a version 2 envelope from this instance, up to the position's length byte:
    /// version, instance hex, no flags, no except-user.
    var envelopeHead: String { "\u{02}" + instanceHex + "\u{00}\u{00}\u{00}" }
    /// Each loop's command connection, written at its registration (loops register concurrently).
    private let publishers: LoopSlots<(any RedisCommanding)?>
    /// A join waiting for its channel's subscription: its loop's mailbox and what to run there.
    private typealias Waiting = (mailbox: Mailbox, ready: UnsafeSendable<() -> Void>)
    /// A channel this instance subscribes to.
    private struct ActiveChannel {
        /// Tells this activation from an earlier one of the same channel (a late answer).
        var epoch: UInt64
        /// This instance's loops with members there.
        var loops = 0
        /// The server confirmed the subscription since the subscriber last connected.
        var subscribed = false
        /// A confirmation is being asked for.
        var confirming = false
        var waiting: [Waiting] = []
    }
    /// The active channels, and loop 0's mailbox once the subscriber runs there.
    private struct ActiveState {
        var channels: [String: ActiveChannel] = [:]
        var subscriberLoop: Mailbox?
        var epochs: UInt64 = 0
    }
    private let active = Lock(ActiveState())
    /// SPUBLISH (true) or PUBLISH; set from the server's version by each loop as it registers
    /// (the same value from all; atomic, as the loops register while others already publish).
    var sharded: Bool { shardedPubSub.load(ordering: .relaxed) }
    private let shardedPubSub = Atomic<Bool>(true)
    /// The subscription connection; lives on loop 0 (`start`), touched on its thread only.
    private var subscriber: (any RedisSubscribing)?
    /// Delivers a frame from another instance to this instance's members (set by the hub).
    var deliver:
        (
            (
                _ channel: String, _ frame: SharedBytes, _ exceptUser: String?, _ droppable: Bool,
                _ position: StreamPosition?
            ) -> Void
        )?
    /// Receives a control message another instance published (`publishControl`), on loop 0.
    var control: ((_ message: [UInt8]) -> Void)?
    /// The pseudo-channel of control messages (revocations): its `!` is outside every channel id.
    static let controlChannel = "!control"

    init(instanceID: [UInt8], loops: Int) {
        precondition(instanceID.count == 16)
        self.instanceID = instanceID
        instanceHex = instanceID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        instanceHexBytes = Array(instanceHex.utf8)
        publishers = LoopSlots(count: loops, initial: nil)
        // Every instance listens for control messages for as long as it runs.
        activate(Self.controlChannel)
    }

    /// On the calling loop: a control message for every other instance (a revocation). Lost
    /// while Redis is unreachable, like any event.
    func publishControl(_ message: [UInt8]) {
        publish(channel: Self.controlChannel, frame: SharedBytes.copying(message), exceptUser: nil, droppable: false)
    }

    static func pubsubChannel(_ channel: String) -> String { pubsubPrefix + channel + "}" }
    /// A channel's pub/sub name up to the channel id.
    static let pubsubPrefix = "presenced:{"

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
        // Joins never wait for a subscriber that is not connected (an outage serves from
        // memory), and after it reconnects every channel is confirmed again.
        subscriber.onDown = { [unowned self, previous = subscriber.onDown] error in
            previous?(error)
            self.subscriberLost()
        }
    }

    /// A loop got its first member in `channel` (from any loop's thread).
    func activate(_ channel: String) {
        active.withLock { state in
            if state.channels[channel] == nil {
                state.epochs += 1
                state.channels[channel] = ActiveChannel(epoch: state.epochs)
            }
            state.channels[channel]!.loops += 1
            // Posted under the lock: (un)subscriptions reach loop 0 in the order of the counts.
            if state.channels[channel]!.loops == 1, let mailbox = state.subscriberLoop {
                onSubscriberLoop(mailbox) { $0.subscribe(Self.pubsubChannel(channel)) }
            }
        }
    }

    /// On `loop`'s thread, for a join in an active `channel`: runs `ready` there at once when the
    /// subscription is confirmed (or cannot be: no subscriber yet, Redis unreachable), otherwise
    /// once the server has confirmed it.
    func whenSubscribed(_ channel: String, on loop: EventLoop, _ ready: @escaping () -> Void) {
        enum Next { case now, later, ask(Mailbox, epoch: UInt64) }
        let next = active.withLock { state -> Next in
            guard let mailbox = state.subscriberLoop, var entry = state.channels[channel], !entry.subscribed else { return .now }
            entry.waiting.append((loop.mailbox, UnsafeSendable(ready)))
            let asking = entry.confirming
            entry.confirming = true
            state.channels[channel] = entry
            return asking ? .later : .ask(mailbox, epoch: entry.epoch)
        }
        switch next {
        case .now: ready()
        case .later: break  // a confirmation is already on its way
        case .ask(let mailbox, let epoch):
            // Behind the SUBSCRIBE that `activate` posted to the same mailbox.
            onSubscriberLoop(mailbox) { [unowned self] subscriber in
                subscriber.whenSubscribed(Self.pubsubChannel(channel)) { ok in self.confirmed(channel, epoch: epoch, ok) }
            }
        }
    }

    /// The answer for `channel`'s activation `epoch`: its waiting joins go on, on their loops.
    private func confirmed(_ channel: String, epoch: UInt64, _ subscribed: Bool) {
        let waiting = active.withLock { state -> [Waiting] in
            guard var entry = state.channels[channel], entry.epoch == epoch else { return [] }
            let waiting = entry.waiting
            entry.waiting = []
            entry.confirming = false
            entry.subscribed = subscribed
            state.channels[channel] = entry
            return waiting
        }
        Self.release(waiting)
    }

    /// The subscriber went down: every waiting join goes on (served from memory meanwhile), and
    /// no channel counts as subscribed until confirmed after the reconnect.
    private func subscriberLost() {
        let waiting = active.withLock { state -> [Waiting] in
            var all: [Waiting] = []
            for (channel, var entry) in state.channels where entry.subscribed || !entry.waiting.isEmpty {
                all += entry.waiting
                entry.waiting = []
                entry.subscribed = false
                state.channels[channel] = entry
            }
            return all
        }
        Self.release(waiting)
    }

    private static func release(_ waiting: [Waiting]) {
        for join in waiting { join.mailbox.post { _ in join.ready.value() } }
    }

    /// A loop lost its last member in `channel`.
    func deactivate(_ channel: String) {
        let released = active.withLock { state -> [Waiting] in
            guard var entry = state.channels[channel] else { return [] }
            entry.loops -= 1
            guard entry.loops == 0 else {
                state.channels[channel] = entry
                return []
            }
            state.channels[channel] = nil
            if let mailbox = state.subscriberLoop {
                onSubscriberLoop(mailbox) { $0.unsubscribe(Self.pubsubChannel(channel)) }
            }
            return entry.waiting
        }
        // Joins still waiting there left already; they find that out on their loops.
        Self.release(released)
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
        guard name.hasPrefix("presenced:{"), name.hasSuffix("}"), let first = payload.first else { return }
        let idLength = first == 2 ? 32 : 16
        guard first == 1 || first == 2, payload.count >= 4 + idLength else { return }
        let idEnd = 1 + idLength
        // Ours: delivered locally already.
        if first == 1 ? payload[1..<idEnd].elementsEqual(instanceID) : payload[1..<idEnd].elementsEqual(instanceHexBytes) { return }
        let flags = payload[idEnd]
        let exceptLength = Int(payload[idEnd + 1]) << 8 | Int(payload[idEnd + 2])
        var at = idEnd + 3
        guard payload.count >= at + exceptLength else { return }
        let exceptUser = flags & 2 != 0 ? String(decoding: payload[at..<(at + exceptLength)], as: UTF8.self) : nil
        at += exceptLength
        var position: StreamPosition?
        if first == 2 {
            guard payload.count > at else { return }
            let length = Int(payload[at])
            at += 1
            guard payload.count >= at + length else { return }
            if length > 0 {
                let text = payload[at..<(at + length)].split(separator: UInt8(ascii: " "), maxSplits: 1)
                guard text.count == 2, let offset = Int64(String(decoding: text[0], as: UTF8.self)) else { return }
                position = StreamPosition(offset: offset, epoch: String(decoding: text[1], as: UTF8.self))
            }
            at += length
        }
        let channel = String(name.dropFirst("presenced:{".count).dropLast())
        if channel == Self.controlChannel {
            control?(Array(payload[at...]))
            return
        }
        deliver?(channel, SharedBytes.copying(payload[at...]), exceptUser, flags & 1 != 0, position)
    }
}
