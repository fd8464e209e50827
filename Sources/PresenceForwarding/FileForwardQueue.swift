import Glibc
import PresenceLoop

/// Embedded mode's durable forward queue, and Redis mode's local queue for Redis outages
/// (``BufferedStreamForwardQueue``): one per event loop, two append-only logs in the state
/// directory (`STATE_DIRECTORY`, default `./state`):
///
/// - `forward-<n>.log`: `append` records (the entry), `ack` records (delivered, or in Redis mode
///   moved to the stream), `attempt` records (one more 5xx answer);
/// - `dead-letters-<n>.log`: `dead` records (entry, reason, time) and `retried` records (moved
///   back to the queue).
///
/// Every operation is one `write(2)` before it returns (so a SIGKILL loses nothing);
/// `fdatasync` — ``tick()`` from a loop timer every ``Options/syncIntervalMillis``, ``sync()``,
/// or after every write when that is 0 — makes it survive a power loss. Opening rebuilds the
/// pending set (appends minus acks, in append order), cuts off a torn last record and compacts
/// a log whose dead bytes (acknowledged entries, attempt records) are more than half of it;
/// ``tick()`` and ``sync()`` compact too. Records carry a sequence number shared by both logs,
/// so a crash between the two writes of a move (to or from the dead letters) is settled on the
/// next open.
///
/// Each operation is written once, in its synchronous (throwing) form (tests and `presenced
/// dead-letters` call those); the ``ForwardQueue`` forms the forwarder calls are one-line adapters completing at
/// once, except `append`, which batches a loop turn's appends into one write (``endTurn()``).
/// The in-memory state is ``FileForwardQueueState``; the state directory's tools (paths, lock,
/// existing queues, adoptions, read-only listing) are in FileForwardQueue+Directory.swift.
///
/// Single-threaded: every call on the owning loop's thread, no locks. One process per state
/// directory: the daemon holds ``lockDirectory(_:)`` for its lifetime.
package final class FileForwardQueue: ForwardQueue {
    /// A queue's bounds, how often it is synced, and when it is compacted.
    package struct Options: Sendable, Equatable {
        /// At most this many entries wait; `append` answers `.full` beyond.
        var maxEntries = 100_000
        /// At most this many bytes of waiting records (the log's live part; the file itself can
        /// reach about twice that before it is compacted).
        var maxBytes = 64 << 20
        /// The owner calls ``tick()`` this often; 0 = `fdatasync` inside every operation.
        var syncIntervalMillis: Int64 = 1000
        /// Logs smaller than this are never compacted.
        var compactMinBytes = 1 << 20

        package init(
            maxEntries: Int = 100_000, maxBytes: Int = 64 << 20, syncIntervalMillis: Int64 = 1000,
            compactMinBytes: Int = 1 << 20
        ) {
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.syncIntervalMillis = syncIntervalMillis
            self.compactMinBytes = compactMinBytes
        }
    }

    /// What opening found, for the start-up log line.
    package struct Recovery: Equatable, Sendable {
        var pending = 0
        var deadLetters = 0
        /// Bytes of torn or corrupt records cut off the end of the logs.
        var truncatedBytes = 0
        var compacted = false
        /// Queue indices taken over (their files are gone now) and the entries they brought.
        var adopted: [Int] = []
        var adoptedEntries = 0
        var adoptedDeadLetters = 0
    }

    /// The header magic of the queue log (`forward-<n>.log`).
    static let forwardMagic: [UInt8] = Array("PFWQ".utf8)
    /// The header magic of the dead-letter log (`dead-letters-<n>.log`).
    static let deadMagic: [UInt8] = Array("PFDL".utf8)

    /// The record types of both logs (a record's first body byte).
    enum RecordType {
        static let append: UInt8 = 1
        static let ack: UInt8 = 2
        static let attempt: UInt8 = 3
        static let dead: UInt8 = 4
        static let retried: UInt8 = 5
    }

    package let directory: String
    package let index: Int
    package let options: Options
    private(set) var recovery = Recovery()
    /// Compactions since opening (both logs).
    private(set) var compactions = 0

    private var log: QueueLogFile
    private var deadLog: QueueLogFile
    private var state: FileForwardQueueState
    private var nextSeq: UInt64
    /// Reused record buffer.
    private var scratch: [UInt8] = []
    private var closed = false
    /// When set (by an owner that calls ``endTurn()`` every loop turn), asynchronous appends
    /// wait for the end of the turn and go to disk together in one `write(2)`.
    var batchesAppends = false
    /// This turn's appends: their records back to back, and what each completes.
    private var batch: [UInt8] = []
    private var batched: [BatchedAppend] = []
    private var batchedBytes = 0
    /// One batched append: the entry (moved into the state once written), its record's seq and
    /// size, and its completion.
    private struct BatchedAppend {
        var entry: ForwardEntry
        var seq: UInt64
        var bytes: Int
        var done: (Result<Void, ForwardQueueError>) -> Void
    }

    // MARK: Opening

    /// Opens (or creates) queue `index` under `directory` (created when missing), recovers it,
    /// and takes over the queues `adopting` (from a run with more loops; see
    /// ``adoptions(existing:loops:)``): their waiting entries are merged into this queue in
    /// time order (by id), their dead letters appended, then their files are removed.
    package static func open(
        directory: String, index: Int, options: Options = Options(),
        adopting: [Int] = []
    ) throws(ForwardQueueError) -> FileForwardQueue {
        try QueueLogFile.makeDirectories(directory)
        // Left by a crash during a compaction: the log itself is still the whole truth.
        unlink(path(directory: directory, index: index) + ".compact")
        unlink(deadLetterPath(directory: directory, index: index) + ".compact")
        let (log, bytes) = try QueueLogFile.open(path: path(directory: directory, index: index), magic: forwardMagic)
        let (deadLog, deadBytes) = try QueueLogFile.open(path: deadLetterPath(directory: directory, index: index), magic: deadMagic)
        let queue = FileForwardQueue(
            directory: directory, index: index, options: options, log: log, deadLog: deadLog,
            bytes: bytes, deadBytes: deadBytes)
        try queue.recover(adopting: adopting.filter { $0 != index })
        return queue
    }

    private init(
        directory: String, index: Int, options: Options, log: QueueLogFile, deadLog: QueueLogFile,
        bytes: [UInt8], deadBytes: [UInt8]
    ) {
        self.directory = directory
        self.index = index
        self.options = options
        self.log = log
        self.deadLog = deadLog
        var loaded = FileForwardQueueState.load(forward: bytes, dead: deadBytes)
        let truncated = (bytes.count - loaded.forwardEnd) + (deadBytes.count - loaded.deadEnd)
        let settle = loaded.reconcile()
        state = loaded
        nextSeq = loaded.maxSeq + 1
        pendingSettlement = settle
        recovery.truncatedBytes = truncated
    }

    /// Records the reconciliation decided (acks and retried marks), written once the files are usable.
    private var pendingSettlement: (acks: [String], retried: [String]) = ([], [])

    private func recover(adopting: [Int]) throws(ForwardQueueError) {
        if state.forwardEnd < log.size { try log.truncate(to: state.forwardEnd) }
        if state.deadEnd < deadLog.size { try deadLog.truncate(to: state.deadEnd) }
        for id in pendingSettlement.acks { try writeIDRecord(RecordType.ack, id, to: log) }
        for id in pendingSettlement.retried { try writeIDRecord(RecordType.retried, id, to: deadLog) }
        pendingSettlement = ([], [])
        if !adopting.isEmpty { try adopt(adopting) }
        if needsCompaction(log, live: state.liveBytes) {
            try compactForward()
            recovery.compacted = true
        }
        if needsCompaction(deadLog, live: state.deadLiveBytes) {
            try compactDead()
            recovery.compacted = true
        }
        try log.sync()
        try deadLog.sync()
        recovery.pending = state.pendingCount
        recovery.deadLetters = state.dead.count
    }

    /// Merges other queues' files into this one (see ``open(directory:index:options:adopting:)``).
    private func adopt(_ indices: [Int]) throws(ForwardQueueError) {
        var lists: [[ForwardEntry]] = [state.orderedPending()]
        var deadLetters: [DeadLetter] = []
        var present = Set(lists[0].map(\.id)).union(state.dead.keys)
        for other in indices {
            let loaded = try Self.readState(directory: directory, index: other)
            let entries = loaded.orderedPending().filter { present.insert($0.id).inserted }
            lists.append(entries)
            recovery.adoptedEntries += entries.count
            for letter in loaded.orderedDead() where present.insert(letter.entry.id).inserted {
                deadLetters.append(letter)
            }
        }
        // Each list is in its own append order; interleave them by id (UUIDv7: time order).
        var merged: [ForwardEntry] = []
        var heads = [Int](repeating: 0, count: lists.count)
        while true {
            var best = -1
            for (i, list) in lists.enumerated() where heads[i] < list.count {
                if best < 0 || list[heads[i]].id < lists[best][heads[best]].id { best = i }
            }
            if best < 0 { break }
            merged.append(lists[best][heads[best]])
            heads[best] += 1
        }
        if recovery.adoptedEntries > 0 {
            let ownSeqs = Dictionary(state.orderedPendingRecords().map { ($0.entry.id, $0.seq) }, uniquingKeysWith: { first, _ in first })
            var rebuilt = FileForwardQueueState()
            for entry in merged {
                let seq = ownSeqs[entry.id] ?? takeSeq()
                rebuilt.addPending(entry, seq: seq)
            }
            rebuilt.dead = state.dead
            rebuilt.deadOrder = state.deadOrder
            rebuilt.deadLiveBytes = state.deadLiveBytes
            state = rebuilt
            try compactForward()
            recovery.compacted = true
        }
        for letter in deadLetters {
            try writeDead(letter)
            recovery.adoptedDeadLetters += 1
        }
        try log.sync()
        try deadLog.sync()
        for other in indices {
            unlink(Self.path(directory: directory, index: other))
            unlink(Self.deadLetterPath(directory: directory, index: other))
        }
        QueueLogFile.syncDirectory(of: log.path)
        recovery.adopted = indices
    }

    // MARK: Operations

    /// Waiting entries.
    package var depth: Int { state.pendingCount }
    /// Bytes of the queue log on disk.
    var fileBytes: Int { log.size }
    /// `createdAt` of the oldest waiting entry.
    var oldestCreatedAt: String? { state.firstPending()?.createdAt }

    /// Writes `entry` (its `attempts` as given) at the end of the queue: `.full` at the bound.
    package func append(_ entry: ForwardEntry) throws(ForwardQueueError) {
        try checkOpen()
        // Already waiting: appending twice changes nothing (an id is searched for in its channel only).
        if state.locate(entry.id, channel: entry.channel) != nil { return }
        guard fits(recordBytes: QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(entry)) else { throw .full }
        let seq = takeSeq()
        QueueLogFile.buildRecord(type: RecordType.append, seq: seq, into: &scratch) { ForwardEntryCodec.encode(entry, into: &$0) }
        try log.append(scratch)
        state.addPending(entry, seq: seq)
        try syncIfEveryWrite(log)
    }

    /// Up to `limit` of the oldest waiting entries in append order, skipping `excluding`
    /// channels; with `oneEntryPerChannel`, only each channel's oldest.
    func peek(limit: Int, excluding: Set<String> = [], oneEntryPerChannel: Bool = false) -> [ForwardEntry] {
        guard limit > 0 else { return [] }
        if oneEntryPerChannel {
            // Each channel's oldest, oldest first: O(channels), however long a blocked channel's backlog.
            return Array(state.channelHeads(excluding: excluding).prefix(limit))
        }
        return Array(state.orderedPending().lazy.filter { !excluding.contains($0.channel) }.prefix(limit))
    }

    /// Delivered (or moved elsewhere): one `write(2)` for all their ack records; unknown ids are
    /// ignored. (Redis mode moves a backlog of thousands to the stream this way.)
    func acknowledge(all ids: [String]) throws(ForwardQueueError) {
        try checkOpen()
        var records: [UInt8] = []
        var known: [String] = []
        for id in ids where state.locate(id) != nil {
            QueueLogFile.buildRecord(type: RecordType.ack, seq: takeSeq(), into: &scratch) { $0.append(contentsOf: id.utf8) }
            records.append(contentsOf: scratch)
            known.append(id)
        }
        guard !records.isEmpty else { return }
        try log.append(records)
        for id in known { state.removePending(id) }
        try syncIfEveryWrite(log)
    }

    /// One more attempt answered 5xx, persisted (it counts toward `FORWARD_MAX_ATTEMPTS`).
    func recordAttempt(_ id: String) throws(ForwardQueueError) {
        try checkOpen()
        guard state.locate(id) != nil else { return }
        try writeIDRecord(RecordType.attempt, id, to: log)
        state.addAttempt(id)
        try syncIfEveryWrite(log)
    }

    /// Moves a waiting entry to the dead letters (written and synced there before the queue's
    /// ack record). Unknown ids are ignored.
    func moveToDeadLetters(_ id: String, reason: String, atMillis: Int64 = UnixTime.nowMillis()) throws(ForwardQueueError) {
        try checkOpen()
        guard let entry = state.pendingEntry(id) else { return }
        try writeDead(DeadLetter(entry: entry, reason: reason, atMillis: atMillis))
        try deadLog.sync()
        try writeIDRecord(RecordType.ack, id, to: log)
        state.removePending(id)
        try syncIfEveryWrite(log)
    }

    /// Up to `limit` dead letters, oldest first.
    package func deadLetters(limit: Int = .max) -> [DeadLetter] {
        Array(state.orderedDead().prefix(max(0, limit)))
    }

    /// Moves dead letter `id` back to the end of the queue with `attempts` 0 (appended and
    /// synced before the dead letter is marked retried); false when there is none.
    @discardableResult
    package func retryDeadLetter(_ id: String) throws(ForwardQueueError) -> Bool {
        try checkOpen()
        guard let dead = state.dead[id] else { return false }
        var entry = dead.letter.entry
        entry.attempts = 0
        try append(entry)  // unless it is waiting already
        try log.sync()
        try writeIDRecord(RecordType.retried, id, to: deadLog)
        state.removeDead(id)
        try syncIfEveryWrite(deadLog)
        return true
    }

    /// Moves every dead letter back, oldest first, until the bound; the number moved. `.full`
    /// when there were dead letters and none fitted.
    package func retryAllDeadLetters() throws(ForwardQueueError) -> Int {
        var moved = 0
        for letter in state.orderedDead() {
            do throws(ForwardQueueError) {
                try retryDeadLetter(letter.entry.id)
                moved += 1
            } catch {
                guard error == .full else { throw error }
                if moved == 0 { throw .full }
                break
            }
        }
        return moved
    }

    /// `fdatasync` of what was written since the last call, then compaction when due, waiting
    /// for the disk (``tick()`` is the loop's form, which does not wait).
    func sync() throws(ForwardQueueError) {
        try checkOpen()
        try log.sync()
        try deadLog.sync()
        try compactIfDue()
    }

    private func compactIfDue() throws(ForwardQueueError) {
        if needsCompaction(log, live: state.liveBytes) { try compactForward() }
        if needsCompaction(deadLog, live: state.deadLiveBytes) { try compactDead() }
    }

    /// Syncs and closes both logs.
    package func closeQueue() throws(ForwardQueueError) {
        guard !closed else { return }
        endTurn()
        defer {
            closed = true
            log.close()
            deadLog.close()
        }
        try log.sync()
        try deadLog.sync()
    }

    // MARK: ForwardQueue

    /// Batched (``batchesAppends``): the record joins this turn's batch, written and completed at
    /// ``endTurn()``. Otherwise ``append(_:)`` at once.
    package func append(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard batchesAppends else {
            let single = consume entry
            return done(Result { () throws(ForwardQueueError) in try append(single) })
        }
        if closed { return done(.failure(.io("queue \(index) is closed"))) }
        // No check for an id already waiting: batched appends are new messages (fresh UUIDv7 ids).
        let size = QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(entry)
        guard fits(recordBytes: size) else { return done(.failure(.full)) }
        let seq = takeSeq()
        QueueLogFile.appendRecord(type: RecordType.append, seq: seq, payloadSize: size - QueueLogFile.recordOverhead, to: &batch) {
            ForwardEntryCodec.write(entry, to: $0)
        }
        batchedBytes += size
        batched.append(BatchedAppend(entry: consume entry, seq: seq, bytes: size, done: done))
    }

    /// Writes this turn's batched appends in one `write(2)`, then completes them (all stored,
    /// or all failed with the same error).
    package func endTurn() {
        guard !batched.isEmpty else { return }
        var appends: [BatchedAppend] = []
        swap(&appends, &batched)
        let result = Result { () throws(ForwardQueueError) in
            try log.append(batch)
            for i in appends.indices {
                var entry = ForwardEntry.removed
                swap(&entry, &appends[i].entry)  // moved, not copied: no retains
                state.addPending(entry, seq: appends[i].seq, bytes: appends[i].bytes)
            }
            try syncIfEveryWrite(log)
        }
        batch.removeAll(keepingCapacity: true)
        batchedBytes = 0
        for i in appends.indices { appends[i].done(result) }
        appends.removeAll(keepingCapacity: true)
        if batched.isEmpty { swap(&appends, &batched) }  // keep the capacity for the next turn
    }

    // The other operations' ForwardQueue forms: the operations above, completed before they return.

    package func peek(
        limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool,
        _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void
    ) {
        done(
            closed
                ? .failure(.io("queue closed")) : .success(peek(limit: limit, excluding: excluding, oneEntryPerChannel: oneEntryPerChannel))
        )
    }

    package func acknowledge(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try acknowledge(all: [id]) })
    }

    package func recordAttempt(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try recordAttempt(id) })
    }

    package func moveToDeadLetters(_ id: String, reason: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try moveToDeadLetters(id, reason: reason) })
    }

    package func deadLetters(limit: Int, _ done: @escaping (Result<[DeadLetter], ForwardQueueError>) -> Void) {
        done(.success(deadLetters(limit: limit)))
    }

    package func retryDeadLetter(_ id: String, _ done: @escaping (Result<Bool, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try retryDeadLetter(id) })
    }

    package func retryAllDeadLetters(_ done: @escaping (Result<Int, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try retryAllDeadLetters() })
    }

    package func stats(_ done: @escaping (Result<ForwardQueueStats, ForwardQueueError>) -> Void) {
        done(.success(ForwardQueueStats(depth: depth, bytes: fileBytes, oldestCreatedAt: oldestCreatedAt, deadLetters: state.dead.count)))
    }

    package var tickIntervalMillis: Int64 { options.syncIntervalMillis > 0 ? options.syncIntervalMillis : 1000 }

    /// ``sync()`` without waiting for the disk: the `fdatasync`s run on a helper thread (a loop
    /// must not stall for them); compaction when due. A failure is logged (the next tick tries
    /// again).
    package func tick() {
        guard !closed else { return }
        log.syncInBackground()
        deadLog.syncInBackground()
        do {
            try compactIfDue()
        } catch {
            Log.error("forward queue compaction failed", ["queue": "\(index)", "error": "\(error)"])
        }
    }

    /// ``closeQueue()``, a failure logged.
    package func close() {
        do {
            try closeQueue()
        } catch {
            Log.error("forward queue close failed", ["queue": "\(index)", "error": "\(error)"])
        }
    }

    // MARK: Internals

    private func checkOpen() throws(ForwardQueueError) {
        if closed { throw .io("queue \(index) is closed") }
    }

    /// Whether one more append record of `recordBytes` stays within the bounds, this turn's
    /// batched appends (not written yet) counted.
    private func fits(recordBytes: Int) -> Bool {
        state.pendingCount + batched.count < options.maxEntries
            && state.liveBytes + batchedBytes + recordBytes <= options.maxBytes + QueueLogFile.headerSize
    }

    private func takeSeq() -> UInt64 {
        defer { nextSeq += 1 }
        return nextSeq
    }

    private func syncIfEveryWrite(_ file: QueueLogFile) throws(ForwardQueueError) {
        if options.syncIntervalMillis <= 0 { try file.sync() }
    }

    private func writeIDRecord(_ type: UInt8, _ id: String, to file: QueueLogFile) throws(ForwardQueueError) {
        QueueLogFile.buildRecord(type: type, seq: takeSeq(), into: &scratch) { $0.append(contentsOf: id.utf8) }
        try file.append(scratch)
    }

    private func writeDead(_ letter: DeadLetter) throws(ForwardQueueError) {
        let seq = takeSeq()
        QueueLogFile.buildRecord(type: RecordType.dead, seq: seq, into: &scratch) { FileForwardQueueState.encodeDead(letter, into: &$0) }
        try deadLog.append(scratch)
        state.addDead(letter, seq: seq, bytes: scratch.count)
    }

    private func needsCompaction(_ file: QueueLogFile, live: Int) -> Bool {
        file.size >= options.compactMinBytes && (file.size - live) * 2 > file.size
    }

    /// Rewrites the queue log with only the waiting entries (current attempts), in order.
    private func compactForward() throws(ForwardQueueError) {
        try rewrite(log, state.orderedPendingRecords(), type: RecordType.append, seq: \.seq) {
            ForwardEntryCodec.encode($0.entry, into: &$1)
        }
        compactions += 1
    }

    /// Rewrites the dead-letter log with only the live dead letters.
    private func compactDead() throws(ForwardQueueError) {
        try rewrite(deadLog, state.orderedDeadSlots(), type: RecordType.dead, seq: \.seq) {
            FileForwardQueueState.encodeDead($0.letter, into: &$1)
        }
        state.compactDeadOrder()
        compactions += 1
    }

    /// Replaces `file` with one record of `type` per item, written in 1 MiB chunks.
    private func rewrite<Item>(
        _ file: QueueLogFile, _ items: [Item], type: UInt8, seq: (Item) -> UInt64,
        encode: (Item, inout [UInt8]) -> Void
    ) throws(ForwardQueueError) {
        var chunk: [UInt8] = []
        var record: [UInt8] = []
        try file.replace { (emit: (inout [UInt8]) throws(ForwardQueueError) -> Void) throws(ForwardQueueError) in
            for item in items {
                QueueLogFile.buildRecord(type: type, seq: seq(item), into: &record) { encode(item, &$0) }
                chunk.append(contentsOf: record)
                if chunk.count >= 1 << 20 { try emit(&chunk) }
            }
            if !chunk.isEmpty { try emit(&chunk) }
        }
    }
}
