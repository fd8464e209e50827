import PresenceLoop
import RedisShim
import Synchronization
import WSCore

/// Channel history and nonces in Redis, shared by every instance (layout and scripts in
/// `HistoryScripts`): one offset sequence per channel across instances and across presenced
/// restarts. A chat message costs one script call — offset, stored frame, nonce, and the publish
/// to the other instances — on the sending loop's own connection.
///
/// While that connection is down, `fallback` (this process's memory, with an epoch of its own)
/// takes the messages: local fan-out and local recovery go on, and a recovery across the outage
/// answers `recovered:false` because the epochs differ.
final class RedisHistory: ChannelHistory, @unchecked Sendable {
    let size: Int
    let ttlMillis: Int64
    let nonceWindowMillis: Int64
    let fallback: EmbeddedHistory
    /// The append script's last arguments, the same for every message of this instance: size,
    /// ttl, nonce window, envelope head (`RedisFanOut.envelopeHead`), then PUBLISH (index 0) or
    /// SPUBLISH (index 1).
    private let appendConstants: [RedisCommand]
    private let fanOut: RedisFanOut
    /// Each loop's command connection, written at its registration.
    private let connections: LoopSlots<(any RedisCommanding)?>
    /// Candidate epochs: 8 hex digits of this instance's id, a dot, a counter.
    private let epochPrefix: String
    private let epochCounter = Atomic<Int>(0)

    var keepsMessages: Bool { size > 0 }

    init(size: Int, ttlMillis: Int64, nonceWindowMillis: Int64, loops: Int, fanOut: RedisFanOut) {
        self.size = size
        self.ttlMillis = ttlMillis
        self.nonceWindowMillis = nonceWindowMillis
        self.fanOut = fanOut
        appendConstants = ["PUBLISH", "SPUBLISH"].map { publish in
            RedisCommand(String(size), String(ttlMillis), String(nonceWindowMillis), fanOut.envelopeHead, publish)
        }
        fallback = EmbeddedHistory(
            size: size, ttlMillis: ttlMillis, nonceWindowMillis: nonceWindowMillis,
            epochPrefix: "local-" + String(fanOut.instanceHex.prefix(12)))
        connections = LoopSlots(count: loops, initial: nil)
        epochPrefix = String(fanOut.instanceHex.prefix(8)) + "."
    }

    /// On the loop's thread once its command connection exists.
    func register(loop: EventLoop, redis: any RedisCommanding) {
        connections[loop.index] = redis
        let previous = redis.onReady
        redis.onReady = { [unowned redis] in
            previous?()
            for script in HistoryScripts.all {
                redis.send(RedisCommand("SCRIPT", "LOAD", script.source), routingKey: nil) { _ in }
            }
        }
    }

    private var current: (any RedisCommanding)? {
        guard let loop = EventLoop.current, let redis = connections[loop.index], redis.isReady else { return nil }
        return redis
    }

    func append(_ message: ChatMessage, publish: Bool, _ done: @escaping (HistoryAppend?) -> Void) {
        guard let redis = current else { return done(fallback.append(message, now: UnixTime.nowMillis())) }
        let now = UnixTime.nowMillis()
        let text = ServerMessage.messageText(
            id: message.id, sender: message.sender, content: message.content, channel: message.channel,
            timestamp: message.timestamp, nonce: message.nonce, withOffset: size > 0)
        var command = HistoryScripts.command(
            HistoryScripts.appendHead, channel: message.channel, sender: message.sender,
            nonce: message.nonce, argumentBytes: text.count + 192)
        command.append(bytes: text)
        command.append(nextEpochCandidate(), after: epochPrefix)
        command.append(now)
        if publish { command.append(joining: RedisFanOut.pubsubPrefix, message.channel, "}") } else { command.append("") }
        command.append(message.nonce == nil ? "0" : "1")
        command.append(contentsOf: appendConstants[fanOut.sharded ? 1 : 0])
        redis.evalScript(HistoryScripts.append, command: command, routingKey: HistoryScripts.routingKey(channel: message.channel)) {
            [fallback, size] result in
            guard case .success(.array(let items)) = result, let fresh = items.first?.int, items.count >= 2 else {
                // Redis did not take it: this process's history (its own epoch), local fan-out only.
                return done(fallback.append(message, now: UnixTime.nowMillis()))
            }
            if fresh == 0, let frame = items[1].bytes {
                return done(
                    HistoryAppend(
                        frame: SharedBytes.copying(frame), position: Self.position(inFrame: frame),
                        duplicate: true, published: false))
            }
            var position: StreamPosition?
            if items.count >= 3, let offset = items[1].int, offset > 0, let epoch = items[2].string {
                position = StreamPosition(offset: offset, epoch: epoch)
            }
            guard (position != nil) == (size > 0) else { return done(fallback.append(message, now: UnixTime.nowMillis())) }
            done(
                HistoryAppend(
                    frame: ServerMessage.message(text: text, position: position), position: position,
                    duplicate: false, published: publish))
        }
    }

    func read(channel: String, since: StreamPosition?, _ done: @escaping (HistoryRead) -> Void) {
        guard size > 0 else { return done(HistoryRead(latest: nil, recovered: since == nil ? nil : false, frames: [])) }
        guard let redis = current else { return fallback.read(channel: channel, since: since, done) }
        var command = HistoryScripts.command(HistoryScripts.readHead, channel: channel)
        command.append(since.map { String($0.offset) } ?? "-1")
        command.append(since?.epoch ?? "")
        command.append(UnixTime.nowMillis())
        command.append(ttlMillis)
        command.append(nextEpochCandidate(), after: epochPrefix)
        redis.evalScript(HistoryScripts.read, command: command, routingKey: HistoryScripts.routingKey(channel: channel)) {
            [fallback] result in
            guard case .success(.array(let items)) = result, items.count >= 2, let latest = items[0].int,
                let epoch = items[1].string
            else {
                return fallback.read(channel: channel, since: since, done)
            }
            let position = StreamPosition(offset: latest, epoch: epoch)
            guard since != nil else { return done(HistoryRead(latest: position, recovered: nil, frames: [])) }
            guard items.count >= 4, items[2].int == 1, let list = items[3].array else {
                return done(HistoryRead(latest: position, recovered: false, frames: []))
            }
            done(HistoryRead(latest: position, recovered: true, frames: list.compactMap { $0.bytes.map(SharedBytes.copying) }))
        }
    }

    func tick(nowMillis: Int64) { fallback.tick(nowMillis: nowMillis) }

    func releaseForward(channel: String, sender: String, nonce: String) {
        fallback.releaseForward(channel: channel, sender: sender, nonce: nonce)
        guard let redis = current else { return }
        let key = Self.forwardKey(channel: channel, sender: sender, nonce: nonce)
        redis.send(RedisCommand("DEL", key), routingKey: key) { _ in }
    }

    static func forwardKey(channel: String, sender: String, nonce: String) -> String {
        "presenced:history:{" + channel + "}:forwarded:" + sender + "\u{1F}" + nonce
    }

    /// `SET … NX PX` on the nonce's forward key (in the channel's slot); while Redis cannot
    /// answer, this process's memory decides.
    func claimForward(channel: String, sender: String, nonce: String, _ done: @escaping (Bool) -> Void) {
        let now = UnixTime.nowMillis()
        guard let redis = current else { return done(fallback.claimForward(channel: channel, sender: sender, nonce: nonce, now: now)) }
        let key = Self.forwardKey(channel: channel, sender: sender, nonce: nonce)
        redis.send(RedisCommand("SET", key, "1", "NX", "PX", String(nonceWindowMillis)), routingKey: key) { [fallback] result in
            switch result {
            case .success(.null): done(true)
            case .success: done(false)
            case .failure: done(fallback.claimForward(channel: channel, sender: sender, nonce: nonce, now: now))
            }
        }
    }

    /// A fresh epoch for a channel that has none yet (Redis keeps the first one it is given) is
    /// `epochPrefix` (this instance's random id) and this counter: unique without a random draw
    /// per message.
    private func nextEpochCandidate() -> Int64 {
        Int64(epochCounter.add(1, ordering: .relaxed).newValue)
    }

    /// The offset and epoch at the end of a message frame's JSON (`…,"offset":N,"epoch":"E"}`),
    /// for a nonce's original as Redis kept it.
    static func position(inFrame frame: [UInt8]) -> StreamPosition? {
        let marker = Array(#","offset":"#.utf8)
        guard frame.count > marker.count else { return nil }
        var at = frame.count - marker.count
        while at >= 0 && !frame[at..<(at + marker.count)].elementsEqual(marker) { at -= 1 }
        guard at >= 0 else { return nil }
        let rest = frame[(at + marker.count)...]
        guard let comma = rest.firstIndex(of: UInt8(ascii: ",")),
            let offset = Int64(String(decoding: rest[..<comma], as: UTF8.self))
        else { return nil }
        let tail = String(decoding: rest[comma...], as: UTF8.self)
        let head = #","epoch":""#
        guard tail.hasPrefix(head), tail.hasSuffix("\"}") else { return nil }
        return StreamPosition(offset: offset, epoch: String(tail.dropFirst(head.count).dropLast(2)))
    }
}
