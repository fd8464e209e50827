import Glibc
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceForwarding
@testable import PresenceLoop
@testable import PresenceRealtime

/// A fresh directory under /tmp, removed with everything in it by `remove()`.
final class ForwardQueueTempDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/presenced-fwd-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemError(call: "mkdtemp", errno: errno)
        }
        path = String(cString: made)
    }

    func remove() {
        guard let dir = opendir(path) else { return }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names { unlink(path + "/" + name) }
        rmdir(path)
    }

    func size(_ name: String) -> Int {
        var info = stat()
        return stat(path + "/" + name, &info) == 0 ? Int(info.st_size) : -1
    }

    func exists(_ name: String) -> Bool { access(path + "/" + name, F_OK) == 0 }

    func read(_ name: String) -> [UInt8] {
        let fd = open(path + "/" + name, O_RDONLY)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    func write(_ name: String, _ bytes: [UInt8]) {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}

/// Entries with UUIDv7-shaped, increasing ids.
struct ForwardEntryFactory {
    var generator = MessageIDGenerator()

    mutating func make(_ channel: String, _ content: String, sender: String = "alice") -> ForwardEntry {
        let (id, millis) = generator.next()
        return ForwardEntry(
            id: id, channel: channel, sender: sender, content: content,
            createdAt: Timestamp.iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000)),
            requestID: "req-" + content, traceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    }
}

final class FileForwardQueueTests: XCTestCase {
    private var dir: ForwardQueueTempDirectory!
    private var factory = ForwardEntryFactory()

    override func setUpWithError() throws {
        dir = try ForwardQueueTempDirectory()
    }

    override func tearDown() {
        dir.remove()
    }

    private func open(
        _ index: Int = 0, _ options: FileForwardQueue.Options = .init(),
        adopting: [Int] = []
    ) throws -> FileForwardQueue {
        try FileForwardQueue.open(directory: dir.path, index: index, options: options, adopting: adopting)
    }

    private func contents(_ entries: [ForwardEntry]) -> [String] { entries.map(\.content) }

    func testAppendPeekAcknowledgeKeepsAppendOrder() throws {
        let queue = try open()
        defer { queue.close() }
        let entries = [
            factory.make("a", "a1"), factory.make("b", "b1"), factory.make("a", "a2"),
            factory.make("c", "c1"), factory.make("b", "b2"),
        ]
        for entry in entries { try queue.append(entry) }
        XCTAssertEqual(queue.peek(limit: 10), entries)
        XCTAssertEqual(contents(queue.peek(limit: 2)), ["a1", "b1"])
        XCTAssertEqual(contents(queue.peek(limit: 10, excluding: ["a"])), ["b1", "c1", "b2"])
        XCTAssertEqual(contents(queue.peek(limit: 10, oneEntryPerChannel: true)), ["a1", "b1", "c1"])
        XCTAssertEqual(contents(queue.peek(limit: 2, excluding: ["b"], oneEntryPerChannel: true)), ["a1", "c1"])

        try queue.acknowledge(all: [entries[1].id])
        try queue.acknowledge(all: [entries[0].id])
        try queue.acknowledge(all: ["no-such-id"])
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["a2", "c1", "b2"])
        XCTAssertEqual(queue.depth, 3)
        XCTAssertEqual(queue.oldestCreatedAt, entries[2].createdAt)
        try queue.recordAttempt(entries[3].id)
        try queue.recordAttempt(entries[3].id)
        XCTAssertEqual(queue.peek(limit: 10).map(\.attempts), [0, 2, 0])

        // Through the protocol: completions run at once.
        let any: any ForwardQueue = queue
        var seen: [String] = []
        any.peek(limit: 10) { seen = (try? $0.get())?.map(\.content) ?? ["failed"] }
        XCTAssertEqual(seen, ["a2", "c1", "b2"])
        var depth = -1
        any.stats { depth = (try? $0.get())?.depth ?? -2 }
        XCTAssertEqual(depth, 3)
    }

    /// A crash: the first queue is never closed or synced; a second opens the same files.
    func testReopeningAfterACrashKeepsWaitingEntriesAttemptsAndAcks() throws {
        let crashed = try open(0, .init(syncIntervalMillis: 60_000))
        let entries = (0..<5).map { factory.make("room", "m\($0)") }
        for entry in entries { try crashed.append(entry) }
        try crashed.acknowledge(all: [entries[1].id])
        try crashed.recordAttempt(entries[2].id)
        try crashed.moveToDeadLetters(entries[3].id, reason: "chat-service answered 422", atMillis: 1_000)

        let reopened = try open(0)
        defer { reopened.close() }
        XCTAssertEqual(contents(reopened.peek(limit: 10)), ["m0", "m2", "m4"])
        XCTAssertEqual(reopened.peek(limit: 10).map(\.attempts), [0, 1, 0])
        XCTAssertEqual(reopened.deadLetters().map(\.entry.content), ["m3"])
        XCTAssertEqual(reopened.recovery.pending, 3)
        XCTAssertEqual(reopened.recovery.truncatedBytes, 0)
        crashed.close()
    }

    func testTornLastRecordIsCutOffAndTheCompleteRecordsSurvive() throws {
        var queue = try open()
        let entries = (0..<3).map { factory.make("room", "message \($0)") }
        for entry in entries { try queue.append(entry) }
        let full = queue.fileBytes
        queue.close()
        XCTAssertEqual(dir.size("forward-0.log"), full)
        XCTAssertEqual(truncate(dir.path + "/forward-0.log", off_t(full - 5)), 0)

        queue = try open()
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["message 0", "message 1"])
        XCTAssertGreaterThan(queue.recovery.truncatedBytes, 0)
        let cut = queue.fileBytes
        XCTAssertEqual(dir.size("forward-0.log"), cut, "the torn tail is cut off the file")
        XCTAssertLessThan(cut, full - 5)
        // Appends go after the last complete record and survive the next open.
        try queue.append(entries[2])
        queue.close()
        queue = try open()
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["message 0", "message 1", "message 2"])
        XCTAssertEqual(queue.recovery.truncatedBytes, 0)
        queue.close()

        // A flipped byte in the last record (bad checksum) is treated the same way.
        var bytes = dir.read("forward-0.log")
        bytes[bytes.count - 2] ^= 0xFF
        dir.write("forward-0.log", bytes)
        queue = try open()
        defer { queue.close() }
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["message 0", "message 1"])
    }

    func testAFileThatIsNotAQueueIsRefusedNotOverwritten() throws {
        dir.write("forward-0.log", Array("hello, this is not a queue".utf8))
        XCTAssertThrowsError(try open()) { error in
            guard case .io(let message) = error as? ForwardQueueError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("not a presenced queue"), message)
        }
        XCTAssertEqual(dir.read("forward-0.log"), Array("hello, this is not a queue".utf8))
        // A header torn while the file was created is just an empty queue.
        dir.write("forward-1.log", Array("PFW".utf8))
        let queue = try open(1)
        defer { queue.close() }
        XCTAssertEqual(queue.depth, 0)
        try queue.append(factory.make("room", "x"))
    }

    func testBoundsRefuseWithFullUntilEntriesAreAcknowledged() throws {
        let queue = try open(0, .init(maxEntries: 3))
        defer { queue.close() }
        let entries = (0..<4).map { factory.make("room", "m\($0)") }
        for entry in entries.prefix(3) { try queue.append(entry) }
        XCTAssertThrowsError(try queue.append(entries[3])) { XCTAssertEqual($0 as? ForwardQueueError, .full) }
        var result: Result<Void, ForwardQueueError>?
        queue.append(entries[3]) { result = $0 }
        XCTAssertEqual(result.map { r -> ForwardQueueError? in if case .failure(let e) = r { return e } else { return nil } }, .full)
        XCTAssertEqual(queue.depth, 3, "nothing was written for the refused entry")
        try queue.acknowledge(all: [entries[0].id])
        try queue.append(entries[3])
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m1", "m2", "m3"])

        // The byte bound: room for two records of this size and a small one, not three.
        let big = String(repeating: "x", count: 1000)
        let bigRecord = QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(factory.make("room", big))
        let bytes = try open(1, .init(maxBytes: 2 * bigRecord + 300))
        defer { bytes.close() }
        try bytes.append(factory.make("room", big))
        try bytes.append(factory.make("room", big))
        XCTAssertThrowsError(try bytes.append(factory.make("room", big))) { XCTAssertEqual($0 as? ForwardQueueError, .full) }
        try bytes.append(factory.make("room", "small"))
    }

    /// A loop turn's appends: held until `endTurn`, then one write, then every completion; the
    /// bound counts what is batched; a closed queue still writes what it batched.
    func testBatchedAppendsAreWrittenTogetherAtTheEndOfTheTurn() throws {
        let queue = try open(0, .init(maxEntries: 3))
        queue.batchesAppends = true
        let entries = (0..<4).map { factory.make("room", "m\($0)") }
        var results: [String: Result<Void, ForwardQueueError>] = [:]
        for entry in entries { queue.append(entry) { results[entry.content] = $0 } }
        XCTAssertEqual(results.count, 1, "only the refused one completes at once")
        XCTAssertThrowsError(try results["m3"]?.get()) { XCTAssertEqual($0 as? ForwardQueueError, .full) }
        XCTAssertEqual(queue.depth, 0)
        XCTAssertEqual(queue.fileBytes, QueueLogFile.headerSize, "nothing written before the turn ends")

        queue.endTurn()
        XCTAssertEqual(results.count, 4)
        for name in ["m0", "m1", "m2"] { XCTAssertNoThrow(try results[name]!.get(), name) }
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m0", "m1", "m2"])
        XCTAssertEqual(
            queue.fileBytes,
            QueueLogFile.headerSize
                + entries.prefix(3).reduce(0) {
                    $0 + QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize($1)
                })

        try queue.acknowledge(all: [entries[0].id])
        var last: Result<Void, ForwardQueueError>?
        queue.append(entries[3]) { last = $0 }
        XCTAssertNil(last)
        queue.close()
        XCTAssertNotNil(try last?.get(), "closing writes and completes the batch")
        let reopened = try open(0)
        defer { reopened.close() }
        XCTAssertEqual(contents(reopened.peek(limit: 10)), ["m1", "m2", "m3"])
    }

    func testCompactionKeepsWaitingEntriesTheirAttemptsAndOrder() throws {
        var queue = try open(0, .init(compactMinBytes: 0))
        var entries: [ForwardEntry] = []
        for i in 0..<100 { entries.append(factory.make("channel-\(i % 7)", "m\(i)")) }
        for entry in entries { try queue.append(entry) }
        var kept: [ForwardEntry] = []
        for (i, entry) in entries.enumerated() {
            if i % 4 == 1 {
                kept.append(entry)
            } else {
                try queue.acknowledge(all: [entry.id])
            }
        }
        try queue.recordAttempt(kept[3].id)
        kept[3].attempts = 1
        let before = queue.fileBytes
        try queue.sync()
        XCTAssertEqual(queue.compactions, 1)
        XCTAssertLessThan(queue.fileBytes, before / 2)
        XCTAssertEqual(queue.fileBytes, dir.size("forward-0.log"))
        XCTAssertFalse(dir.exists("forward-0.log.compact"))
        XCTAssertEqual(queue.peek(limit: 1000), kept)
        // Still a log: more appends and acks after the compaction, then a reopen.
        let late = factory.make("channel-0", "late")
        try queue.append(late)
        try queue.acknowledge(all: [kept[0].id])
        kept.removeFirst()
        kept.append(late)
        queue.close()
        queue = try open(0, .init(compactMinBytes: 0))
        XCTAssertEqual(queue.peek(limit: 1000), kept)

        // Opening compacts a log that is mostly acknowledged.
        for entry in kept.dropLast() { try queue.acknowledge(all: [entry.id]) }
        queue.close()
        queue = try open(0, .init(compactMinBytes: 0))
        defer { queue.close() }
        XCTAssertTrue(queue.recovery.compacted)
        XCTAssertEqual(queue.peek(limit: 1000), [late])
        XCTAssertEqual(
            dir.size("forward-0.log"),
            QueueLogFile.headerSize + QueueLogFile.recordOverhead + ForwardEntryCodec.encodedSize(late))
    }

    func testDeadLettersAreListedRetriedAndKeptAcrossReopening() throws {
        var queue = try open()
        let entries = (0..<5).map { factory.make("room", "m\($0)") }
        for entry in entries { try queue.append(entry) }
        try queue.recordAttempt(entries[1].id)
        try queue.moveToDeadLetters(entries[1].id, reason: "chat-service answered 422", atMillis: 1_700_000_000_123)
        try queue.moveToDeadLetters(entries[3].id, reason: "chat-service answered 400", atMillis: 1_700_000_001_000)
        try queue.moveToDeadLetters("no-such-id", reason: "x")
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m0", "m2", "m4"])
        var letters = queue.deadLetters()
        XCTAssertEqual(letters.map(\.entry.content), ["m1", "m3"])
        XCTAssertEqual(letters.map(\.reason), ["chat-service answered 422", "chat-service answered 400"])
        XCTAssertEqual(letters[0].entry.attempts, 1)
        XCTAssertEqual(letters[0].at, "2023-11-14T22:13:20.123Z")
        XCTAssertEqual(letters[0].entry.traceParent, entries[1].traceParent)
        queue.close()

        // An operator listing while the daemon runs reads the files only.
        XCTAssertEqual(try FileForwardQueue.readDeadLetters(directory: dir.path).map(\.letter.entry.content), ["m1", "m3"])

        queue = try open()
        defer { queue.close() }
        letters = queue.deadLetters()
        XCTAssertEqual(letters.map(\.entry.content), ["m1", "m3"])
        XCTAssertEqual(try queue.retryDeadLetter(entries[3].id), true)
        XCTAssertEqual(try queue.retryDeadLetter(entries[3].id), false)
        XCTAssertEqual(try queue.retryDeadLetter("no-such-id"), false)
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m0", "m2", "m4", "m3"], "a retried letter goes to the end")
        XCTAssertEqual(queue.deadLetters().map(\.entry.content), ["m1"])
        XCTAssertEqual(try queue.retryAllDeadLetters(), 1)
        XCTAssertEqual(queue.deadLetters(), [])
        XCTAssertEqual(queue.peek(limit: 10).last?.content, "m1")
        XCTAssertEqual(queue.peek(limit: 10).last?.attempts, 0, "a retried letter starts again at attempt 0")
        queue.close()
        queue = try open()
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m0", "m2", "m4", "m3", "m1"])
        XCTAssertEqual(queue.deadLetters(), [])
    }

    func testRetryingDeadLettersStopsAtTheBound() throws {
        let queue = try open(0, .init(maxEntries: 2))
        defer { queue.close() }
        let entries = (0..<2).map { factory.make("room", "m\($0)") }
        for entry in entries { try queue.append(entry) }
        try queue.moveToDeadLetters(entries[0].id, reason: "r")
        try queue.moveToDeadLetters(entries[1].id, reason: "r")
        try queue.append(factory.make("room", "new"))
        XCTAssertEqual(try queue.retryAllDeadLetters(), 1)
        XCTAssertThrowsError(try queue.retryAllDeadLetters()) { XCTAssertEqual($0 as? ForwardQueueError, .full) }
        XCTAssertEqual(queue.deadLetters().map(\.entry.content), ["m1"], "what did not fit stays dead")
    }

    /// A crash between the two writes of a move leaves the entry in both logs; the later
    /// record wins on the next open.
    func testACrashHalfwayThroughAMoveIsSettledOnOpening() throws {
        var queue = try open()
        let entries = (0..<2).map { factory.make("room", "m\($0)") }
        for entry in entries { try queue.append(entry) }
        let forwardBefore = dir.read("forward-0.log")
        try queue.moveToDeadLetters(entries[0].id, reason: "gone")
        queue.close()
        dir.write("forward-0.log", forwardBefore)  // the queue's ack never made it
        queue = try open()
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m1"], "dead, not waiting")
        XCTAssertEqual(queue.deadLetters().map(\.entry.content), ["m0"])
        let deadBefore = dir.read("dead-letters-0.log")
        XCTAssertTrue(try queue.retryDeadLetter(entries[0].id))
        queue.close()
        dir.write("dead-letters-0.log", deadBefore)  // the retried mark never made it
        queue = try open()
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m1", "m0"], "waiting again, not dead")
        XCTAssertEqual(queue.deadLetters(), [])
        queue.close()
        queue = try open()
        defer { queue.close() }
        XCTAssertEqual(contents(queue.peek(limit: 10)), ["m1", "m0"], "and the settlement was written down")
        XCTAssertEqual(queue.deadLetters(), [])
    }

    /// A run with four loops left four queues; the next run has two loops.
    func testQueuesOfAnEarlierRunWithMoreLoopsAreAdopted() throws {
        var all: [ForwardEntry] = []
        var queues = try (0..<4).map { try open($0) }
        for i in 0..<12 {
            let entry = factory.make("room-\(i % 3)", "m\(i)")
            all.append(entry)
            try queues[i % 4].append(entry)
        }
        try queues[3].moveToDeadLetters(all[3].id, reason: "422")
        for q in queues { q.close() }
        let existing = FileForwardQueue.existingIndices(in: dir.path)
        XCTAssertEqual(existing, [0, 1, 2, 3])
        let plan = FileForwardQueue.adoptions(existing: existing, loops: 2)
        XCTAssertEqual(plan, [[2], [3]])

        queues = try (0..<2).map { try open($0, adopting: plan[$0]) }
        defer { for q in queues { q.close() } }
        XCTAssertEqual(queues[0].recovery.adopted, [2])
        XCTAssertEqual(queues[0].recovery.adoptedEntries, 3)
        XCTAssertEqual(queues[1].recovery.adoptedDeadLetters, 1)
        // Interleaved by id, i.e. in the order they were accepted.
        XCTAssertEqual(contents(queues[0].peek(limit: 100)), ["m0", "m2", "m4", "m6", "m8", "m10"])
        XCTAssertEqual(contents(queues[1].peek(limit: 100)), ["m1", "m5", "m7", "m9", "m11"])
        XCTAssertEqual(queues[1].deadLetters().map(\.entry.content), ["m3"])
        XCTAssertEqual(FileForwardQueue.existingIndices(in: dir.path), [0, 1])
        XCTAssertFalse(dir.exists("forward-2.log"))
        XCTAssertFalse(dir.exists("dead-letters-3.log"))
    }

    func testTheStateDirectoryCanBeLockedByOneProcessOnly() throws {
        let nested = dir.path + "/state"
        let fd = try FileForwardQueue.lockDirectory(nested)
        XCTAssertThrowsError(try FileForwardQueue.lockDirectory(nested)) { error in
            XCTAssertEqual(error as? ForwardQueueError, .io("\(nested) is in use by another presenced"))
        }
        close(fd)
        let again = try FileForwardQueue.lockDirectory(nested)
        close(again)
        unlink(nested + "/lock")
        rmdir(nested)
    }

    /// Each channel's oldest (the forwarder's question) agrees with the plain append-order scan
    /// through random appends, out-of-order acks, dead letters, retries and reopening.
    func testEachChannelsOldestAgreesWithAppendOrderThroughRandomOperations() throws {
        var rng = SplitMix(seed: 42)
        var queue = try open(0, .init(compactMinBytes: 4096))
        defer { queue.close() }
        let channels = (0..<6).map { "ch\($0)" }
        var compactions = 0
        for step in 0..<1500 {
            let waiting = queue.peek(limit: .max)
            switch rng.next() % 10 {
            case 0...4:
                try queue.append(factory.make(channels[Int(rng.next() % 6)], "s\(step)"))
            case 5...7 where !waiting.isEmpty:
                try queue.acknowledge(all: [waiting[Int(rng.next() % UInt64(waiting.count))].id])
            case 8 where !waiting.isEmpty:
                try queue.moveToDeadLetters(waiting[Int(rng.next() % UInt64(waiting.count))].id, reason: "r")
            case 9:
                if let letter = queue.deadLetters().first { try queue.retryDeadLetter(letter.entry.id) }
                if step % 300 == 9 {
                    let before = queue.peek(limit: .max), dead = queue.deadLetters()
                    try queue.sync()
                    compactions += queue.compactions
                    queue.close()
                    queue = try open(0, .init(compactMinBytes: 4096))
                    XCTAssertEqual(contents(queue.peek(limit: .max)), contents(before), "step \(step): reopened")
                    XCTAssertEqual(queue.peek(limit: .max).map(\.id), before.map(\.id), "step \(step): reopened")
                    XCTAssertEqual(queue.deadLetters(), dead, "step \(step): reopened")
                }
            default:
                break
            }
            if step % 100 == 50 { try queue.sync() }  // compacts when due
            let excluded = Set(channels.filter { _ in rng.next() % 3 == 0 })
            var seen = Set<String>()
            let expected = queue.peek(limit: .max).filter { !excluded.contains($0.channel) && seen.insert($0.channel).inserted }
            XCTAssertEqual(
                contents(queue.peek(limit: 100, excluding: excluded, oneEntryPerChannel: true)), contents(expected), "step \(step)")
            XCTAssertEqual(queue.peek(limit: 2, excluding: excluded, oneEntryPerChannel: true), Array(expected.prefix(2)), "step \(step)")
        }
        XCTAssertGreaterThan(compactions + queue.compactions, 0)
    }

    func testTenThousandEntriesAppendedAndAcknowledged() throws {
        let queue = try open(0, .init(compactMinBytes: 64 << 10))
        defer { queue.close() }
        let entries = (0..<10_000).map { factory.make("channel-\($0 % 50)", "message number \($0) with some text") }
        let start = EventLoop.monotonicMillis()
        for entry in entries { try queue.append(entry) }
        XCTAssertEqual(queue.depth, 10_000)
        var delivered = 0
        while true {
            let batch = queue.peek(limit: 64, oneEntryPerChannel: true)
            if batch.isEmpty { break }
            for entry in batch { try queue.acknowledge(all: [entry.id]) }
            delivered += batch.count
        }
        try queue.sync()
        XCTAssertEqual(delivered, 10_000)
        XCTAssertEqual(queue.depth, 0)
        XCTAssertEqual(queue.fileBytes, QueueLogFile.headerSize, "compacted to an empty log")
        print("FileForwardQueue: 10,000 appends + acks in \(EventLoop.monotonicMillis() - start) ms")
    }
}

final class ForwardQueueEntryTests: XCTestCase {
    func testEntryEncodingRoundTripsAndRejectsOtherVersions() {
        let entry = ForwardEntry(
            id: "0190b8c4-0000-7000-8000-000000000001", channel: "famille 🏠", sender: "zoë",
            content: "line 1\nline \"2\"\u{0}", createdAt: "2026-11-28T10:24:41.123Z",
            requestID: "", traceParent: "", attempts: 7)
        let bytes = ForwardEntryCodec.encoded(entry)
        XCTAssertEqual(bytes.count, ForwardEntryCodec.encodedSize(entry))
        XCTAssertEqual(ForwardEntryCodec.decode(bytes), entry)
        var other = bytes
        other[0] = 2
        XCTAssertNil(ForwardEntryCodec.decode(other))
        XCTAssertNil(ForwardEntryCodec.decode(Array(bytes.dropLast())))
        XCTAssertNil(ForwardEntryCodec.decode(bytes + [0]))
    }

    func testChecksumAndOldestAge() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([]), 0)
        let stats = ForwardQueueStats(depth: 1, bytes: nil, oldestCreatedAt: "1970-01-01T00:00:01.000Z", deadLetters: 0)
        XCTAssertEqual(stats.oldestAgeMillis(nowMillis: 3_500), 2_500)
    }
}
