import Foundation
import Synchronization
import XCTest

@testable import PresenceLoop

/// `WorkerPool`: bounded queue, concurrency, order, shutdown.
final class WorkerPoolTests: XCTestCase {
    func testFullQueueRefusesJobs() {
        let pool = WorkerPool(threads: 1, queueLimit: 2)
        defer { pool.shutdown() }
        XCTAssertEqual(pool.threadCount, 1)
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        XCTAssertTrue(
            pool.submit {
                started.signal()
                release.wait()
                finished.signal()
            })
        XCTAssertEqual(started.wait(timeout: .now() + 5), .success)
        XCTAssertTrue(pool.submit { finished.signal() })
        XCTAssertTrue(pool.submit { finished.signal() })
        XCTAssertEqual(pool.queued, 2)
        XCTAssertFalse(pool.submit { XCTFail("a refused job must not run") })
        release.signal()
        for _ in 0..<3 { XCTAssertEqual(finished.wait(timeout: .now() + 5), .success) }
        XCTAssertTrue(pool.submit { finished.signal() }, "room again once drained")
        XCTAssertEqual(finished.wait(timeout: .now() + 5), .success)
    }

    func testJobsRunConcurrently() {
        let pool = WorkerPool(threads: 3, queueLimit: 8)
        defer { pool.shutdown() }
        let arrived = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<3 {
            XCTAssertTrue(
                pool.submit {
                    // A barrier: passes only when all three jobs are running at the same time.
                    arrived.add(1, ordering: .relaxed)
                    let deadline = Date().addingTimeInterval(5)
                    while arrived.load(ordering: .relaxed) < 3 && Date() < deadline { usleep(1000) }
                    if arrived.load(ordering: .relaxed) == 3 { done.signal() }
                })
        }
        for _ in 0..<3 { XCTAssertEqual(done.wait(timeout: .now() + 6), .success) }
    }

    func testSingleWorkerRunsInOrderOffTheCallerThread() {
        let pool = WorkerPool(threads: 1, queueLimit: 100)
        defer { pool.shutdown() }
        let order = Lock<[Int]>([])
        let caller = pthread_self()
        let offCaller = Atomic<Bool>(true)
        let done = DispatchSemaphore(value: 0)
        for i in 0..<50 {
            XCTAssertTrue(
                pool.submit {
                    if pthread_equal(pthread_self(), caller) != 0 { offCaller.store(false, ordering: .relaxed) }
                    order.withLock { $0.append(i) }
                    if i == 49 { done.signal() }
                })
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(order.withLock { $0 }, Array(0..<50))
        XCTAssertTrue(offCaller.load(ordering: .relaxed))
    }

    func testShutdownRunsQueuedJobsThenRefuses() {
        let pool = WorkerPool(threads: 2, queueLimit: 10)
        let count = Atomic<Int>(0)
        let gate = DispatchSemaphore(value: 0)
        for _ in 0..<6 {
            XCTAssertTrue(
                pool.submit {
                    gate.wait()
                    count.add(1, ordering: .relaxed)
                })
        }
        pool.shutdown()
        XCTAssertFalse(pool.submit {})
        for _ in 0..<6 { gate.signal() }
        let deadline = Date().addingTimeInterval(5)
        while count.load(ordering: .relaxed) < 6 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(count.load(ordering: .relaxed), 6)
    }
}
