import PresenceLoop
import RedisShim

/// Redis mode's forward queue of one loop
/// (docs/operations.md, "Through a Redis outage (Redis mode)"): the shared Redis stream
/// (``RedisStreamForwardQueue``) and, in front of it, this instance's durable local queue (the
/// loop's ``FileForwardQueue`` under STATE_DIRECTORY) that keeps chat messages while Redis cannot
/// take them, so an outage refuses nothing; they move to the stream when Redis answers again.
///
/// **Appending** (where the realtime code's ``Forwarder/accept(_:_:)`` lands), by ``route``:
/// - `.stream` (nothing waits locally): one script call appends to the stream. When it fails
///   because of Redis (not connected, connection lost, timeout, an error reply), the entry is
///   written to the local queue instead and the sender is answered once it is on disk. `.full`
///   from the stream is answered as it is: that bound is chat-service's backlog, not an outage.
/// - `.local` (entries wait locally, or Redis is down): written behind them, so a channel's
///   messages keep their order.
/// - `.holding` (the last local entries are on their way to the stream): held in memory for that
///   one round trip, then sent to the stream (moved) or written locally (failed), in order.
///
/// The sender gets `unavailable` only when the local disk refuses too (or no local queue could
/// be opened).
///
/// **Moving**: while entries wait locally and Redis is ready, they go to the stream in their
/// order, up to ``batchSize`` (200) per script call, one call at a time; each is acknowledged in the
/// local queue only after the reply says the stream has it. A move stops at the stream's bound
/// and resumes a second later. Appends whose reply was lost with the connection (a timeout, a
/// dropped connection) may or may not have run — Redis runs a first part of what was sent, in
/// order — so before anything else is sent after such a loss the stream's writer mark
/// (``RedisStreamForwardQueue/lastAppended(_:)``) tells which of them ran; those are dropped from
/// the local queue instead of being added twice. At least once holds in any case: if presenced
/// dies between a move's reply and the local ack, the next start moves those entries again (and
/// chat-service dedupes by Idempotency-Key).
///
/// **Order**: within this instance a channel's messages enter the stream in the order they were
/// accepted, across any number of outages. Between instances nothing orders them during an
/// outage: each instance's backlog enters the stream when its own connection is back, so
/// messages of one channel accepted on two instances during an outage may be forwarded in
/// another order than they were accepted (their `created_at` and UUIDv7 ids still tell it). One
/// exception within an instance: an append refused with an error reply while the next one,
/// already sent, succeeds (a Redis that flaps on OOM) lets the later message go first.
///
/// Reading (only loop 0 delivers), dead letters and stats are the stream's; the local queue is
/// never delivered from. Its `fdatasync` and compaction run on this object's own timer, on
/// every loop. All on the owning loop's thread.
package final class BufferedStreamForwardQueue: ForwardQueue {
    /// Where an append goes now.
    enum Route: Equatable {
        case stream, local, holding
    }

    /// Entries per move (one script call; at most 4 KiB of content each, so about 1 MiB at most).
    static let defaultBatchSize = 200

    package unowned(unsafe) let loop: EventLoop
    package let options: RedisStreamForwardQueue.Options
    /// Nil when it could not be opened: an outage then refuses messages, as before it existed.
    package let local: FileForwardQueue?
    /// Entries per move.
    let batchSize: Int
    /// The loop's queue on the shared stream, from the moment the loop's Redis connection exists.
    private(set) var stream: RedisStreamForwardQueue?
    private(set) var route: Route

    /// The local queue's waiting entries in the order they were written (from `backlogHead`):
    /// moved front to back. (The file queue itself keeps them per channel.)
    private var backlog: [ForwardEntry]
    private var backlogHead = 0
    /// Local writes not completed yet (they complete at the end of the loop turn).
    private var writing = 0
    /// Stream appends sent and not answered yet.
    private var sending = 0
    /// Message ids whose stream append was sent and whose reply was lost with the connection,
    /// in the order they were sent: some first part of them may be in the stream.
    private var unsure: [String] = []
    /// Appends waiting while the last local entries are moved (route `.holding`).
    private var held: [(entry: ForwardEntry, done: (Result<Void, ForwardQueueError>) -> Void)] = []
    /// A move or a writer-mark check is in flight.
    private var moving = false
    private var moveScheduled = false
    private var closed = false
    /// The outage's first local write was logged (reset once the backlog is moved).
    private var outageLogged = false
    package private(set) var counters = Counters()

    /// This loop's figures for `/metrics`.
    package struct Counters: Equatable {
        /// Chat messages written to the local queue because Redis could not take them.
        package var queuedLocally: UInt64 = 0
        /// Of those (and of any left by an earlier run), the ones now in the stream.
        package var movedToStream: UInt64 = 0
    }

    /// Entries in the local queue waiting to be moved (written or being written).
    package var localDepth: Int { backlog.count - backlogHead + writing }

    /// On the loop's thread. Entries `local` holds (an earlier run stopped during an outage) are
    /// moved first, once Redis is ready.
    package init(
        loop: EventLoop, options: RedisStreamForwardQueue.Options, local: FileForwardQueue?,
        batchSize: Int = BufferedStreamForwardQueue.defaultBatchSize
    ) {
        self.loop = loop
        self.options = options
        self.local = local
        self.batchSize = max(1, batchSize)
        backlog = local?.peek(limit: .max) ?? []
        route = backlog.isEmpty ? .stream : .local
        if let local { scheduleLocalUpkeep(every: local.tickIntervalMillis) }
    }

    /// The loop's Redis connection exists: its queue on the stream (once).
    package func attach(_ stream: RedisStreamForwardQueue) {
        guard self.stream == nil, !closed else { return }
        self.stream = stream
        scheduleMove(after: 0)
    }

    // MARK: ForwardQueue: appending

    package func append(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        let entry = entry
        guard !closed else { return done(.failure(.io("queue closed"))) }
        switch route {
        case .holding:
            held.append((entry, done))
        case .local:
            keepLocally(entry, unsure: false, done)
        case .stream:
            guard let stream, stream.redis.isReady else {
                // Known to be down (or not attached yet): not even sent.
                return keepLocally(entry, unsure: false, done)
            }
            sending += 1
            stream.appendEntry(entry) { [self] result in
                sending -= 1
                switch result {
                case .success(true):
                    done(.success(()))
                case .success(false):
                    done(.failure(.full))
                case .failure(let error):
                    keepLocally(entry, unsure: error.mayHaveRun, done)
                }
            }
        }
    }

    /// Writes `entry` to the local queue (behind what waits there); from now on appends go there
    /// too until the backlog is moved. `unsure`: its stream append may have run.
    private func keepLocally(
        _ entry: ForwardEntry, unsure mayBeInStream: Bool,
        _ done: @escaping (Result<Void, ForwardQueueError>) -> Void
    ) {
        guard let local, !closed else { return done(.failure(.unavailable)) }
        if route == .stream { route = .local }
        if !outageLogged {
            outageLogged = true
            Log.warn(
                "Redis cannot take chat messages: they are kept in the local forward queue until it can",
                ["loop": "\(loop.index)"])
        }
        if mayBeInStream { unsure.append(entry.id) }
        writing += 1
        local.append(entry) { [self] result in
            writing -= 1
            switch result {
            case .success:
                backlog.append(entry)
                counters.queuedLocally += 1
                done(.success(()))
            case .failure(let error):
                // Not kept: if its stream append ran it is delivered, else the sender (told
                // `unavailable`) sends it again. Either way it is not ours to reconcile.
                if mayBeInStream, let i = unsure.firstIndex(of: entry.id) { unsure.remove(at: i) }
                done(.failure(error))
            }
            scheduleMove(after: 0)
        }
    }

    // MARK: Moving

    private func scheduleMove(after millis: Int64) {
        guard !moveScheduled, !closed else { return }
        moveScheduled = true
        _ = loop.schedule(after: millis) { [self] in
            moveScheduled = false
            move()
        }
    }

    /// One step: check the writer mark after a lost reply, else move the next batch, else (all
    /// moved) send appends to the stream again. Reschedules itself while there is work.
    private func move() {
        guard !closed, !moving else { return }
        let waiting = backlog.count - backlogHead
        guard waiting > 0 || writing > 0 || !unsure.isEmpty || route != .stream else { return }
        guard let stream, stream.redis.isReady else { return scheduleMove(after: 250) }
        // Appends still in flight finish first (they may yet add to `unsure`), and local
        // writes too before the mark is read (an unsure entry must be in the backlog to be dropped).
        if sending > 0 || (!unsure.isEmpty && writing > 0) { return scheduleMove(after: 5) }
        if !unsure.isEmpty { return checkWriterMark(stream) }
        if waiting == 0 {
            if writing == 0 { switchToStream() } else { scheduleMove(after: 5) }
            return
        }
        let batch = Array(backlog[backlogHead..<backlogHead + min(waiting, batchSize)])
        // The last of the backlog: appends wait for this reply instead of queueing behind it.
        if batch.count == waiting && writing == 0 { route = .holding }
        moving = true
        stream.appendBatch(batch) { [self] result in
            moving = false
            guard !closed else { return }
            switch result {
            case .success(let count):
                dropMoved(batch.prefix(count).map(\.id), alreadyInOrder: true)
                if count < batch.count {
                    // The stream is at FORWARD_QUEUE_MAX: chat-service is behind. Try again later.
                    release(to: .local)
                    scheduleMove(after: 1000)
                } else if backlog.count == backlogHead && writing == 0 {
                    switchToStream()
                } else {
                    release(to: .local)
                    scheduleMove(after: 0)
                }
            case .failure(let error):
                if error.mayHaveRun { unsure += batch.map(\.id) }
                release(to: .local)
                scheduleMove(after: 250)
            }
        }
    }

    /// After lost replies: the writer mark names the last append of this consumer that ran;
    /// the unsure entries up to it are in the stream already.
    private func checkWriterMark(_ stream: RedisStreamForwardQueue) {
        moving = true
        stream.lastAppended { [self] result in
            moving = false
            guard !closed else { return }
            guard case .success(let mark) = result else { return scheduleMove(after: 250) }
            let ran = mark.flatMap { unsure.firstIndex(of: $0) }.map { Array(unsure[...$0]) } ?? []
            unsure.removeAll()
            if !ran.isEmpty { dropMoved(ran, alreadyInOrder: false) }
            scheduleMove(after: 0)
        }
    }

    /// Entries the stream has now: acknowledged in the local queue (one write) and counted.
    private func dropMoved(_ ids: [String], alreadyInOrder: Bool) {
        guard !ids.isEmpty, let local else { return }
        do {
            try local.acknowledge(all: ids)
        } catch {
            // They are in the stream; the file still lists them, so a restart would add them
            // again (delivered twice at worst, deduped by chat-service).
            Log.error("local forward queue: moved entries could not be marked", ["loop": "\(loop.index)", "error": "\(error)"])
        }
        if alreadyInOrder {
            backlogHead += ids.count  // the front of the backlog, in order
        } else {
            let gone = Set(ids)
            backlog = backlog[backlogHead...].filter { !gone.contains($0.id) }
            backlogHead = 0
        }
        if backlogHead > 1024 && backlogHead * 2 > backlog.count {
            backlog.removeFirst(backlogHead)
            backlogHead = 0
        }
        counters.movedToStream += UInt64(ids.count)
    }

    /// The backlog is in the stream: appends go there directly again (the held ones first).
    private func switchToStream() {
        if outageLogged {
            outageLogged = false
            Log.info("local forward queue moved to the stream", ["loop": "\(loop.index)", "moved": "\(counters.movedToStream)"])
        }
        release(to: .stream)
    }

    /// Sets the route and re-appends the held entries, in order, by it.
    private func release(to next: Route) {
        route = next
        guard !held.isEmpty else { return }
        let waiting = held
        held.removeAll()
        for (entry, done) in waiting { append(entry, done) }
    }

    // MARK: ForwardQueue: the stream's part

    package func peek(
        limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool,
        _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void
    ) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.peek(limit: limit, excluding: excluding, oneEntryPerChannel: oneEntryPerChannel, done)
    }

    package func acknowledge(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.acknowledge(id, done)
    }

    package func recordAttempt(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.recordAttempt(id, done)
    }

    package func moveToDeadLetters(_ id: String, reason: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.moveToDeadLetters(id, reason: reason, done)
    }

    package func deadLetters(limit: Int, _ done: @escaping (Result<[DeadLetter], ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.deadLetters(limit: limit, done)
    }

    package func retryDeadLetter(_ id: String, _ done: @escaping (Result<Bool, ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.retryDeadLetter(id, done)
    }

    package func retryAllDeadLetters(_ done: @escaping (Result<Int, ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.retryAllDeadLetters(done)
    }

    package func stats(_ done: @escaping (Result<ForwardQueueStats, ForwardQueueError>) -> Void) {
        guard let stream else { return done(.failure(.unavailable)) }
        stream.stats(done)
    }

    package var tickIntervalMillis: Int64 { options.tickIntervalMillis }

    package var pollIntervalMillis: Int64? { RedisStreamForwardQueue.pollMillis }

    /// The reader's upkeep (loop 0): the stream's. The local queue has its own timer.
    package func tick() { stream?.tick() }

    /// Local writes of this turn go to disk together (and complete).
    package func endTurn() { local?.endTurn() }

    /// Held appends are written locally (nothing accepted is dropped), then both queues close.
    package func close() {
        guard !closed else { return }
        if route == .holding { release(to: .local) }
        closed = true
        stream?.close()
        local?.close()
    }

    private func scheduleLocalUpkeep(every interval: Int64) {
        _ = loop.schedule(after: interval) { [self] in
            guard !closed, let local else { return }
            local.tick()
            scheduleLocalUpkeep(every: interval)
        }
    }
}
