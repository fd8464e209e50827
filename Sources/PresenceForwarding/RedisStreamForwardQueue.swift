import PresenceLoop
import RedisShim

/// Redis mode's durable forward queue: one Redis Stream shared by every instance, read through a
/// consumer group; one queue object per loop (consumer name = instance id + loop).
///
/// Keys (one hash tag, so one cluster slot; `keyPrefix` defaults to `presenced:{forward}`):
/// - `<prefix>`: the stream; fields `v id channel sender content created_at request_id
///   traceparent`. Appends check `XLEN` against `maxEntries` and `XADD` in one script: at the
///   bound the append is refused (`.full`), never trimmed.
/// - `<prefix>:attempts`: hash stream id → failed attempts.
/// - `<prefix>:dead`: dead letters, the entry's fields plus `reason`, `at` (Unix ms), `attempts`.
/// - `<prefix>:reader`: the reader lease (``Options/exclusiveReader``).
/// - `<prefix>:writer:<consumer>`: the message id this consumer appended last, written by the
///   same script as the entry (``Options/writerMarkMillis``). When a connection drops with
///   appends in flight, Redis ran some first part of them, in order; this mark tells which
///   (``lastAppended(_:)``), so an instance that kept them locally meanwhile
///   (``BufferedStreamForwardQueue``) adds the others and not one of them twice.
///
/// Reading: `peek` runs one script that `XAUTOCLAIM`s entries idle longer than
/// ``Options/claimIdleMillis`` (their consumer crashed) and `XREADGROUP`s new ones; entries
/// handed to this consumer are *held* locally (they are in its pending list in Redis) and
/// returned by `peek` until acknowledged (`XACK` + `XDEL`) or dead-lettered. ``tick()`` resets
/// the idle time of held entries (`XCLAIM … JUSTID` to itself) so a live consumer keeps them.
///
/// Order: entries are handed out in stream (`XADD`) order and a consumer's held entries are
/// kept in stream order, claimed ones included. With ``Options/exclusiveReader`` (the default)
/// only the holder of the reader lease reads, so with the forwarder's one-in-flight-per-channel
/// rule each channel's messages reach chat-service in stream order across every instance; a
/// new reader takes over after the lease and the idle time pass (a crashed reader's entries are
/// then re-sent, at least once). Without it every consumer reads and two messages of one channel
/// held by two consumers can be delivered in either order.
///
/// Needs Redis ≥ 6.2 (`XAUTOCLAIM`, exclusive `XRANGE` bounds). Durability is Redis' own:
/// configure AOF (`appendonly yes`) or replicas, or a Redis restart loses waiting entries.
package final class RedisStreamForwardQueue: ForwardQueue {
    package struct Options: Sendable, Equatable {
        var keyPrefix = "presenced:{forward}"
        var group = "presenced"
        /// At most this many entries in the stream; `append` answers `.full` beyond.
        package var maxEntries = 100_000
        /// An entry its consumer has not touched for this long is taken over by another
        /// consumer; also the reader lease's duration.
        var claimIdleMillis: Int64 = 15_000
        /// Only the holder of the reader lease reads (strict per-channel order across instances).
        var exclusiveReader = true
        /// At most this many entries held by this consumer at once.
        var maxHeld = 1000
        /// How long the writer mark (the last message id this consumer appended) outlives its
        /// last append; 0 = no mark. A day: far longer than any outage it has to span.
        var writerMarkMillis: Int64 = 86_400_000

        package init(
            keyPrefix: String = "presenced:{forward}", group: String = "presenced", maxEntries: Int = 100_000,
            claimIdleMillis: Int64 = 15_000, exclusiveReader: Bool = true, maxHeld: Int = 1000,
            writerMarkMillis: Int64 = 86_400_000
        ) {
            self.keyPrefix = keyPrefix
            self.group = group
            self.maxEntries = maxEntries
            self.claimIdleMillis = claimIdleMillis
            self.exclusiveReader = exclusiveReader
            self.maxHeld = maxHeld
            self.writerMarkMillis = writerMarkMillis
        }

        /// How often the reader's upkeep runs: a third of the idle time, so held entries and the
        /// lease are renewed well before anyone may take them.
        var tickIntervalMillis: Int64 { max(100, claimIdleMillis / 3) }
    }

    package let redis: any RedisCommanding
    package let consumer: String
    package let options: Options
    let streamKey: String
    let deadKey: String
    let attemptsKey: String
    let readerKey: String
    /// This consumer's writer mark.
    let writerKey: String

    /// A stream entry id (`<ms>-<seq>`).
    struct StreamID: Hashable, Comparable {
        var millis: UInt64
        var sequence: UInt64
        init?(_ text: String) {
            let parts = text.split(separator: "-")
            guard parts.count == 2, let m = UInt64(parts[0]), let s = UInt64(parts[1]) else { return nil }
            millis = m
            sequence = s
        }
        var text: String { "\(millis)-\(sequence)" }
        package static func < (a: StreamID, b: StreamID) -> Bool { (a.millis, a.sequence) < (b.millis, b.sequence) }
    }

    private struct Held {
        var streamID: StreamID
        var entry: ForwardEntry
    }

    /// Entries handed to this consumer, in stream order.
    private var held: [Held] = []
    private var heldIDs: [String: StreamID] = [:]
    /// Held entries whose ack or move is in flight: not handed out again meanwhile.
    private var settling: Set<StreamID> = []
    /// Removed while a fetch was in flight (a late fetch answer must not bring them back).
    private var removedDuringFetch: Set<StreamID> = []
    /// Delivered to chat-service, but Redis was unreachable for the `XACK`: never handed out
    /// again (that would post them twice), acknowledged again until Redis takes it.
    private var unacknowledged: Set<StreamID> = []
    private var acknowledging: Set<StreamID> = []
    /// A fetch's reply was lost with the connection: it may have handed entries to this consumer
    /// that it never saw. The next fetch takes this consumer's pending entries back (else they
    /// would wait for a claim after the idle time).
    private var reclaimOwn = false
    private var fetchesInFlight = 0
    private var claimCursor = "0-0"
    private var closed = false
    /// Whether the last answer said this consumer holds the reader lease (always true without one).
    private(set) var isReader = false

    package init(redis: any RedisCommanding, consumer: String, options: Options = Options()) {
        self.redis = redis
        self.consumer = consumer
        self.options = options
        streamKey = options.keyPrefix
        deadKey = options.keyPrefix + ":dead"
        attemptsKey = options.keyPrefix + ":attempts"
        readerKey = options.keyPrefix + ":reader"
        writerKey = options.keyPrefix + ":writer:" + consumer
    }

    /// Entries this consumer holds.
    var heldCount: Int { held.count }

    // MARK: ForwardQueue

    package func append(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard !closed else { return done(.failure(.io("queue closed"))) }
        appendEntry(entry) { result in
            switch result {
            case .failure(let error): done(.failure(Self.map(error)))
            case .success(let stored): done(stored ? .success(()) : .failure(.full))
            }
        }
    }

    /// ``append(_:_:)`` answering Redis' own error (whether the command may have run depends on
    /// it: ``RedisError/notConnected`` was never sent, a lost connection or a timeout may have
    /// run it) and, on success, whether it was stored (false: the stream is at its bound).
    func appendEntry(_ entry: borrowing ForwardEntry, _ done: @escaping (Result<Bool, RedisError>) -> Void) {
        guard !closed else { return done(.failure(.notConnected)) }
        let args =
            [String(options.maxEntries), String(max(0, entry.attempts)), String(options.writerMarkMillis), entry.id]
            + Self.fields(of: entry)
        redis.evalScript(Scripts.append, keys: [streamKey, attemptsKey, writerKey], args: args) { result in
            switch result {
            case .failure(let error): done(.failure(error))
            case .success(let value): done(.success(value.int != 0))
            }
        }
    }

    /// Appends `entries` in order in one script (moving a local backlog onto the stream), as many
    /// as fit under ``Options/maxEntries``; answers how many (a first part of `entries`). The
    /// writer mark names the last of them.
    func appendBatch(_ entries: [ForwardEntry], _ done: @escaping (Result<Int, RedisError>) -> Void) {
        guard !closed else { return done(.failure(.notConnected)) }
        var args = [String(options.maxEntries), String(options.writerMarkMillis)]
        args.reserveCapacity(2 + entries.count * 17)
        for entry in entries {
            args.append(String(max(0, entry.attempts)))
            args += Self.fields(of: entry)
        }
        redis.evalScript(Scripts.appendBatch, keys: [streamKey, attemptsKey, writerKey], args: args) { result in
            switch result {
            case .failure(let error): done(.failure(error))
            case .success(let value): done(.success(Int(value.int ?? 0)))
            }
        }
    }

    /// The message id this consumer appended last (its writer mark), nil when there is none.
    func lastAppended(_ done: @escaping (Result<String?, RedisError>) -> Void) {
        guard !closed else { return done(.failure(.notConnected)) }
        redis.send(RedisCommand("GET", writerKey), routingKey: writerKey) { result in
            done(result.map { $0.string })
        }
    }

    package func peek(
        limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool,
        _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void
    ) {
        guard !closed else { return done(.failure(.io("queue closed"))) }
        if !unacknowledged.isEmpty { acknowledgeAgain() }
        let available = select(limit: limit, excluding: excluding, oneEntryPerChannel: oneEntryPerChannel).count
        let room = max(0, options.maxHeld - held.count)
        let readCount = min(room, max(0, limit - available))
        let claimCount = min(room, 100)
        let lease = options.exclusiveReader ? options.claimIdleMillis : 0
        fetchesInFlight += 1
        let reclaiming = reclaimOwn
        let args = [
            options.group, consumer, String(readCount), String(claimCount), String(options.claimIdleMillis),
            claimCursor, String(lease), reclaiming ? String(options.maxHeld) : "0",
        ]
        redis.evalScript(Scripts.fetch, keys: [streamKey, attemptsKey, readerKey], args: args) { [self] result in
            fetchesInFlight -= 1
            defer { if fetchesInFlight == 0 { removedDuringFetch.removeAll() } }
            guard !closed else { return done(.failure(.io("queue closed"))) }
            switch result {
            case .failure(let error):
                if error.mayHaveRun { reclaimOwn = true }
                done(.failure(Self.map(error)))
            case .success(let value):
                if reclaiming && value.array?.first?.int == 1 { reclaimOwn = false }
                absorb(value)
                done(.success(select(limit: limit, excluding: excluding, oneEntryPerChannel: oneEntryPerChannel)))
            }
        }
    }

    package func acknowledge(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard let sid = heldIDs[id] else {
            return settle(id, script: Scripts.acknowledge, keys: [streamKey, attemptsKey], extra: [], done)
        }
        settle(id, script: Scripts.acknowledge, keys: [streamKey, attemptsKey], extra: []) { [self] result in
            guard case .failure(.unavailable) = result, !closed else { return done(result) }
            // chat-service has it. Handed out again it would be posted twice (every delivery an
            // outage interrupted): it leaves the held entries and its XACK is sent again later.
            if let i = index(of: sid) { held.remove(at: i) }
            heldIDs[id] = nil
            if fetchesInFlight > 0 { removedDuringFetch.insert(sid) }
            unacknowledged.insert(sid)
            done(.success(()))
        }
    }

    /// Sends the `XACK`s Redis missed again (before a fetch, on the same connection, so a claim
    /// cannot hand them out first). Any consumer may acknowledge: it does not need the lease.
    private func acknowledgeAgain() {
        for sid in unacknowledged where !acknowledging.contains(sid) {
            acknowledging.insert(sid)
            redis.evalScript(Scripts.acknowledge, keys: [streamKey, attemptsKey], args: [options.group, sid.text]) { [self] result in
                acknowledging.remove(sid)
                if case .success = result { unacknowledged.remove(sid) }
            }
        }
    }

    package func recordAttempt(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard let sid = heldIDs[id] else { return done(.success(())) }
        if let i = index(of: sid) { held[i].entry.attempts += 1 }
        redis.send(RedisCommand("HINCRBY", attemptsKey, sid.text, "1"), routingKey: attemptsKey) { result in
            switch result {
            case .failure(let error): done(.failure(Self.map(error)))
            case .success: done(.success(()))
            }
        }
    }

    package func moveToDeadLetters(_ id: String, reason: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        settle(
            id, script: Scripts.moveToDead, keys: [streamKey, attemptsKey, deadKey],
            extra: [reason, String(UnixTime.nowMillis())], done)
    }

    package func deadLetters(limit: Int, _ done: @escaping (Result<[DeadLetter], ForwardQueueError>) -> Void) {
        redis.send(RedisCommand("XRANGE", deadKey, "-", "+", "COUNT", String(max(1, limit))), routingKey: deadKey) { result in
            switch result {
            case .failure(let error): done(.failure(Self.map(error)))
            case .success(let value):
                done(.success((value.array ?? []).compactMap { Self.parseStreamEntry($0).flatMap { Self.deadLetter(from: $0.fields) } }))
            }
        }
    }

    package func retryDeadLetter(_ id: String, _ done: @escaping (Result<Bool, ForwardQueueError>) -> Void) {
        redis.evalScript(Scripts.retryOne, keys: [streamKey, deadKey], args: [String(options.maxEntries), id]) { result in
            switch result {
            case .failure(let error): done(.failure(Self.map(error)))
            case .success(let value):
                switch value.int {
                case 1: done(.success(true))
                case -1: done(.failure(.full))
                default: done(.success(false))
                }
            }
        }
    }

    package func retryAllDeadLetters(_ done: @escaping (Result<Int, ForwardQueueError>) -> Void) {
        retryBatch(movedSoFar: 0, done)
    }

    /// One script call moves up to 500; repeated until the dead letters are gone or the queue is full.
    private func retryBatch(movedSoFar: Int, _ done: @escaping (Result<Int, ForwardQueueError>) -> Void) {
        redis.evalScript(Scripts.retryAll, keys: [streamKey, deadKey], args: [String(options.maxEntries), "500"]) { [self] result in
            switch result {
            case .failure(let error):
                done(.failure(Self.map(error)))
            case .success(let value):
                let parts = value.array ?? []
                let moved = Int(parts.first?.int ?? 0), full = parts.count > 1 && parts[1].int == 1
                let total = movedSoFar + moved
                if full { return done(total == 0 ? .failure(.full) : .success(total)) }
                if moved == 0 { return done(.success(total)) }
                retryBatch(movedSoFar: total, done)
            }
        }
    }

    package func stats(_ done: @escaping (Result<ForwardQueueStats, ForwardQueueError>) -> Void) {
        redis.evalScript(Scripts.stats, keys: [streamKey, deadKey], args: []) { result in
            switch result {
            case .failure(let error): done(.failure(Self.map(error)))
            case .success(let value):
                let parts = value.array ?? []
                guard parts.count >= 3 else { return done(.failure(.io("redis: unexpected stats reply"))) }
                done(
                    .success(
                        ForwardQueueStats(
                            depth: Int(parts[0].int ?? 0), bytes: nil,
                            oldestCreatedAt: parts[2].string, deadLetters: Int(parts[1].int ?? 0))))
            }
        }
    }

    package var tickIntervalMillis: Int64 { options.tickIntervalMillis }

    /// Other instances append to the stream: the reader looks for new entries this often.
    package var pollIntervalMillis: Int64? { Self.pollMillis }
    static let pollMillis: Int64 = 250

    /// Resets the idle time of held entries (and renews the reader lease) so no other consumer
    /// claims them while this one is alive; forgets them when the lease went to another consumer.
    package func tick() {
        guard !closed else { return }
        if !unacknowledged.isEmpty { acknowledgeAgain() }
        let lease = options.exclusiveReader ? options.claimIdleMillis : 0
        if held.isEmpty && lease == 0 { return }
        let count = options.maxHeld + 100
        fetchesInFlight += 1
        redis.evalScript(
            Scripts.keepAlive, keys: [streamKey, readerKey],
            args: [
                options.group, consumer, String(lease), String(count),
                String(max(600_000, 10 * options.claimIdleMillis)),
            ]
        ) { [self] result in
            fetchesInFlight -= 1
            defer { if fetchesInFlight == 0 { removedDuringFetch.removeAll() } }
            guard !closed, case .success(let value) = result, let parts = value.array else { return }
            if parts.first?.int == 0 {
                if !held.isEmpty { Log.warn("forward queue: reader lease taken by another consumer", ["consumer": consumer]) }
                return forgetHeld()
            }
            // Entries another consumer claimed meanwhile are no longer ours to send.
            let mine = parts.count > 1 ? parts[1].array ?? [] : []
            guard mine.count < count else { return }
            let ids = Set(mine.compactMap { $0.string.flatMap(StreamID.init) })
            let lost = held.filter { !ids.contains($0.streamID) && !settling.contains($0.streamID) }
            for h in lost { heldIDs[h.entry.id] = nil }
            if !lost.isEmpty { held.removeAll { h in !ids.contains(h.streamID) && !settling.contains(h.streamID) } }
        }
    }

    /// Forgets held entries (they stay pending under this consumer until another claims them)
    /// and hands the reader lease back, so another instance takes over without waiting for it.
    package func close() {
        if isReader && options.exclusiveReader {
            redis.evalScript(Scripts.releaseLease, keys: [readerKey], args: [consumer]) { _ in }
        }
        closed = true
        forgetHeld()
    }

    // MARK: Internals

    private func forgetHeld() {
        held.removeAll()
        heldIDs.removeAll()
        settling.removeAll()
        isReader = false
    }

    private func index(of sid: StreamID) -> Int? {
        // Held is sorted by stream id.
        var low = 0, high = held.count
        while low < high {
            let mid = (low + high) / 2
            if held[mid].streamID < sid { low = mid + 1 } else { high = mid }
        }
        return low < held.count && held[low].streamID == sid ? low : nil
    }

    private func select(limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool) -> [ForwardEntry] {
        var result: [ForwardEntry] = []
        var seen = Set<String>()
        for h in held where result.count < limit {
            if settling.contains(h.streamID) || excluding.contains(h.entry.channel) { continue }
            if oneEntryPerChannel && !seen.insert(h.entry.channel).inserted { continue }
            result.append(h.entry)
        }
        return result
    }

    /// Takes in a fetch answer: `{1, cursor, entries, attempts}` or `{0, holder}` (not the reader).
    private func absorb(_ value: RedisValue) {
        guard let parts = value.array, let flag = parts.first?.int else { return }
        if flag == 0 {
            if !held.isEmpty { Log.warn("forward queue: no longer the reader", ["consumer": consumer]) }
            forgetHeld()
            return
        }
        isReader = true
        guard parts.count >= 4 else { return }
        if let cursor = parts[1].string { claimCursor = cursor }
        let entries = parts[2].array ?? [], attempts = parts[3].array ?? []
        var added = false
        for (i, raw) in entries.enumerated() {
            guard let parsed = Self.parseStreamEntry(raw), let sid = StreamID(parsed.id),
                !removedDuringFetch.contains(sid), !unacknowledged.contains(sid), var entry = Self.entry(from: parsed.fields)
            else { continue }
            entry.attempts = Int(i < attempts.count ? attempts[i].int ?? 0 : 0)
            if let known = heldIDs[entry.id] {
                if known == sid {
                    // The same entry again (claimed back from ourselves): keep the newer attempts.
                    if let at = index(of: sid) { held[at].entry.attempts = entry.attempts }
                } else {
                    // The same message in the stream twice (a local backlog moved again after a
                    // crash): the copy is removed unsent, else it would stay pending for good.
                    unacknowledged.insert(sid)
                }
                continue
            }
            heldIDs[entry.id] = sid
            if let last = held.last, last.streamID > sid { added = true }
            held.append(Held(streamID: sid, entry: entry))
        }
        if added { held.sort { $0.streamID < $1.streamID } }
    }

    /// Ack or dead-letter: runs `script` with `(group, streamID) + extra` for a held entry.
    private func settle(
        _ id: String, script: RedisScript, keys: [String], extra: [String],
        _ done: @escaping (Result<Void, ForwardQueueError>) -> Void
    ) {
        guard !closed else { return done(.failure(.io("queue closed"))) }
        guard let sid = heldIDs[id], !settling.contains(sid) else { return done(.success(())) }
        settling.insert(sid)
        redis.evalScript(script, keys: keys, args: [options.group, sid.text] + extra) { [self] result in
            settling.remove(sid)
            switch result {
            case .failure(let error):
                done(.failure(Self.map(error)))
            case .success:
                if let i = index(of: sid) { held.remove(at: i) }
                heldIDs[id] = nil
                if fetchesInFlight > 0 { removedDuringFetch.insert(sid) }
                done(.success(()))
            }
        }
    }

    /// A Redis failure as a queue error: unreachable (or a transient refusal) is `.unavailable`.
    package static func map(_ error: RedisError) -> ForwardQueueError {
        switch error {
        case .notConnected, .timeout, .connectionLost, .tooManyPending, .authFailed:
            return .unavailable
        case .server(let message):
            for transient in ["OOM", "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY"]
            where message.hasPrefix(transient) {
                return .unavailable
            }
            return .io("redis: \(message)")
        case .protocolError(let message):
            return .io("redis: \(message)")
        }
    }

    // MARK: Stream fields

    static let fieldVersion = "1"

    package static func fields(of entry: ForwardEntry) -> [String] {
        [
            "v", fieldVersion, "id", entry.id, "channel", entry.channel, "sender", entry.sender, "content", entry.content,
            "created_at", entry.createdAt, "request_id", entry.requestID, "traceparent", entry.traceParent,
        ]
    }

    /// `[id, [field, value, …]]` → id and fields.
    static func parseStreamEntry(_ value: RedisValue) -> (id: String, fields: [String: String])? {
        guard let pair = value.array, pair.count == 2, let id = pair[0].string, let flat = pair[1].array else { return nil }
        var fields: [String: String] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let k = flat[i].string, let v = flat[i + 1].string { fields[k] = v }
            i += 2
        }
        return (id, fields)
    }

    package static func entry(from fields: [String: String]) -> ForwardEntry? {
        guard fields["v"] == fieldVersion, let id = fields["id"], let channel = fields["channel"],
            let sender = fields["sender"], let content = fields["content"], let createdAt = fields["created_at"]
        else { return nil }
        return ForwardEntry(
            id: id, channel: channel, sender: sender, content: content, createdAt: createdAt,
            requestID: fields["request_id"] ?? "", traceParent: fields["traceparent"] ?? "",
            attempts: Int(fields["attempts"] ?? "") ?? 0)
    }

    static func deadLetter(from fields: [String: String]) -> DeadLetter? {
        guard let entry = entry(from: fields) else { return nil }
        return DeadLetter(entry: entry, reason: fields["reason"] ?? "", atMillis: Int64(fields["at"] ?? "") ?? 0)
    }

    // MARK: Scripts

    enum Scripts {
        /// KEYS stream, attempts, writer mark; ARGV maxEntries, attempts, markMillis, message
        /// id, fields… → stream id, or 0 when full.
        static let append = RedisScript(
            """
            if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
            local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
            if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[2], id, ARGV[2]) end
            if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3]) end
            return id
            """)

        /// KEYS stream, attempts, writer mark; ARGV maxEntries, markMillis, then per entry its
        /// attempts and its 16 field values (`v`, version, `id`, message id, …) → how many were
        /// appended (in order, until the bound).
        static let appendBatch = RedisScript(
            """
            local count = (#ARGV - 2) / 17
            local moved, last = 0, nil
            for i = 0, count - 1 do
              if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then break end
              local at = 3 + i * 17
              local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, at + 1, at + 16))
              if tonumber(ARGV[at]) > 0 then redis.call('HSET', KEYS[2], id, ARGV[at]) end
              last = ARGV[at + 4]
              moved = moved + 1
            end
            if last and tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[3], last, 'PX', ARGV[2]) end
            return moved
            """)

        /// KEYS stream, attempts, reader; ARGV group, consumer, readCount, claimCount, minIdle,
        /// cursor, leaseMillis, reclaimCount → {0, holder} when another consumer is the reader, else
        /// {1, next cursor, entries, attempts}. reclaimCount > 0: up to that many entries pending
        /// for this consumer come back first (whatever their idle time).
        static let fetch = RedisScript(
            """
            local stream, attempts, reader = KEYS[1], KEYS[2], KEYS[3]
            local group, me = ARGV[1], ARGV[2]
            local readCount, claimCount, lease = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])
            if lease > 0 then
              local holder = redis.call('GET', reader)
              if holder and holder ~= me then return {0, holder} end
              redis.call('SET', reader, me, 'PX', lease)
            end
            if redis.call('EXISTS', stream) == 0 then return {1, '0-0', {}, {}} end
            -- A command on the group, creating the group (from the stream's start) when missing.
            local function grouped(...)
              local r = redis.pcall(...)
              if type(r) == 'table' and r.err then
                if string.find(r.err, 'NOGROUP') then redis.pcall('XGROUP', 'CREATE', stream, group, '0') end
                r = redis.call(...)
              end
              return r
            end
            local entries = {}
            local reclaim = tonumber(ARGV[8])
            if reclaim > 0 then
              local mine = grouped('XPENDING', stream, group, '-', '+', reclaim, me)
              if #mine > 0 then
                local args = {'XCLAIM', stream, group, me, 0}
                for _, p in ipairs(mine) do args[#args + 1] = p[1] end
                for _, e in ipairs(redis.call(unpack(args))) do
                  if type(e) == 'table' and type(e[2]) == 'table' then entries[#entries + 1] = e end
                end
              end
            end
            local cursor = ARGV[6]
            if claimCount > 0 then
              local claimed = grouped('XAUTOCLAIM', stream, group, me, ARGV[5], cursor, 'COUNT', claimCount)
              cursor = claimed[1]
              for _, e in ipairs(claimed[2]) do
                if type(e) == 'table' and type(e[2]) == 'table' then entries[#entries + 1] = e end
              end
            end
            if readCount > 0 then
              local fresh = grouped('XREADGROUP', 'GROUP', group, me, 'COUNT', readCount, 'STREAMS', stream, '>')
              if type(fresh) == 'table' then
                for _, e in ipairs(fresh[1][2]) do entries[#entries + 1] = e end
              end
            end
            local counts = {}
            for i, e in ipairs(entries) do counts[i] = redis.call('HGET', attempts, e[1]) or '0' end
            return {1, cursor, entries, counts}
            """)

        /// KEYS stream, reader; ARGV group, consumer, leaseMillis, count, forgetIdleMillis → {0}
        /// when another consumer holds the reader lease, else {1, ids}: the (up to count
        /// oldest) entries pending for this consumer, whose idle time is now reset. Consumers
        /// of instances long gone (nothing pending, idle past forgetIdleMillis) leave the group.
        static let keepAlive = RedisScript(
            """
            local lease = tonumber(ARGV[3])
            if lease > 0 then
              local holder = redis.call('GET', KEYS[2])
              if holder and holder ~= ARGV[2] then return {0} end
              redis.call('SET', KEYS[2], ARGV[2], 'PX', lease)
            end
            local ids = {}
            if redis.call('EXISTS', KEYS[1]) == 0 then return {1, ids} end
            local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
            if type(consumers) == 'table' and not consumers.err then
              for _, c in ipairs(consumers) do
                local info = {}
                for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
                if info['name'] ~= ARGV[2] and info['pending'] == 0 and info['idle'] > tonumber(ARGV[5]) then
                  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
                end
              end
            end
            local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
            if type(pending) ~= 'table' or pending.err then return {1, ids} end
            for _, p in ipairs(pending) do ids[#ids + 1] = p[1] end
            local i = 1
            while i <= #ids do
              local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
              for j = i, math.min(i + 499, #ids) do args[#args + 1] = ids[j] end
              args[#args + 1] = 'JUSTID'
              redis.call(unpack(args))
              i = i + 500
            end
            return {1, ids}
            """)

        /// KEYS reader; ARGV consumer: deletes the lease if this consumer holds it.
        static let releaseLease = RedisScript(
            """
            if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
            return 0
            """)

        /// KEYS stream, attempts; ARGV group, stream id.
        static let acknowledge = RedisScript(
            """
            redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
            redis.call('HDEL', KEYS[2], ARGV[2])
            return redis.call('XDEL', KEYS[1], ARGV[2])
            """)

        /// KEYS stream, attempts, dead; ARGV group, stream id, reason, at → 1 moved, 0 gone.
        static let moveToDead = RedisScript(
            """
            local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
            if #found == 0 then
              redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
              return 0
            end
            local args = {'XADD', KEYS[3], '*'}
            for _, v in ipairs(found[1][2]) do args[#args + 1] = v end
            args[#args + 1] = 'reason'; args[#args + 1] = ARGV[3]
            args[#args + 1] = 'at'; args[#args + 1] = ARGV[4]
            args[#args + 1] = 'attempts'; args[#args + 1] = redis.call('HGET', KEYS[2], ARGV[2]) or '0'
            redis.call(unpack(args))
            redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
            redis.call('XDEL', KEYS[1], ARGV[2])
            redis.call('HDEL', KEYS[2], ARGV[2])
            return 1
            """)

        /// Shared by the retry scripts: copies a dead letter's entry fields back onto the stream.
        private static let requeue = """
            local function requeue(stream, dead, e)
              local args = {'XADD', stream, '*'}
              local f = e[2]
              for i = 1, #f, 2 do
                if f[i] ~= 'reason' and f[i] ~= 'at' and f[i] ~= 'attempts' then
                  args[#args + 1] = f[i]; args[#args + 1] = f[i + 1]
                end
              end
              redis.call(unpack(args))
              redis.call('XDEL', dead, e[1])
            end
            """

        /// KEYS stream, dead; ARGV maxEntries, entry id → 1 moved, 0 no such letter, -1 full.
        static let retryOne = RedisScript(
            requeue + "\n" + """
                local start = '-'
                while true do
                  local batch = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 100)
                  if #batch == 0 then return 0 end
                  for _, e in ipairs(batch) do
                    local f = e[2]
                    for i = 1, #f, 2 do
                      if f[i] == 'id' and f[i + 1] == ARGV[2] then
                        if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end
                        requeue(KEYS[1], KEYS[2], e)
                        return 1
                      end
                    end
                  end
                  start = '(' .. batch[#batch][1]
                end
                """)

        /// KEYS stream, dead; ARGV maxEntries, batch → {moved, 1 if stopped at the bound}.
        static let retryAll = RedisScript(
            requeue + "\n" + """
                local batch = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', tonumber(ARGV[2]))
                local moved = 0
                for _, e in ipairs(batch) do
                  if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return {moved, 1} end
                  requeue(KEYS[1], KEYS[2], e)
                  moved = moved + 1
                end
                return {moved, 0}
                """)

        /// KEYS stream, dead → {depth, dead letters, created_at of the first entry or nil}.
        static let stats = RedisScript(
            """
            local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
            local created = false
            if #first > 0 then
              local f = first[1][2]
              for i = 1, #f, 2 do if f[i] == 'created_at' then created = f[i + 1] end end
            end
            return {redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2]), created}
            """)
    }
}

extension RedisError {
    /// Whether the command may have run although no reply came: it was written and the
    /// connection was lost (or timed out) before the answer. An error reply, or a command never
    /// sent, did not run.
    var mayHaveRun: Bool {
        switch self {
        case .timeout, .connectionLost, .protocolError: return true
        case .notConnected, .tooManyPending, .server, .authFailed: return false
        }
    }
}
