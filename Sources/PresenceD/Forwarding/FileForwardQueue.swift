import Glibc

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
/// ``sync()`` — from a loop timer every ``Options/syncIntervalMillis``, or after every write
/// when that is 0 — makes it survive a power loss. Opening rebuilds the pending set (appends
/// minus acks, in append order), cuts off a torn last record and compacts a log whose
/// dead bytes (acknowledged entries, attempt records) are more than half of it; ``sync()``
/// compacts too. Records carry a sequence number shared by both logs, so a crash between the
/// two writes of a move (to or from the dead letters) is settled on the next open.
///
/// Single-threaded: every call on the owning loop's thread, no locks. One process per state
/// directory: the daemon holds ``lockDirectory(_:)`` for its lifetime.
final class FileForwardQueue: ForwardQueue {
    struct Options: Sendable, Equatable {
        /// At most this many entries wait; `append` answers `.full` beyond.
        var maxEntries = 100_000
        /// At most this many bytes of waiting records (the log's live part; the file itself can
        /// reach about twice that before it is compacted).
        var maxBytes = 64 << 20
        /// The owner calls ``sync()`` this often; 0 = `fdatasync` inside every operation.
        var syncIntervalMillis: Int64 = 1000
        /// Logs smaller than this are never compacted.
        var compactMinBytes = 1 << 20

        init(maxEntries: Int = 100_000, maxBytes: Int = 64 << 20, syncIntervalMillis: Int64 = 1000,
             compactMinBytes: Int = 1 << 20) {
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.syncIntervalMillis = syncIntervalMillis
            self.compactMinBytes = compactMinBytes
        }
    }

    /// What opening found, for the start-up log line.
    struct Recovery: Equatable, Sendable {
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

    static let forwardMagic: [UInt8] = Array("PFWQ".utf8)
    static let deadMagic: [UInt8] = Array("PFDL".utf8)

    enum RecordType {
        static let append: UInt8 = 1
        static let ack: UInt8 = 2
        static let attempt: UInt8 = 3
        static let dead: UInt8 = 4
        static let retried: UInt8 = 5
    }

    let directory: String
    let index: Int
    let options: Options
    private(set) var recovery = Recovery()
    /// Compactions since opening (both logs).
    private(set) var compactions = 0

    private var log: QueueLogFile
    private var deadLog: QueueLogFile
    private var state: LoadedState
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
    private struct BatchedAppend {
        var entry: ForwardEntry
        var seq: UInt64
        var bytes: Int
        var done: (Result<Void, ForwardQueueError>) -> Void
    }

    // MARK: Opening

    /// `<directory>/forward-<index>.log`.
    static func path(directory: String, index: Int) -> String { "\(directory)/forward-\(index).log" }
    /// `<directory>/dead-letters-<index>.log`.
    static func deadLetterPath(directory: String, index: Int) -> String { "\(directory)/dead-letters-\(index).log" }

    /// Opens (or creates) queue `index` under `directory` (created when missing), recovers it,
    /// and takes over the queues `adopting` (from a run with more loops; see
    /// ``adoptions(existing:loops:)``): their waiting entries are merged into this queue in
    /// time order (by id), their dead letters appended, then their files are removed.
    static func open(directory: String, index: Int, options: Options = Options(),
                     adopting: [Int] = []) throws(ForwardQueueError) -> FileForwardQueue {
        try QueueLogFile.makeDirectories(directory)
        // Left by a crash during a compaction: the log itself is still the whole truth.
        unlink(path(directory: directory, index: index) + ".compact")
        unlink(deadLetterPath(directory: directory, index: index) + ".compact")
        let (log, bytes) = try QueueLogFile.open(path: path(directory: directory, index: index), magic: forwardMagic)
        let (deadLog, deadBytes) = try QueueLogFile.open(path: deadLetterPath(directory: directory, index: index), magic: deadMagic)
        let queue = FileForwardQueue(directory: directory, index: index, options: options, log: log, deadLog: deadLog,
                                     bytes: bytes, deadBytes: deadBytes)
        try queue.recover(adopting: adopting.filter { $0 != index })
        return queue
    }

    private init(directory: String, index: Int, options: Options, log: QueueLogFile, deadLog: QueueLogFile,
                 bytes: [UInt8], deadBytes: [UInt8]) {
        self.directory = directory
        self.index = index
        self.options = options
        self.log = log
        self.deadLog = deadLog
        var loaded = LoadedState.load(forward: bytes, dead: deadBytes)
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
            let forward = try QueueLogFile.readOnly(path: Self.path(directory: directory, index: other), magic: Self.forwardMagic)
            let dead = try QueueLogFile.readOnly(path: Self.deadLetterPath(directory: directory, index: other), magic: Self.deadMagic)
            var loaded = LoadedState.load(forward: forward ?? QueueLogFile.headerOnly(Self.forwardMagic),
                                          dead: dead ?? QueueLogFile.headerOnly(Self.deadMagic))
            _ = loaded.reconcile()
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
            var rebuilt = LoadedState()
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

    /// The queue indices with files in `directory` (`forward-<n>.log` or `dead-letters-<n>.log`),
    /// ascending; empty when the directory does not exist.
    static func existingIndices(in directory: String) -> [Int] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var found = Set<Int>()
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            for prefix in ["forward-", "dead-letters-"] where name.hasPrefix(prefix) && name.hasSuffix(".log") {
                let digits = name.dropFirst(prefix.count).dropLast(4)
                if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits) {
                    found.insert(n)
                }
            }
        }
        return found.sorted()
    }

    /// For a daemon with `loops` loops: the indices each loop should adopt — every existing index
    /// ≥ `loops` goes to loop `index % loops` (loop `i` always opens queue `i` itself).
    static func adoptions(existing: [Int], loops: Int) -> [[Int]] {
        var result = [[Int]](repeating: [], count: max(loops, 0))
        guard loops > 0 else { return result }
        for index in existing where index >= loops { result[index % loops].append(index) }
        return result
    }

    /// Takes `<directory>/lock` (`flock`, exclusive, non-blocking) for the process' lifetime and
    /// returns its descriptor: a second presenced (or an operator command that writes) on the
    /// same state directory fails here instead of corrupting the queues.
    static func lockDirectory(_ directory: String) throws(ForwardQueueError) -> Int32 {
        try QueueLogFile.makeDirectories(directory)
        let path = directory + "/lock"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("open \(path): \(QueueLogFile.errnoText())") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let busy = errno == EWOULDBLOCK
            let text = QueueLogFile.errnoText()
            Glibc.close(fd)
            throw .io(busy ? "\(directory) is in use by another presenced" : "flock \(path): \(text)")
        }
        return fd
    }

    /// Every queue's dead letters under `directory`, read without opening anything for writing
    /// (safe while the daemon runs): queue index and letter, each queue's oldest first.
    static func readDeadLetters(directory: String) throws(ForwardQueueError) -> [(index: Int, letter: DeadLetter)] {
        var result: [(index: Int, letter: DeadLetter)] = []
        for index in existingIndices(in: directory) {
            let forward = try QueueLogFile.readOnly(path: path(directory: directory, index: index), magic: forwardMagic)
            let dead = try QueueLogFile.readOnly(path: deadLetterPath(directory: directory, index: index), magic: deadMagic)
            var loaded = LoadedState.load(forward: forward ?? QueueLogFile.headerOnly(forwardMagic),
                                          dead: dead ?? QueueLogFile.headerOnly(deadMagic))
            _ = loaded.reconcile()
            result += loaded.orderedDead().map { (index, $0) }
        }
        return result
    }

    // MARK: Operations (synchronous)

    /// Waiting entries.
    var depth: Int { state.pendingCount }
    /// Bytes of the queue log on disk.
    var fileBytes: Int { log.size }
    /// Dead letters kept.
    var deadLetterCount: Int { state.dead.count }
    /// `createdAt` of the oldest waiting entry.
    var oldestCreatedAt: String? { state.firstPending()?.createdAt }

    var statsNow: ForwardQueueStats {
        ForwardQueueStats(depth: depth, bytes: log.size, oldestCreatedAt: oldestCreatedAt, deadLetters: deadLetterCount)
    }

    /// Writes `entry` (its `attempts` as given) at the end of the queue: `.full` at the bound.
    func append(_ entry: ForwardEntry) throws(ForwardQueueError) {
        try checkOpen()
        // Already waiting: appending twice changes nothing (an id is searched for in its channel only).
        if state.locate(entry.id, channel: entry.channel) != nil { return }
        let size = QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(entry)
        guard state.pendingCount < options.maxEntries, state.liveBytes + size <= options.maxBytes + QueueLogFile.headerSize else {
            throw .full
        }
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

    /// Delivered: an ack record; unknown ids are ignored.
    func acknowledge(_ id: String) throws(ForwardQueueError) {
        try checkOpen()
        guard state.locate(id) != nil else { return }
        try writeIDRecord(RecordType.ack, id, to: log)
        state.removePending(id)
        try syncIfEveryWrite(log)
    }

    /// Delivered (or moved elsewhere) in bulk: one `write(2)` for all their ack records; unknown
    /// ids are ignored. (Redis mode moves a backlog of thousands to the stream this way.)
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
    func deadLetters(limit: Int = .max) -> [DeadLetter] {
        Array(state.orderedDead().prefix(max(0, limit)))
    }

    /// Moves dead letter `id` back to the end of the queue with `attempts` 0 (appended and
    /// synced before the dead letter is marked retried); false when there is none.
    @discardableResult
    func retryDeadLetter(_ id: String) throws(ForwardQueueError) -> Bool {
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
    func retryAllDeadLetters() throws(ForwardQueueError) -> Int {
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

    /// `fdatasync` of what was written since the last call, then compaction when due. The
    /// owner calls it every ``Options/syncIntervalMillis`` and at shutdown.
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
    func closeQueue() throws(ForwardQueueError) {
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

    // MARK: ForwardQueue (completions run before the call returns)

    func append(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard batchesAppends else {
            let single = consume entry
            return done(Result { () throws(ForwardQueueError) in try append(single) })
        }
        if closed { return done(.failure(.io("queue \(index) is closed"))) }
        // No check for an id already waiting: batched appends are new messages (fresh UUIDv7 ids).
        let size = QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(entry)
        guard state.pendingCount + batched.count < options.maxEntries,
              state.liveBytes + batchedBytes + size <= options.maxBytes + QueueLogFile.headerSize else {
            return done(.failure(.full))
        }
        let seq = takeSeq()
        QueueLogFile.appendRecord(type: RecordType.append, seq: seq, payloadSize: size - QueueLogFile.recordOverhead, to: &batch) {
            ForwardEntryCodec.write(entry, to: $0)
        }
        batchedBytes += size
        batched.append(BatchedAppend(entry: consume entry, seq: seq, bytes: size, done: done))
    }

    /// Writes this turn's batched appends in one `write(2)`, then completes them (all stored,
    /// or all failed with the same error).
    func endTurn() {
        guard !batched.isEmpty else { return }
        var appends: [BatchedAppend] = []
        swap(&appends, &batched)
        let result = Result { () throws(ForwardQueueError) in
            try log.append(batch)
            for i in appends.indices {
                var entry = ForwardEntry.removed
                swap(&entry, &appends[i].entry) // moved, not copied: no retains
                state.addPending(entry, seq: appends[i].seq, bytes: appends[i].bytes)
            }
            try syncIfEveryWrite(log)
        }
        batch.removeAll(keepingCapacity: true)
        batchedBytes = 0
        for i in appends.indices { appends[i].done(result) }
        appends.removeAll(keepingCapacity: true)
        if batched.isEmpty { swap(&appends, &batched) } // keep the capacity for the next turn
    }

    func peek(limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool,
              _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void) {
        done(closed ? .failure(.io("queue closed")) : .success(peek(limit: limit, excluding: excluding, oneEntryPerChannel: oneEntryPerChannel)))
    }

    func acknowledge(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try acknowledge(id) })
    }

    func recordAttempt(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try recordAttempt(id) })
    }

    func moveToDeadLetters(_ id: String, reason: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try moveToDeadLetters(id, reason: reason) })
    }

    func deadLetters(limit: Int, _ done: @escaping (Result<[DeadLetter], ForwardQueueError>) -> Void) {
        done(.success(deadLetters(limit: limit)))
    }

    func retryDeadLetter(_ id: String, _ done: @escaping (Result<Bool, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try retryDeadLetter(id) })
    }

    func retryAllDeadLetters(_ done: @escaping (Result<Int, ForwardQueueError>) -> Void) {
        done(Result { () throws(ForwardQueueError) in try retryAllDeadLetters() })
    }

    func stats(_ done: @escaping (Result<ForwardQueueStats, ForwardQueueError>) -> Void) {
        done(.success(statsNow))
    }

    var tickIntervalMillis: Int64 { options.syncIntervalMillis > 0 ? options.syncIntervalMillis : 1000 }

    /// ``sync()`` without waiting for the disk: the `fdatasync`s run on a helper thread (a loop
    /// must not stall for them); compaction when due. A failure is logged (the next tick tries
    /// again).
    func tick() {
        guard !closed else { return }
        log.syncInBackground()
        deadLog.syncInBackground()
        do {
            try compactIfDue()
        } catch {
            Log.error("forward queue compaction failed", ["queue": "\(index)", "error": "\(error)"])
        }
    }

    func close() {
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
        QueueLogFile.buildRecord(type: RecordType.dead, seq: seq, into: &scratch) { LoadedState.encodeDead(letter, into: &$0) }
        try deadLog.append(scratch)
        state.addDead(letter, seq: seq, bytes: scratch.count)
    }

    private func needsCompaction(_ file: QueueLogFile, live: Int) -> Bool {
        file.size >= options.compactMinBytes && (file.size - live) * 2 > file.size
    }

    /// Rewrites the queue log with only the waiting entries (current attempts), in order.
    private func compactForward() throws(ForwardQueueError) {
        try rewrite(log, state.orderedPendingRecords(), type: RecordType.append, seq: \.seq) { ForwardEntryCodec.encode($0.entry, into: &$1) }
        compactions += 1
    }

    /// Rewrites the dead-letter log with only the live dead letters.
    private func compactDead() throws(ForwardQueueError) {
        try rewrite(deadLog, state.orderedDeadSlots(), type: RecordType.dead, seq: \.seq) { LoadedState.encodeDead($0.letter, into: &$1) }
        state.compactDeadOrder()
        compactions += 1
    }

    /// Replaces `file` with one record of `type` per item, written in 1 MiB chunks.
    private func rewrite<Item>(_ file: QueueLogFile, _ items: [Item], type: UInt8, seq: (Item) -> UInt64,
                               encode: (Item, inout [UInt8]) -> Void) throws(ForwardQueueError) {
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

extension QueueLogFile {
    /// A file holding only the header (stand-in for a missing one).
    static func headerOnly(_ magic: [UInt8]) -> [UInt8] { magic + [formatVersion, 0, 0, 0] }
}

/// The in-memory view of one queue's two logs: waiting entries in append order, dead letters.
///
/// Waiting entries live in their channel's queue, in append order, with their place in the
/// queue's overall order. Appending — done for every chat message — is an array append: no
/// index by id is kept for them. The forwarder asks for each channel's oldest and settles what
/// it was handed, so those are remembered by id; any other id is searched for (tests, tools).
struct LoadedState {
    /// A waiting entry in its channel's queue (`live` false once acknowledged or moved).
    struct Waiting {
        var entry: ForwardEntry
        var seq: UInt64
        /// Size of its append record.
        var bytes: Int
        /// Place in the queue's append order (in memory only).
        var position: UInt64
        var live = true
    }
    /// One channel's waiting entries in append order; `items[head]` is live while any is.
    final class ChannelQueue {
        let name: String
        var items: [Waiting] = []
        var head = 0
        /// Entries trimmed off the front so far.
        var trimmed = 0
        init(name: String) { self.name = name }
    }
    /// Where a waiting entry is: its queue and its index there, counting trimmed entries.
    struct Location {
        var queue: ChannelQueue
        var index: Int
        var waiting: Waiting { queue.items[index - queue.trimmed] }
    }
    struct DeadSlot {
        var letter: DeadLetter
        var seq: UInt64
        var bytes: Int
    }
    /// A dead letter's place in order; stale when the id's slot has another seq (or none).
    struct Item {
        var id: String
        var seq: UInt64
    }
    /// A waiting entry and the seq of its append record (compaction keeps both).
    struct PendingRecord {
        var entry: ForwardEntry
        var seq: UInt64
    }

    /// Channels with waiting entries.
    private(set) var channels: [String: ChannelQueue] = [:]
    private(set) var pendingCount = 0
    /// Entries handed out by ``channelHeads(excluding:)`` and still waiting.
    private var handedOut: [String: Location] = [:]
    private var nextPosition: UInt64 = 0
    /// Header plus the append records of waiting entries: what a compaction would keep.
    var liveBytes = QueueLogFile.headerSize
    var dead: [String: DeadSlot] = [:]
    var deadOrder: [Item] = []
    var deadLiveBytes = QueueLogFile.headerSize
    var maxSeq: UInt64 = 0
    /// Where intact records end in each log.
    var forwardEnd = QueueLogFile.headerSize
    var deadEnd = QueueLogFile.headerSize

    static func load(forward: [UInt8], dead deadBytes: [UInt8]) -> LoadedState {
        var s = LoadedState()
        var byID: [String: Location] = [:]  // while loading: ack and attempt records name ids
        let forwardEnd = QueueLogFile.forEachRecord(forward) { type, seq, cursor in
            s.maxSeq = max(s.maxSeq, seq)
            switch type {
            case FileForwardQueue.RecordType.append:
                let size = cursor.end - cursor.offset + QueueLogFile.recordOverhead
                guard let entry = ForwardEntryCodec.decode(&cursor), byID[entry.id] == nil else { return }
                byID[entry.id] = s.addPending(entry, seq: seq, bytes: size)
            case FileForwardQueue.RecordType.ack:
                if let at = byID.removeValue(forKey: cursor.rest()) { s.remove(at) }
            case FileForwardQueue.RecordType.attempt:
                if let at = byID[cursor.rest()] { at.queue.items[at.index - at.queue.trimmed].entry.attempts += 1 }
            default:
                break  // a record type of a later format revision: skipped
            }
        }
        let deadEnd = QueueLogFile.forEachRecord(deadBytes) { type, seq, cursor in
            s.maxSeq = max(s.maxSeq, seq)
            switch type {
            case FileForwardQueue.RecordType.dead:
                let size = cursor.end - cursor.offset + QueueLogFile.recordOverhead
                guard let at = cursor.u64(), let reason = cursor.string(), let entry = ForwardEntryCodec.decode(&cursor) else { return }
                s.removeDead(entry.id)
                s.addDead(DeadLetter(entry: entry, reason: reason, atMillis: Int64(bitPattern: at)), seq: seq, bytes: size)
            case FileForwardQueue.RecordType.retried:
                let id = cursor.rest()
                if let slot = s.dead[id], slot.seq < seq { s.removeDead(id) }
            default:
                break
            }
        }
        s.forwardEnd = forwardEnd
        s.deadEnd = deadEnd
        s.compactDeadOrder()
        return s
    }

    /// An entry both waiting and dead (a crash between the two writes of a move): the later
    /// record wins. Returns the records to write so the logs say the same: acks (it died) and
    /// retried marks (it was moved back).
    mutating func reconcile() -> (acks: [String], retried: [String]) {
        var acks: [String] = [], retried: [String] = []
        for record in orderedPendingRecords() {
            guard let d = dead[record.entry.id] else { continue }
            if d.seq > record.seq { acks.append(record.entry.id) } else { retried.append(record.entry.id) }
        }
        for id in acks { removePending(id) }
        for id in retried { removeDead(id) }
        return (acks, retried)
    }

    static func encodeDead(_ letter: DeadLetter, into out: inout [UInt8]) {
        ByteIO.putU64(&out, UInt64(bitPattern: letter.atMillis))
        ByteIO.putString(&out, letter.reason)
        ForwardEntryCodec.encode(letter.entry, into: &out)
    }

    // MARK: Waiting entries

    /// Where waiting entry `id` is: handed out, or searched for (in `channel` only, when known).
    func locate(_ id: String, channel: String? = nil) -> Location? {
        if let at = handedOut[id] { return at }
        func search(_ queue: ChannelQueue) -> Location? {
            for i in queue.head..<queue.items.count where queue.items[i].live && queue.items[i].entry.id == id {
                return Location(queue: queue, index: queue.trimmed + i)
            }
            return nil
        }
        if let channel { return channels[channel].flatMap(search) }
        for queue in channels.values { if let at = search(queue) { return at } }
        return nil
    }

    /// The waiting entry `id` (current attempts), if any.
    func pendingEntry(_ id: String) -> ForwardEntry? { locate(id)?.waiting.entry }

    @discardableResult
    mutating func addPending(_ entry: consuming ForwardEntry, seq: UInt64, bytes: Int? = nil) -> Location {
        let size = bytes ?? QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(entry)
        let queue: ChannelQueue
        if let known = channels[entry.channel] {
            queue = known
        } else {
            queue = ChannelQueue(name: entry.channel)
            channels[entry.channel] = queue
        }
        let at = Location(queue: queue, index: queue.trimmed + queue.items.count)
        queue.items.append(Waiting(entry: entry, seq: seq, bytes: size, position: nextPosition))
        nextPosition += 1
        pendingCount += 1
        liveBytes += size
        maxSeq = max(maxSeq, seq)
        return at
    }

    mutating func addAttempt(_ id: String) {
        guard let at = locate(id) else { return }
        at.queue.items[at.index - at.queue.trimmed].entry.attempts += 1
    }

    mutating func removePending(_ id: String) {
        guard let at = locate(id) else { return }
        handedOut[id] = nil
        remove(at)
    }

    private mutating func remove(_ at: Location) {
        let queue = at.queue
        let i = at.index - queue.trimmed
        liveBytes -= queue.items[i].bytes
        pendingCount -= 1
        queue.items[i].live = false
        queue.items[i].entry = ForwardEntry.removed // its strings are freed now
        while queue.head < queue.items.count, !queue.items[queue.head].live { queue.head += 1 }
        if queue.head == queue.items.count {
            channels[queue.name] = nil
        } else if queue.head > 64 && queue.head * 2 > queue.items.count {
            queue.items.removeFirst(queue.head)
            queue.trimmed += queue.head
            queue.head = 0
        }
    }

    /// Each channel's oldest waiting entry (skipping `excluding`), oldest first: O(channels).
    /// They are remembered as handed out.
    mutating func channelHeads(excluding: Set<String>) -> [ForwardEntry] {
        var heads: [(position: UInt64, entry: ForwardEntry)] = []
        for (channel, queue) in channels where !excluding.contains(channel) {
            let head = queue.items[queue.head]
            heads.append((head.position, head.entry))
            handedOut[head.entry.id] = Location(queue: queue, index: queue.trimmed + queue.head)
        }
        heads.sort { $0.position < $1.position }
        return heads.map(\.entry)
    }

    /// The oldest waiting entry: O(channels).
    func firstPending() -> ForwardEntry? {
        var first: Waiting?
        for queue in channels.values where first == nil || queue.items[queue.head].position < first!.position {
            first = queue.items[queue.head]
        }
        return first?.entry
    }

    /// Every waiting entry with its seq, in append order (compaction, adoption, listing).
    func orderedPendingRecords() -> [PendingRecord] {
        var all: [Waiting] = []
        all.reserveCapacity(pendingCount)
        for queue in channels.values {
            for w in queue.items[queue.head...] where w.live { all.append(w) }
        }
        all.sort { $0.position < $1.position }
        return all.map { PendingRecord(entry: $0.entry, seq: $0.seq) }
    }

    func orderedPending() -> [ForwardEntry] { orderedPendingRecords().map(\.entry) }

    mutating func addDead(_ letter: DeadLetter, seq: UInt64, bytes: Int) {
        dead[letter.entry.id] = DeadSlot(letter: letter, seq: seq, bytes: bytes)
        deadOrder.append(Item(id: letter.entry.id, seq: seq))
        deadLiveBytes += bytes
        maxSeq = max(maxSeq, seq)
    }

    mutating func removeDead(_ id: String) {
        guard let slot = dead.removeValue(forKey: id) else { return }
        deadLiveBytes -= slot.bytes
        if deadOrder.count > 64 && deadOrder.count > 2 * dead.count + 64 { compactDeadOrder() }
    }

    mutating func compactDeadOrder() {
        deadOrder = deadOrder.filter { dead[$0.id]?.seq == $0.seq }
    }

    func orderedDeadSlots() -> [DeadSlot] {
        deadOrder.compactMap { item in dead[item.id].flatMap { $0.seq == item.seq ? $0 : nil } }
    }

    func orderedDead() -> [DeadLetter] { orderedDeadSlots().map(\.letter) }
}
