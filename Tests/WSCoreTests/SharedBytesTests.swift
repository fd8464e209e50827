import Foundation
import WSCore
import XCTest

final class SharedBytesTests: XCTestCase {
    func testMakeAndRead() {
        let shared = SharedBytes.make(count: 5) { buffer in
            for i in 0..<buffer.count { buffer[i] = UInt8(i + 1) }
        }
        XCTAssertEqual(shared.count, 5)
        XCTAssertEqual(shared.withBytes { Array($0) }, [1, 2, 3, 4, 5])
        XCTAssertEqual(shared.withBytes { $0.baseAddress }, shared.baseAddress)
    }

    func testEmpty() {
        let shared = SharedBytes.make(count: 0) { XCTAssertEqual($0.count, 0) }
        XCTAssertEqual(shared.count, 0)
        XCTAssertEqual(shared.withBytes { Array($0) }, [])
        XCTAssertEqual(SharedBytes.copying([UInt8]()).count, 0)
        XCTAssertEqual(SharedBytes.copying(UnsafeRawBufferPointer(start: nil, count: 0)).count, 0)
    }

    func testCopying() {
        let bytes: [UInt8] = Array(0...255)
        XCTAssertEqual(SharedBytes.copying(bytes).withBytes { Array($0) }, bytes)
        XCTAssertEqual(bytes.withUnsafeBytes { SharedBytes.copying($0) }.withBytes { Array($0) }, bytes)
        XCTAssertEqual(SharedBytes.copying(bytes[10..<20]).withBytes { Array($0) }, Array(10...19))
        XCTAssertEqual(SharedBytes.copying("héllo".utf8).withBytes { Array($0) }, Array("héllo".utf8))
        // A collection without contiguous storage.
        XCTAssertEqual(SharedBytes.copying(UInt8(3)..<UInt8(9)).withBytes { Array($0) }, [3, 4, 5, 6, 7, 8])
        XCTAssertEqual(SharedBytes.copying(bytes.lazy.map { $0 ^ 0xFF }).withBytes { Array($0) }, bytes.map { $0 ^ 0xFF })
    }

    func testBytesAreTailAllocatedInTheObject() {
        let shared = SharedBytes.copying([UInt8](repeating: 9, count: 1000))
        let object = UnsafeRawPointer(Unmanaged.passUnretained(shared).toOpaque())
        let offset = shared.baseAddress - object
        XCTAssert(offset > 0 && offset <= 32, "bytes follow the object header in the same allocation (offset \(offset))")
        XCTAssertEqual(shared.baseAddress, shared.baseAddress, "stable address")
    }

    func testOneFrameSharedByManyRecipientsWithoutCopying() {
        let frame = Array("{\"presence\":\"online\"}".utf8).withUnsafeBytes { FrameEncoder.serverFrame(.text, payload: $0) }
        let address = frame.baseAddress
        weak let weakFrame = frame
        var queues: [[SharedBytes]] = Array(repeating: [], count: 10_000)
        for i in queues.indices { queues[i].append(frame) }
        for queue in queues {
            XCTAssertTrue(queue[0] === frame)
            XCTAssertEqual(queue[0].baseAddress, address, "every recipient sends the same bytes")
        }
        XCTAssertNotNil(weakFrame)
        queues.removeAll()
        XCTAssertNotNil(weakFrame, "still held here")
        _ = frame.count
    }

    func testReleasedWhenTheLastRecipientLetsGo() {
        weak var weakFrame: SharedBytes?
        do {
            var recipients: [SharedBytes] = []
            do {
                let frame = SharedBytes.copying([1, 2, 3])
                weakFrame = frame
                recipients = Array(repeating: frame, count: 100)
            }
            XCTAssertNotNil(weakFrame)
            recipients.removeLast(99)
            XCTAssertNotNil(weakFrame)
            recipients.removeAll()
        }
        XCTAssertNil(weakFrame)
    }

    func testSendableAcrossThreads() async {
        let shared = SharedBytes.copying((0..<4096).map { UInt8(truncatingIfNeeded: $0) })
        let expected = shared.withBytes { $0.reduce(0) { $0 &+ Int($1) } }
        let sums = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { shared.withBytes { $0.reduce(0) { $0 &+ Int($1) } } }
            }
            var sums: [Int] = []
            for await sum in group { sums.append(sum) }
            return sums
        }
        XCTAssertEqual(sums, Array(repeating: expected, count: 16))
    }
}
