import Glibc
import XCTest
import WSCore
@testable import PresenceD

final class SendQueueTests: XCTestCase {
    func testPartialWritesAdvanceThroughSharedFrames() {
        let a = SharedBytes.copying([1, 2, 3]), b = SharedBytes.copying([4, 5]), c = SharedBytes.copying([6])
        var q = SendQueue()
        q.append(a); q.append(b); q.append(c)
        XCTAssertEqual(q.queuedBytes, 6)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 8)
        defer { iov.deallocate() }
        q.consume(4)
        XCTAssertEqual(q.queuedBytes, 2)
        XCTAssertEqual(q.fill(iov, capacity: 8), 2)
        XCTAssertEqual(iov[0].iov_len, 1)
        XCTAssertEqual(iov[0].iov_base.load(as: UInt8.self), 5)
        XCTAssertEqual(iov[1].iov_base.load(as: UInt8.self), 6)
        q.consume(2)
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.pendingFrames, 0)
    }

    func testTruncateKeepsFramesInFlight() {
        var q = SendQueue()
        for i in 0..<5 { q.append(SharedBytes.copying([UInt8(i), 0])) }
        q.consume(1)
        q.truncate(keeping: 2)
        XCTAssertEqual(q.pendingFrames, 2)
        XCTAssertEqual(q.queuedBytes, 3)
    }

    func testOneFrameSharedByManyQueuesIsNotCopied() {
        let frame = SharedBytes.copying([UInt8](repeating: 9, count: 1000))
        var queues = [SendQueue](repeating: SendQueue(), count: 100)
        for i in queues.indices { queues[i].append(frame) }
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 1)
        defer { iov.deallocate() }
        for q in queues {
            _ = q.fill(iov, capacity: 1)
            XCTAssertEqual(UnsafeRawPointer(iov[0].iov_base), frame.baseAddress)
        }
    }
}
