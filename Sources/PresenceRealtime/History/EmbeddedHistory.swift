import PresenceLoop
import PresenceOutbound
import Synchronization
import WSCore

/// Channel history and nonces in this process (embedded mode, and Redis mode while Redis is
/// unreachable). Per channel a ring of the last HISTORY_SIZE frames — the very bytes the members
/// were sent — with their offsets and times; 16 shards by channel, each behind its own lock. An
/// offset is assigned and its frame built and stored under the channel's shard lock, so the
/// frame a member gets and the frame a recovery replays are one object.
///
/// The epoch is this process's (`epochPrefix`) plus a per-channel generation: a channel whose
/// history expired (HISTORY_TTL without a message) starts again at offset 1 in a new epoch.
final class EmbeddedHistory: ChannelHistory, @unchecked Sendable {
    fileprivate struct Entry {
        var offset: Int64
        var atMillis: Int64
        var frame: SharedBytes
    }

    /// One channel's history.
    fileprivate final class Log: @unchecked Sendable {
        let epoch: String
        var latest: Int64 = 0
        var lastWriteMillis: Int64
        /// Swept (its channel was idle for HISTORY_TTL): a handle to it is stale.
        var retired = false
        /// The last `capacity` entries, offset N at `(N - 1) % capacity`; it grows with the
        /// channel's first messages, so a channel nobody writes to costs no ring (19,000 idle
        /// connections in 1,900 channels kept 12 MB of empty rings when they were made whole).
        private var ring: [Entry] = []
        private let capacity: Int

        init(epoch: String, capacity: Int, now: Int64) {
            self.epoch = epoch
            self.capacity = capacity
            lastWriteMillis = now
        }

        func entry(_ offset: Int64) -> Entry? {
            guard offset >= 1, capacity > 0 else { return nil }
            let index = Int((offset - 1) % Int64(capacity))
            guard index < ring.count, ring[index].offset == offset else { return nil }
            return ring[index]
        }

        /// Keeps `entry`, the channel's next offset, in place of the oldest once the ring is full.
        func store(_ entry: Entry) {
            guard capacity > 0, entry.offset >= 1 else { return }
            let index = Int((entry.offset - 1) % Int64(capacity))
            if index < ring.count {
                ring[index] = entry
            } else {
                if ring.isEmpty { ring.reserveCapacity(min(capacity, 8)) }
                ring.append(entry)
            }
        }
    }

    fileprivate struct NonceKey: Hashable {
        var channel: String
        var sender: String
        var nonce: String
    }

    fileprivate struct NonceRecord {
        var frame: SharedBytes
        var position: StreamPosition?
        var expiresMillis: Int64
    }

    fileprivate struct ShardState: @unchecked Sendable {
        var logs: [String: Log] = [:]
        var nonces: [NonceKey: NonceRecord] = [:]
        /// Nonces whose message was stored for chat-service, until when.
        var forwardClaims: [NonceKey: Int64] = [:]
    }

    /// One shard (a class: a lock cannot live in an array by value).
    fileprivate final class Shard: @unchecked Sendable {
        let state = Lock(ShardState())
    }

    let size: Int
    let ttlMillis: Int64
    let nonceWindowMillis: Int64
    /// Names this process's history (random per start).
    let epochPrefix: String
    private let shards: [Shard]
    private let generations = Atomic<Int>(0)
    private let nextSweep = Atomic<Int64>(0)

    var keepsMessages: Bool { size > 0 }

    init(size: Int, ttlMillis: Int64, nonceWindowMillis: Int64, epochPrefix: String = String(RequestID.make().prefix(12))) {
        self.size = size
        self.ttlMillis = ttlMillis
        self.nonceWindowMillis = nonceWindowMillis
        self.epochPrefix = epochPrefix
        shards = (0..<16).map { _ in Shard() }
    }

    private func shard(_ channel: String) -> Shard {
        var hasher = Hasher()
        hasher.combine(channel)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }

    /// A new channel log (under its shard's lock).
    private func newLog(now: Int64) -> Log {
        let generation = generations.add(1, ordering: .relaxed).newValue
        return Log(epoch: epochPrefix + "-" + String(generation), capacity: size, now: now)
    }

    func append(_ message: ChatMessage, publish: Bool, _ done: @escaping (HistoryAppend?) -> Void) {
        done(append(message, now: UnixTime.nowMillis()))
    }

    /// The synchronous `append`.
    func append(_ message: ChatMessage, now: Int64) -> HistoryAppend {
        var handle: Handle?
        return append(
            id: message.id, channel: message.channel, sender: message.sender, content: message.content,
            timestamp: message.timestamp, nonce: message.nonce, now: now, handle: &handle)
    }

    /// Where a channel's history is, kept by a loop's channel so that its messages find it without
    /// hashing the channel name (once for the shard, once for the table). A swept log is retired:
    /// the next message looks the channel up again.
    struct Handle {
        fileprivate let shard: Shard
        fileprivate let log: Log
    }

    /// `append` with the message's fields as they are (the message path of embedded mode: no
    /// struct of six strings copied on the way) and the channel's `handle`, filled in on first use.
    func append(
        id: String, channel: String, sender: String, content: String, timestamp: String, nonce: String?,
        now: Int64, handle: inout Handle?
    ) -> HistoryAppend {
        if size == 0 && nonce == nil {
            // Nothing to keep: no lock, no lookup.
            return HistoryAppend(
                frame: ServerMessage.message(
                    id: id, sender: sender, content: content, channel: channel,
                    timestamp: timestamp), position: nil, duplicate: false, published: false)
        }
        let shard = handle?.shard ?? self.shard(channel)
        let known = handle?.log
        var used: Log?
        let appended = shard.state.withLock { shard in
            let nonceKey = nonce.map { NonceKey(channel: channel, sender: sender, nonce: $0) }
            if let nonceKey, let seen = shard.nonces[nonceKey], seen.expiresMillis > now {
                return HistoryAppend(frame: seen.frame, position: seen.position, duplicate: true, published: false)
            }
            var log: Log?
            if size > 0 {
                if let known, !known.retired {
                    log = known
                } else if let existing = shard.logs[channel] {
                    log = existing
                } else {
                    log = newLog(now: now)
                    shard.logs[channel] = log
                }
                log!.latest += 1
                log!.lastWriteMillis = now
                used = log
            }
            let position = log.map { StreamPosition(offset: $0.latest, epoch: $0.epoch) }
            let frame = ServerMessage.message(
                id: id, sender: sender, content: content, channel: channel, timestamp: timestamp,
                nonce: nonce, position: position)
            if let log, let position {
                log.store(Entry(offset: position.offset, atMillis: now, frame: frame))
            }
            if let nonceKey {
                shard.nonces[nonceKey] = NonceRecord(frame: frame, position: position, expiresMillis: now + nonceWindowMillis)
            }
            return HistoryAppend(frame: frame, position: position, duplicate: false, published: false)
        }
        if let used, used !== known { handle = Handle(shard: shard, log: used) }
        return appended
    }

    func claimForward(channel: String, sender: String, nonce: String, _ done: @escaping (Bool) -> Void) {
        done(claimForward(channel: channel, sender: sender, nonce: nonce, now: UnixTime.nowMillis()))
    }

    /// The synchronous `claimForward`: a nonce this process stored a message for, or claimed.
    func claimForward(channel: String, sender: String, nonce: String, now: Int64) -> Bool {
        let key = NonceKey(channel: channel, sender: sender, nonce: nonce)
        return shard(channel).state.withLock { shard in
            if let seen = shard.nonces[key], seen.expiresMillis > now { return true }
            if let claimed = shard.forwardClaims[key], claimed > now { return true }
            shard.forwardClaims[key] = now + nonceWindowMillis
            return false
        }
    }

    func releaseForward(channel: String, sender: String, nonce: String) {
        let key = NonceKey(channel: channel, sender: sender, nonce: nonce)
        shard(channel).state.withLock { _ = $0.forwardClaims.removeValue(forKey: key) }
    }

    /// The message a (sender, nonce) produced in `channel` within NONCE_WINDOW, if any.
    func original(channel: String, sender: String, nonce: String, now: Int64 = UnixTime.nowMillis()) -> HistoryAppend? {
        shard(channel).state.withLock { shard in
            guard let seen = shard.nonces[NonceKey(channel: channel, sender: sender, nonce: nonce)], seen.expiresMillis > now else {
                return nil
            }
            return HistoryAppend(frame: seen.frame, position: seen.position, duplicate: true, published: false)
        }
    }

    func read(channel: String, since: StreamPosition?, _ done: @escaping (HistoryRead) -> Void) {
        done(read(channel: channel, since: since, now: UnixTime.nowMillis()))
    }

    /// The synchronous `read`.
    func read(channel: String, since: StreamPosition?, now: Int64) -> HistoryRead {
        guard size > 0 else { return HistoryRead(latest: nil, recovered: since == nil ? nil : false, frames: []) }
        return shard(channel).state.withLock { shard in
            let log = shard.logs[channel] ?? newLog(now: now)
            shard.logs[channel] = log
            let latest = StreamPosition(offset: log.latest, epoch: log.epoch)
            guard let since else { return HistoryRead(latest: latest, recovered: nil, frames: []) }
            guard since.epoch == log.epoch, since.offset <= log.latest else {
                return HistoryRead(latest: latest, recovered: false, frames: [])
            }
            var frames: [SharedBytes] = []
            frames.reserveCapacity(Int(log.latest - since.offset))
            var offset = since.offset + 1
            while offset <= log.latest {
                guard let entry = log.entry(offset), entry.atMillis > now - ttlMillis else {
                    return HistoryRead(latest: latest, recovered: false, frames: [])
                }
                frames.append(entry.frame)
                offset += 1
            }
            return HistoryRead(latest: latest, recovered: true, frames: frames)
        }
    }

    /// At most every 10 s: drops channels without a message for HISTORY_TTL (their next message
    /// starts a new epoch) and nonces past NONCE_WINDOW.
    func tick(nowMillis now: Int64) {
        guard now >= nextSweep.load(ordering: .relaxed) else { return }
        nextSweep.store(now + 10_000, ordering: .relaxed)
        for shard in shards {
            shard.state.withLock { shard in
                shard.logs = shard.logs.filter { _, log in
                    if log.lastWriteMillis > now - ttlMillis { return true }
                    log.retired = true
                    return false
                }
                shard.nonces = shard.nonces.filter { $0.value.expiresMillis > now }
                shard.forwardClaims = shard.forwardClaims.filter { $0.value > now }
            }
        }
    }

    /// Channels with a history now (for tests and metrics).
    var channelCount: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.logs.count } } }
}
