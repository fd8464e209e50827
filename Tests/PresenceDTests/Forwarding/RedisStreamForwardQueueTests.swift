import Dispatch
import Glibc
import RedisShim
import RedisTestSupport
import Synchronization
import XCTest

@testable import PresenceD
@testable import PresenceForwarding
@testable import PresenceLoop
@testable import PresenceRealtime

/// Redis stream queues on a real loop (an in-process presenced loop with `LoopRedisHost`); the
/// test thread posts each operation to the loop and waits for its completion.
final class RedisQueueHarness: @unchecked Sendable {
    let server: TestServer
    // Loop thread only:
    private(set) var connection: RedisConnection?
    private var queues: [String: RedisStreamForwardQueue] = [:]

    init(redisURL: String) throws {
        server = try TestServer(backend: .epoll, threads: 1)
        let endpoint = try RedisEndpoint.parse(redisURL)
        let options = RedisOptions(
            commandTimeoutMillis: 1000, connectTimeoutMillis: 500, backoffBaseMillis: 20,
            backoffCapMillis: 100, clientName: nil)
        _ = onLoop { (loop, done: @escaping (Bool) -> Void) in
            let connection = RedisConnection(endpoint: endpoint, host: LoopRedisHost(loop: loop), options: options)
            self.connection = connection
            connection.start()
            done(true)
        }
        let end = EventLoop.monotonicMillis() + 5000
        while onLoop({ (_, done: @escaping (Bool) -> Void) in done(self.connection?.isReady == true) }) != true {
            guard EventLoop.monotonicMillis() < end else { throw RedisServerError("Redis connection not ready") }
            pause(millis: 10)
        }
    }

    func stop() {
        _ = onLoop { (_, done: @escaping (Bool) -> Void) in
            for q in self.queues.values { q.close() }
            self.connection?.shutdown()
            done(true)
        }
        server.stop()
    }

    /// Runs `body` on the loop and waits (up to 5 s) for it to call `done`.
    func onLoop<T: Sendable>(_ body: @escaping (EventLoop, @escaping (T) -> Void) -> Void) -> T? {
        let answer = Lock<T?>(nil)
        let signal = DispatchSemaphore(value: 0)
        let job = UnsafeSendable(body)
        server.group.broadcast { loop in
            job.value(loop) { value in
                answer.withLock { $0 = value }
                signal.signal()
            }
        }
        guard signal.wait(timeout: .now() + 5) == .success else { return nil }
        return answer.withLock { $0 }
    }

    /// Creates queue `name` (consumer `name`) on the loop.
    func makeQueue(_ name: String, _ options: RedisStreamForwardQueue.Options) {
        _ = onLoop { (_, done: @escaping (Bool) -> Void) in
            self.queues[name] = RedisStreamForwardQueue(redis: self.connection!, consumer: name, options: options)
            done(true)
        }
    }

    /// Runs an operation of queue `name` and returns its result (nil: no completion within 5 s).
    func run<T: Sendable>(_ name: String, _ op: @escaping (RedisStreamForwardQueue, @escaping (T) -> Void) -> Void) -> T? {
        onLoop { (_, done: @escaping (T) -> Void) in op(self.queues[name]!, done) }
    }

    func append(_ name: String, _ entry: ForwardEntry) -> Result<Void, ForwardQueueError>? {
        run(name) { q, done in q.append(entry, done) }
    }

    func peek(
        _ name: String, limit: Int = 100, excluding: Set<String> = [], one: Bool = false
    ) -> Result<[ForwardEntry], ForwardQueueError>? {
        run(name) { q, done in q.peek(limit: limit, excluding: excluding, oneEntryPerChannel: one, done) }
    }

    func peeked(_ name: String, limit: Int = 100, excluding: Set<String> = [], one: Bool = false) -> [String] {
        switch peek(name, limit: limit, excluding: excluding, one: one) {
        case .success(let entries)?: return entries.map(\.content)
        case .failure(let error)?: return ["error: \(error)"]
        case nil: return ["no answer"]
        }
    }

    func acknowledge(_ name: String, _ id: String) -> Result<Void, ForwardQueueError>? {
        run(name) { q, done in q.acknowledge(id, done) }
    }

    /// `tick()`, then a round trip so its answer has been taken in.
    func tick(_ name: String) {
        _ = run(name) { (q, done: @escaping (Bool) -> Void) in
            q.tick()
            q.redis.send(RedisCommand("PING"), routingKey: nil) { _ in done(true) }
        }
    }
}

/// Compares results without caring about the success payload.
private func failure<T>(_ result: Result<T, ForwardQueueError>?) -> ForwardQueueError? {
    if case .failure(let error)? = result { return error }
    return nil
}

private func succeeded<T>(_ result: Result<T, ForwardQueueError>?) -> Bool {
    if case .success? = result { return true }
    return false
}

final class RedisStreamForwardQueueTests: XCTestCase {
    private var redis: RedisServerProcess!
    private var harness: RedisQueueHarness!
    private var factory = ForwardEntryFactory()
    private let stream = "presenced:{forward}"

    override func setUpWithError() throws {
        redis = try RedisServerProcess()
        harness = try RedisQueueHarness(redisURL: redis.url())
    }

    override func tearDown() {
        harness?.stop()
        harness = nil
        redis = nil
    }

    private func options(exclusive: Bool = false, maxEntries: Int = 1000, idle: Int64 = 500) -> RedisStreamForwardQueue.Options {
        .init(maxEntries: maxEntries, claimIdleMillis: idle, exclusiveReader: exclusive)
    }

    private func appendAll(_ name: String, _ entries: [ForwardEntry]) {
        for entry in entries { XCTAssertTrue(succeeded(harness.append(name, entry)), entry.content) }
    }

    func testAppendPeekAcknowledgeInStreamOrder() throws {
        harness.makeQueue("i1/0", options())
        let entries = [
            factory.make("a", "a1"), factory.make("b", "b1"), factory.make("a", "a2"),
            factory.make("c", "c1"), factory.make("b", "b2"),
        ]
        appendAll("i1/0", entries)
        XCTAssertEqual(redis.redisCLI("XLEN", stream), "5")
        XCTAssertEqual(try harness.peek("i1/0")?.get(), entries)
        XCTAssertEqual(harness.peeked("i1/0", limit: 2), ["a1", "b1"])
        XCTAssertEqual(harness.peeked("i1/0", excluding: ["a"]), ["b1", "c1", "b2"])
        XCTAssertEqual(harness.peeked("i1/0", one: true), ["a1", "b1", "c1"])

        for _ in 0..<2 {
            XCTAssertTrue(succeeded(harness.run("i1/0") { q, done in q.recordAttempt(entries[3].id, done) }))
        }
        XCTAssertTrue(succeeded(harness.acknowledge("i1/0", entries[1].id)))
        XCTAssertTrue(succeeded(harness.acknowledge("i1/0", entries[0].id)))
        XCTAssertTrue(succeeded(harness.acknowledge("i1/0", "no-such-id")))
        let left = try XCTUnwrap(try harness.peek("i1/0")?.get())
        XCTAssertEqual(left.map(\.content), ["a2", "c1", "b2"])
        XCTAssertEqual(left.map(\.attempts), [0, 2, 0])
        XCTAssertEqual(redis.redisCLI("XLEN", stream), "3", "acknowledged entries are deleted")
        XCTAssertEqual(redis.redisCLI("XPENDING", stream, "presenced").split(separator: "\n").first, "3")
        let stats = try XCTUnwrap(try harness.run("i1/0") { q, done in q.stats(done) }?.get())
        XCTAssertEqual(stats, ForwardQueueStats(depth: 3, bytes: nil, oldestCreatedAt: entries[2].createdAt, deadLetters: 0))
        // The fields are readable with redis-cli.
        XCTAssertTrue(redis.redisCLI("XRANGE", stream, "-", "+", "COUNT", "1").contains(entries[2].traceParent))
    }

    /// A consumer that read entries and then crashed (never acknowledged, never ticked): another
    /// consumer claims them once they have been idle long enough — in order, attempts kept.
    func testEntriesOfACrashedConsumerAreClaimedAfterTheIdleTime() throws {
        harness.makeQueue("crashed/0", options())
        harness.makeQueue("survivor/1", options())
        let entries = (0..<3).map { factory.make("room", "m\($0)") }
        appendAll("crashed/0", entries)
        XCTAssertEqual(harness.peeked("crashed/0"), ["m0", "m1", "m2"])
        XCTAssertTrue(succeeded(harness.run("crashed/0") { q, done in q.recordAttempt(entries[1].id, done) }))
        XCTAssertEqual(harness.peeked("survivor/1"), [], "held by a consumer that may still be alive")
        pause(millis: 750)
        let claimed = try XCTUnwrap(try harness.peek("survivor/1")?.get())
        XCTAssertEqual(claimed.map(\.content), ["m0", "m1", "m2"])
        XCTAssertEqual(claimed.map(\.attempts), [0, 1, 0])
        let later = factory.make("room", "m3")
        appendAll("survivor/1", [later])
        XCTAssertEqual(harness.peeked("survivor/1"), ["m0", "m1", "m2", "m3"])
        for entry in entries + [later] { XCTAssertTrue(succeeded(harness.acknowledge("survivor/1", entry.id))) }
        XCTAssertEqual(redis.redisCLI("XLEN", stream), "0")
        XCTAssertEqual(harness.peeked("survivor/1"), [])
    }

    /// A live consumer's `tick()` keeps its entries from being claimed.
    func testTickingKeepsHeldEntriesFromOtherConsumers() throws {
        harness.makeQueue("alive/0", options())
        harness.makeQueue("other/0", options())
        appendAll("alive/0", (0..<2).map { factory.make("room", "m\($0)") })
        XCTAssertEqual(harness.peeked("alive/0"), ["m0", "m1"])
        for _ in 0..<8 {
            pause(millis: 100)
            harness.tick("alive/0")
        }
        XCTAssertEqual(harness.peeked("other/0"), [], "800 ms > idle time, but refreshed every 100 ms")
        XCTAssertEqual(harness.peeked("alive/0"), ["m0", "m1"])
        // Once it stops ticking they move; its next tick sees they are gone.
        pause(millis: 750)
        XCTAssertEqual(harness.peeked("other/0"), ["m0", "m1"])
        harness.tick("alive/0")
        XCTAssertEqual(harness.peeked("alive/0"), [], "claimed by another consumer: no longer ours to send")
    }

    /// With the reader lease only one consumer reads; another takes over after the lease.
    func testOneReaderAtATimeAndATakeoverAfterTheLease() throws {
        harness.makeQueue("reader/0", options(exclusive: true))
        harness.makeQueue("standby/1", options(exclusive: true))
        appendAll("standby/1", (0..<3).map { factory.make("room", "m\($0)") })
        XCTAssertEqual(harness.peeked("reader/0"), ["m0", "m1", "m2"])
        XCTAssertEqual(redis.redisCLI("GET", stream + ":reader"), "reader/0")
        XCTAssertEqual(harness.peeked("standby/1"), [], "not the reader")
        XCTAssertEqual(harness.run("standby/1") { (q, done: @escaping (Bool) -> Void) in done(q.isReader) }, false)
        appendAll("standby/1", [factory.make("room", "m3")])
        XCTAssertEqual(harness.peeked("reader/0"), ["m0", "m1", "m2", "m3"])
        // The reader dies (no more peeks or ticks): after the lease and the idle time the other
        // consumer reads, starting with what the dead one held.
        pause(millis: 750)
        XCTAssertEqual(harness.peeked("standby/1"), ["m0", "m1", "m2", "m3"])
        XCTAssertEqual(redis.redisCLI("GET", stream + ":reader"), "standby/1")
        XCTAssertEqual(harness.peeked("reader/0"), [], "it lost the lease")
        XCTAssertEqual(harness.run("reader/0") { (q, done: @escaping (Int) -> Void) in done(q.heldCount) }, 0)
    }

    func testTheBoundRefusesWithFullInsteadOfTrimming() throws {
        harness.makeQueue("i/0", options(maxEntries: 2))
        let entries = (0..<3).map { factory.make("room", "m\($0)") }
        appendAll("i/0", Array(entries.prefix(2)))
        XCTAssertEqual(failure(harness.append("i/0", entries[2])), .full)
        XCTAssertEqual(redis.redisCLI("XLEN", stream), "2")
        XCTAssertEqual(harness.peeked("i/0"), ["m0", "m1"])
        XCTAssertTrue(succeeded(harness.acknowledge("i/0", entries[0].id)))
        XCTAssertTrue(succeeded(harness.append("i/0", entries[2])))
        XCTAssertEqual(harness.peeked("i/0"), ["m1", "m2"])
    }

    func testDeadLettersAreListedAndRetried() throws {
        harness.makeQueue("i/0", options(maxEntries: 3))
        let entries = (0..<3).map { factory.make("room", "m\($0)") }
        appendAll("i/0", entries)
        XCTAssertEqual(harness.peeked("i/0"), ["m0", "m1", "m2"])
        XCTAssertTrue(succeeded(harness.run("i/0") { q, done in q.recordAttempt(entries[1].id, done) }))
        let before = UnixTime.nowMillis()
        XCTAssertTrue(
            succeeded(harness.run("i/0") { q, done in q.moveToDeadLetters(entries[1].id, reason: "chat-service answered 422", done) }))
        XCTAssertEqual(harness.peeked("i/0"), ["m0", "m2"])
        XCTAssertEqual(redis.redisCLI("XLEN", stream), "2")
        let letters = try XCTUnwrap(try harness.run("i/0") { q, done in q.deadLetters(limit: 10, done) }?.get())
        XCTAssertEqual(letters.map(\.entry.content), ["m1"])
        XCTAssertEqual(letters.first?.reason, "chat-service answered 422")
        XCTAssertEqual(letters.first?.entry.attempts, 1)
        XCTAssertEqual(letters.first?.entry.id, entries[1].id)
        XCTAssertGreaterThanOrEqual(letters.first?.atMillis ?? 0, before)

        // Full queue: the dead letter stays dead.
        XCTAssertTrue(succeeded(harness.append("i/0", factory.make("room", "filler"))))
        XCTAssertEqual(failure(harness.run("i/0") { q, done in q.retryDeadLetter(entries[1].id, done) }), .full)
        XCTAssertEqual(failure(harness.run("i/0") { q, done in q.retryAllDeadLetters(done) }), .full)
        XCTAssertEqual(harness.peeked("i/0"), ["m0", "m2", "filler"])
        XCTAssertTrue(succeeded(harness.acknowledge("i/0", entries[0].id)))

        XCTAssertEqual(try harness.run("i/0") { q, done in q.retryDeadLetter(entries[1].id, done) }?.get(), true)
        XCTAssertEqual(try harness.run("i/0") { q, done in q.retryDeadLetter(entries[1].id, done) }?.get(), false)
        XCTAssertEqual(try harness.run("i/0") { q, done in q.retryDeadLetter("no-such-id", done) }?.get(), false)
        let requeued = try XCTUnwrap(try harness.peek("i/0")?.get())
        XCTAssertEqual(requeued.map(\.content), ["m2", "filler", "m1"], "a retried letter goes to the end")
        XCTAssertEqual(requeued.last?.attempts, 0)

        for entry in [entries[2], entries[1]] {
            XCTAssertTrue(succeeded(harness.run("i/0") { q, done in q.moveToDeadLetters(entry.id, reason: "400", done) }))
        }
        XCTAssertEqual(redis.redisCLI("XLEN", stream + ":dead"), "2")
        XCTAssertEqual(try harness.run("i/0") { q, done in q.retryAllDeadLetters(done) }?.get(), 2)
        XCTAssertEqual(redis.redisCLI("XLEN", stream + ":dead"), "0")
        XCTAssertEqual(harness.peeked("i/0"), ["filler", "m2", "m1"])
        let stats = try XCTUnwrap(try harness.run("i/0") { q, done in q.stats(done) }?.get())
        XCTAssertEqual(stats.depth, 3)
        XCTAssertEqual(stats.deadLetters, 0)
    }

    func testRedisDownAnswersUnavailableAndRecovers() throws {
        harness.makeQueue("i/0", options())
        appendAll("i/0", [factory.make("room", "m0")])
        redis.stop()
        XCTAssertEqual(failure(harness.append("i/0", factory.make("room", "m1"))), .unavailable)
        XCTAssertEqual(failure(harness.peek("i/0")), .unavailable)
        XCTAssertEqual(failure(harness.run("i/0") { q, done in q.stats(done) }), .unavailable)
        XCTAssertEqual(failure(harness.run("i/0") { q, done in q.deadLetters(limit: 1, done) }), .unavailable)

        try redis.start()
        let end = EventLoop.monotonicMillis() + 3000
        var result = harness.append("i/0", factory.make("room", "m2"))
        while !succeeded(result) && EventLoop.monotonicMillis() < end {
            pause(millis: 20)
            result = harness.append("i/0", factory.make("room", "m2"))
        }
        XCTAssertTrue(succeeded(result), "appends work again once Redis is back")
        XCTAssertEqual(harness.peeked("i/0"), ["m2"], "a new stream and group (this server keeps no data)")
    }
}
