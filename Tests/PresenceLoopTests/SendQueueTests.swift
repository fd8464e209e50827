import Glibc
import WSCore
import XCTest

@testable import PresenceLoop

final class SendQueueTests: XCTestCase {
    func testPartialWritesAdvanceThroughSharedFrames() {
        let pool = FramePool(capacity: 2)
        let a = SharedBytes.copying([1, 2, 3]), b = SharedBytes.copying([4, 5]), c = SharedBytes.copying([6])
        var q = SendQueue()
        q.append(a, pool)
        q.append(b, pool)
        q.append(c, pool)
        XCTAssertEqual(q.queuedBytes, 6)
        XCTAssertEqual(pool.used, 3)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 8)
        defer { iov.deallocate() }
        q.consume(4, pool)
        XCTAssertEqual(q.queuedBytes, 2)
        XCTAssertEqual(pool.used, 2)
        XCTAssertEqual(q.fill(iov, capacity: 8, pool), 2)
        XCTAssertEqual(iov[0].iov_len, 1)
        XCTAssertEqual(iov[0].iov_base.load(as: UInt8.self), 5)
        XCTAssertEqual(iov[1].iov_base.load(as: UInt8.self), 6)
        q.consume(2, pool)
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.pendingFrames, 0)
        XCTAssertEqual(pool.used, 0)
    }

    func testTruncateKeepsFramesInFlight() {
        let pool = FramePool(capacity: 4)
        var q = SendQueue()
        for i in 0..<5 { q.append(SharedBytes.copying([UInt8(i), 0]), pool) }
        q.consume(1, pool)
        q.truncate(keeping: 2, pool)
        XCTAssertEqual(q.pendingFrames, 2)
        XCTAssertEqual(q.queuedBytes, 3)
        XCTAssertEqual(pool.used, 2)
        // The queue still works after truncation: appends go after the kept frames.
        q.append(SharedBytes.copying([7]), pool)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 8)
        defer { iov.deallocate() }
        XCTAssertEqual(q.fill(iov, capacity: 8, pool), 3)
        XCTAssertEqual(iov[2].iov_base.load(as: UInt8.self), 7)
        q.truncate(keeping: 0, pool)
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(pool.used, 0)
    }

    func testQueuesShareThePoolAndFramesAreNotCopied() {
        let pool = FramePool(capacity: 8)
        let frame = SharedBytes.copying([UInt8](repeating: 9, count: 1000))
        var queues = [SendQueue](repeating: SendQueue(), count: 100)
        for i in queues.indices { queues[i].append(frame, pool) }
        XCTAssertGreaterThanOrEqual(pool.capacity, 100)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 1)
        defer { iov.deallocate() }
        for q in queues {
            XCTAssertEqual(q.fill(iov, capacity: 1, pool), 1)
            XCTAssertEqual(UnsafeRawPointer(iov[0].iov_base), frame.baseAddress)
        }
        for i in queues.indices { queues[i].removeAll(pool) }
        XCTAssertEqual(pool.used, 0)
    }
}
