import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

final class HeapUsageTests: XCTestCase {
    /// 40 MB in 4 KiB blocks (arena memory, below the mmap threshold) shows up as in use, is free
    /// after `free`, and leaves the process's resident set after `trim()`.
    func testFreedArenaMemoryIsCountedAndTrimmedBackToTheKernel() throws {
        if DaemonProcess.sanitizerOptions.contains(where: { ProcessInfo.processInfo.environment[$0] != nil }) {
            throw XCTSkip("sanitizer allocators replace glibc's malloc")
        }
        let before = HeapUsage.current()
        let blocks = (0..<10_000).map { _ -> UnsafeMutableRawPointer in
            let block = malloc(4096)!
            memset(block, 0x5a, 4096)
            return block
        }
        let filled = HeapUsage.current()
        XCTAssertGreaterThanOrEqual(filled.inUseBytes - before.inUseBytes, 40_000_000)
        // Free all but the last block, which pins the top of the heap: only trim's madvise of the
        // arena's inner free pages gives them back, the case a long-lived loop thread's arena is in.
        for block in blocks.dropLast() { free(block) }
        let freed = HeapUsage.current()
        XCTAssertLessThan(freed.inUseBytes - before.inUseBytes, 1_000_000)
        XCTAssertGreaterThanOrEqual(freed.freeBytes, 39_000_000)
        let residentBefore = try Self.residentBytes()
        HeapUsage.trim()
        let residentAfter = try Self.residentBytes()
        XCTAssertGreaterThan(residentBefore - residentAfter, 30_000_000, "trim gave back \(residentBefore - residentAfter) bytes")
        free(blocks.last!)
    }

    func testTrimWaitsForAQuietHeapWithEnoughFree() {
        let minimum = ProcessSupervisor.trimMinimumFreeBytes
        let quiet = HeapUsage(inUseBytes: 10_000_000, freeBytes: minimum)
        XCTAssertTrue(ProcessSupervisor.shouldTrim(previous: nil, now: quiet))
        XCTAssertTrue(ProcessSupervisor.shouldTrim(previous: quiet, now: quiet))
        XCTAssertFalse(ProcessSupervisor.shouldTrim(previous: quiet, now: HeapUsage(inUseBytes: 10_000_000, freeBytes: minimum - 1)))
        XCTAssertFalse(
            ProcessSupervisor.shouldTrim(previous: quiet, now: HeapUsage(inUseBytes: 10_200_000, freeBytes: minimum)),
            "a heap still growing (a storm) is left alone")
        XCTAssertLessThanOrEqual(minimum, 900_000, "below what 19,000 set-ups leave free (issue 19)")
    }

    private static func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return Int(statm[1])! * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
