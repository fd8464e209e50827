import Foundation
import Glibc
import RedisShim
import RedisTestSupport
import XCTest

@testable import PresenceD
@testable import PresenceForwarding
@testable import PresenceLoop
@testable import PresenceOutbound

/// Redis mode's queue of one loop on a real loop and a real redis-server: the local queue takes
/// over while Redis is down, and its backlog moves to the stream in order while appends go on.
final class BufferedStreamForwardQueueTests: XCTestCase {
    private var redis: RedisServerProcess!
    private var harness: RedisQueueHarness!
    private var directory = ""
    private var factory = ForwardEntryFactory()
    private let stream = "presenced:{forward}"
    /// Touched on the loop's thread only.
    private var queue: BufferedStreamForwardQueue?

    override func setUpWithError() throws {
        redis = try RedisServerProcess()
        harness = try RedisQueueHarness(redisURL: redis.url())
        directory = NSTemporaryDirectory() + "presenced-buffered-" + RequestID.make()
    }

    override func tearDown() {
        _ = harness?.onLoop { (_, done: @escaping (Bool) -> Void) in
            self.queue?.close()
            self.queue = nil
            done(true)
        }
        harness?.stop()
        redis?.stop()
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    /// The queue on the harness' loop and connection; `localEntries` bounds the local queue (nil:
    /// no local queue).
    private func makeQueue(batchSize: Int = 200, localEntries: Int? = 100_000, streamEntries: Int = 100_000) {
        let directory = self.directory
        _ = harness.onLoop { (loop, done: @escaping (Bool) -> Void) in
            let local = localEntries.flatMap {
                try? FileForwardQueue.open(directory: directory, index: 0, options: FileForwardQueue.Options(maxEntries: $0))
            }
            let options = RedisStreamForwardQueue.Options(maxEntries: streamEntries)
            let queue = BufferedStreamForwardQueue(loop: loop, options: options, local: local, batchSize: batchSize)
            queue.attach(RedisStreamForwardQueue(redis: self.harness.connection!, consumer: "i/0", options: options))
            self.queue = queue
            done(true)
        }
    }

    private func append(_ entry: ForwardEntry) -> Result<Void, ForwardQueueError>? {
        harness.onLoop { (_, done: @escaping (Result<Void, ForwardQueueError>) -> Void) in self.queue!.append(entry, done) }
    }

    private func stored(_ result: Result<Void, ForwardQueueError>?) -> Bool {
        if case .success? = result { return true }
        return false
    }

    private func state() -> (route: BufferedStreamForwardQueue.Route, depth: Int, moved: UInt64)? {
        harness.onLoop { (_, done: @escaping ((BufferedStreamForwardQueue.Route, Int, UInt64)) -> Void) in
            done((self.queue!.route, self.queue!.localDepth, self.queue!.counters.movedToStream))
        }
    }

    private func connected() -> Bool {
        harness.onLoop { (_, done: @escaping (Bool) -> Void) in done(self.harness.connection?.isReady == true) } ?? false
    }

    private func wait(_ what: String, timeoutMillis: Int64 = 10_000, _ condition: () -> Bool) throws {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while !condition() {
            guard EventLoop.monotonicMillis() < end else {
                XCTFail("timed out waiting for \(what)")
                throw SystemError(call: "wait for \(what)", errno: ETIMEDOUT)
            }
            pause(millis: 2)
        }
    }

    /// Message ids in the stream, in stream order.
    private func streamIDs() -> [String] {
        let lines = redis.redisCLI("XRANGE", stream, "-", "+").split(separator: "\n").map(String.init)
        return lines.indices.compactMap { i in i > 0 && lines[i - 1] == "id" ? lines[i] : nil }
    }

    /// 100 messages kept locally while Redis is down; Redis back; appends go on, one after the
    /// other, while the backlog moves 5 at a time, and after it. The stream has every message
    /// once, in append order: nothing appended during the move overtook the backlog.
    func testTheBacklogMovesInOrderWhileAppendsGoOn() throws {
        makeQueue(batchSize: 5)
        redis.stop()
        try wait("the connection down") { !connected() }
        var appended: [ForwardEntry] = []
        for i in 0..<100 {
            let entry = factory.make("room", "m\(i)")
            guard case .success? = append(entry) else { return XCTFail("append \(i) during the outage") }
            appended.append(entry)
        }
        XCTAssertEqual(state()?.route, .local)
        XCTAssertEqual(state()?.depth, 100)
        XCTAssertEqual(streamIDs(), [])

        try redis.start()
        try wait("the connection back") { connected() }
        let end = EventLoop.monotonicMillis() + 20_000
        var after = 0
        while after < 20 {
            let entry = factory.make("room", "m\(appended.count)")
            guard case .success? = append(entry) else { return XCTFail("append \(appended.count) while moving") }
            appended.append(entry)
            if let s = state(), s.moved > 0, s.depth == 0, s.route == .stream { after += 1 }
            guard EventLoop.monotonicMillis() < end else { return XCTFail("the backlog did not move: \(String(describing: state()))") }
        }
        XCTAssertEqual(streamIDs(), appended.map(\.id), "in append order, each once")
        XCTAssertGreaterThan(appended.count, 120, "appends went on during the move")
    }

    /// The sender is refused only when the local queue refuses too (here: its bound), or when
    /// there is none; the stream's own bound is answered `.full` as before.
    func testRefusedOnlyWhenTheLocalQueueRefusesToo() throws {
        makeQueue(localEntries: 2, streamEntries: 1)
        XCTAssertTrue(stored(append(factory.make("room", "in the stream"))))
        if case .failure(let error)? = append(factory.make("room", "over the stream's bound")) {
            XCTAssertEqual(error, .full)
        } else {
            XCTFail("the stream's bound")
        }
        redis.stop()
        try wait("the connection down") { !connected() }
        XCTAssertTrue(stored(append(factory.make("room", "kept 1"))))
        XCTAssertTrue(stored(append(factory.make("room", "kept 2"))))
        if case .failure(let error)? = append(factory.make("room", "the disk refuses")) {
            XCTAssertEqual(error, .full)
        } else {
            XCTFail("the local bound")
        }

        _ = harness.onLoop { (_, done: @escaping (Bool) -> Void) in
            self.queue?.close()
            self.queue = nil
            done(true)
        }
        makeQueue(localEntries: nil)
        if case .failure(let error)? = append(factory.make("room", "no local queue")) {
            XCTAssertEqual(error, .unavailable)
        } else {
            XCTFail("without a local queue an outage refuses")
        }
    }
}
