/// What one ``FileForwardQueue``'s two logs hold, in memory: waiting entries in append order,
/// dead letters. Rebuilt from the logs' bytes (``load(forward:dead:)``) when a queue is opened
/// (or read for a listing or an adoption), then kept up to date by the queue's operations.
///
/// Waiting entries live in their channel's queue, in append order, with their place in the
/// queue's overall order. Appending — done for every chat message — is an array append: no
/// index by id is kept for them. The forwarder asks for each channel's oldest and settles what
/// it was handed, so those are remembered by id; any other id is searched for (tests, tools).
struct FileForwardQueueState {
    /// A waiting entry in its channel's queue (`live` false once acknowledged or moved).
    package struct Waiting {
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
    /// A dead letter with the seq and size of its `dead` record.
    struct DeadSlot {
        var letter: DeadLetter
        var seq: UInt64
        var bytes: Int
    }
    /// A dead letter's place in order; stale when the id's slot has another seq (or none).
    package struct Item {
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
    package var dead: [String: DeadSlot] = [:]
    var deadOrder: [Item] = []
    var deadLiveBytes = QueueLogFile.headerSize
    var maxSeq: UInt64 = 0
    /// Where intact records end in each log.
    var forwardEnd = QueueLogFile.headerSize
    var deadEnd = QueueLogFile.headerSize

    package static func load(forward: [UInt8], dead deadBytes: [UInt8]) -> FileForwardQueueState {
        var s = FileForwardQueueState()
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
        queue.items[i].entry = ForwardEntry.removed  // its strings are freed now
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
