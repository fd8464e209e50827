import Foundation
import Synchronization
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// `MemoryReplayGuard`: single use, expiry, concurrency, and bounded memory.
final class ReplayGuardTests: XCTestCase {
    func testFirstUseThenReplayed() {
        let guardian = MemoryReplayGuard()
        XCTAssertTrue(guardian.firstUse(jti: "a", expiresAt: 160, now: 100))
        XCTAssertFalse(guardian.firstUse(jti: "a", expiresAt: 160, now: 100))
        XCTAssertFalse(guardian.firstUse(jti: "a", expiresAt: 160, now: 150))
        XCTAssertTrue(guardian.firstUse(jti: "b", expiresAt: 160, now: 100))
        XCTAssertFalse(guardian.firstUse(jti: "b", expiresAt: 999, now: 101), "a new exp does not reset a seen jti")
    }

    func testRemembersUntilExpiryPlusLeeway() {
        let guardian = MemoryReplayGuard()
        XCTAssertTrue(guardian.firstUse(jti: "a", expiresAt: 160, now: 100))
        XCTAssertFalse(guardian.firstUse(jti: "a", expiresAt: 160, now: 165), "the verifier still accepts it at exp+5")
        XCTAssertTrue(guardian.firstUse(jti: "a", expiresAt: 160, now: 166), "forgotten once the token cannot verify")
    }

    func testAJTIForgottenThenSpentAgainIsRememberedUntilItsNewExpiry() {
        // No sweep in between: the expired entry is still stored when the jti comes again.
        let guardian = MemoryReplayGuard(leeway: 0, sweepInterval: 1_000_000)
        XCTAssertTrue(guardian.firstUse(jti: "a", expiresAt: 160, now: 100))
        XCTAssertTrue(guardian.firstUse(jti: "a", expiresAt: 300, now: 200), "forgotten after 160")
        XCTAssertEqual(guardian.count, 1)
        XCTAssertFalse(guardian.firstUse(jti: "a", expiresAt: 300, now: 250), "the stored entry carries the new time")
        XCTAssertTrue(guardian.wasUsed(jti: "a", now: 300))
        XCTAssertFalse(guardian.wasUsed(jti: "a", now: 301))
    }

    func testExpiryBeyondTheThirtyTwoBitClockIsKeptForGood() {
        let guardian = MemoryReplayGuard()
        XCTAssertTrue(guardian.firstUse(jti: "far", expiresAt: Int64.max - 1, now: 100))
        XCTAssertFalse(guardian.firstUse(jti: "far", expiresAt: Int64.max - 1, now: Int64(UInt32.max)))
        XCTAssertFalse(guardian.wasUsed(jti: "never", now: 100))
    }

    func testEntryIsTwelveBytes() {
        // Every idle connection keeps one until its token expires (issue 19).
        XCTAssertEqual(MemoryLayout<MemoryReplayGuard.Entry>.stride, 12)
    }

    func testUsableThroughTheProtocol() {
        let guardian: any ReplayGuard = MemoryReplayGuard()
        var answers: [ReplayCheck] = []
        guardian.firstUse(jti: "x", expiresAt: 10, now: 0) { answers.append($0) }
        guardian.firstUse(jti: "x", expiresAt: 10, now: 0) { answers.append($0) }
        XCTAssertEqual(answers, [.first, .replayed], "answered at once, first use only")
    }

    func testEightThreadsExactlyOneWinnerPerJTI() {
        let guardian = MemoryReplayGuard()
        let jtis = (0..<5000).map { "jti-\($0)" }
        let wins = Lock([Int](repeating: 0, count: jtis.count))
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            var local = [Int](repeating: 0, count: jtis.count)
            // Each thread walks the ids in a different order, so they collide everywhere.
            let order = thread.isMultiple(of: 2) ? Array(jtis.indices) : Array(jtis.indices.reversed())
            for index in order where guardian.firstUse(jti: jtis[index], expiresAt: 1060, now: 1000) {
                local[index] += 1
            }
            wins.withLock { total in for i in total.indices { total[i] += local[i] } }
        }
        wins.withLock { total in
            XCTAssertEqual(total.count, jtis.count)
            XCTAssertTrue(total.allSatisfy { $0 == 1 }, "every jti has exactly one winner")
        }
        XCTAssertEqual(guardian.count, jtis.count)
    }

    func testExpiredEntriesAreSweptWhenTimePasses() {
        let guardian = MemoryReplayGuard(leeway: 5, sweepInterval: 10)
        for i in 0..<1500 { XCTAssertTrue(guardian.firstUse(jti: "old-\(i)", expiresAt: 100, now: 90)) }
        XCTAssertEqual(guardian.count, 1500)
        // Past exp + leeway and past the next sweep time: the next insert sweeps.
        XCTAssertTrue(guardian.firstUse(jti: "new", expiresAt: 200, now: 106))
        XCTAssertEqual(guardian.count, 1)
        guardian.sweep(now: 206)
        XCTAssertEqual(guardian.count, 0)
    }

    func testExpiredEntriesAreSweptWhenTheMapGrows() {
        // The clock stands still between time-driven sweeps, but the map doubling triggers one.
        let guardian = MemoryReplayGuard(leeway: 0, sweepInterval: 1_000_000)
        XCTAssertTrue(guardian.firstUse(jti: "first", expiresAt: 0, now: 0))
        for i in 0..<1023 { _ = guardian.firstUse(jti: "short-\(i)", expiresAt: 1, now: 1) }
        XCTAssertEqual(guardian.count, 1024)
        _ = guardian.firstUse(jti: "trigger", expiresAt: 10, now: 2)
        XCTAssertEqual(guardian.count, 1, "entries that expired before now=2 were swept")
    }

    func testMemoryStaysBoundedByLiveTokens() {
        // 200 tokens a second, each living 60 s (+5 leeway): about 13,000 are live at any time.
        let guardian = MemoryReplayGuard()
        var now: Int64 = 1_000_000, peak = 0
        for i in 0..<100_000 {
            if i.isMultiple(of: 200) { now += 1 }
            XCTAssertTrue(guardian.firstUse(jti: "t\(i)", expiresAt: now + 60, now: now))
            if i.isMultiple(of: 100) { peak = max(peak, guardian.count) }
        }
        let live = 200 * 66
        XCTAssertLessThanOrEqual(peak, live + 200 * 10 + 200, "live tokens plus at most one sweep interval")
        guardian.sweep(now: now)
        XCTAssertLessThanOrEqual(guardian.count, live)
    }

    func testDigestsDifferAndIdentityIsTheDigest() {
        let entries = (0..<10_000).map { MemoryReplayGuard.Entry("jti-\($0)") }
        XCTAssertEqual(Set(entries).count, 10_000)
        XCTAssertEqual(MemoryReplayGuard.Entry("a", until: 1), MemoryReplayGuard.Entry("a", until: 2), "identity is the digest")
    }
}
