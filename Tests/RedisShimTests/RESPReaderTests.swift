import RedisShim
import TestSupport
import XCTest

final class RESPReaderTests: XCTestCase {
    private func b(_ s: String) -> RedisValue { .bulk(Array(s.utf8)) }

    /// Every reply type, with its wire form.
    private var samples: [(String, RedisValue)] {
        [
            ("+OK\r\n", .simple("OK")),
            ("+\r\n", .simple("")),
            ("-ERR unknown command 'FOO'\r\n", .error("ERR unknown command 'FOO'")),
            (":0\r\n", .integer(0)),
            (":-42\r\n", .integer(-42)),
            (":9223372036854775807\r\n", .integer(Int64.max)),
            ("$5\r\nhello\r\n", b("hello")),
            ("$0\r\n\r\n", .bulk([])),
            ("$-1\r\n", .null),
            ("*-1\r\n", .null),
            ("*0\r\n", .array([])),
            ("*3\r\n$3\r\nfoo\r\n:7\r\n$-1\r\n", .array([b("foo"), .integer(7), .null])),
            ("*2\r\n*2\r\n+a\r\n-WRONGTYPE x\r\n*0\r\n", .array([.array([.simple("a"), .error("WRONGTYPE x")]), .array([])])),
            ("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n", .array([b("message"), b("news"), b("hi")])),
        ]
    }

    private func readAll(_ reader: borrowing RESPReader) throws -> [RedisValue] {
        var values: [RedisValue] = []
        while let v = try reader.next() { values.append(v) }
        return values
    }

    func testEveryReplyTypeInOneFeed() throws {
        for (wire, expected) in samples {
            let reader = RESPReader()
            reader.feed(Array(wire.utf8))
            XCTAssertEqual(try reader.next(), expected, wire)
            XCTAssertNil(try reader.next(), "nothing more after \(wire)")
        }
    }

    func testBinaryBulkKeepsCRLFAndZeroBytes() throws {
        let payload: [UInt8] = [0, 13, 10, 255, 36, 45, 13, 10, 0]
        let reader = RESPReader()
        reader.feed(Array("$\(payload.count)\r\n".utf8) + payload + Array("\r\n".utf8))
        XCTAssertEqual(try reader.next(), .bulk(payload))
    }

    func testByteByByteNeedsMoreUntilComplete() throws {
        let wire = Array("*2\r\n$3\r\nfoo\r\n:12\r\n".utf8)
        let reader = RESPReader()
        for (i, byte) in wire.enumerated() {
            reader.feed([byte])
            if i < wire.count - 1 {
                XCTAssertNil(try reader.next(), "complete too early at byte \(i)")
            }
        }
        XCTAssertEqual(try reader.next(), .array([b("foo"), .integer(12)]))
        XCTAssertNil(try reader.next())
    }

    func testPipelinedRepliesInRandomSplitsComeOutInOrder() throws {
        var rng = SplitMix(seed: 0x5EED)
        let all = samples
        for round in 0..<200 {
            var wire: [UInt8] = []
            var expected: [RedisValue] = []
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                let (w, v) = all[Int.random(in: 0..<all.count, using: &rng)]
                wire += Array(w.utf8)
                expected.append(v)
            }
            let reader = RESPReader()
            var got: [RedisValue] = []
            var offset = 0
            while offset < wire.count {
                let n = min(wire.count - offset, Int.random(in: 1...17, using: &rng))
                wire[offset..<offset + n].withUnsafeBytes { reader.feed($0) }
                offset += n
                got += try readAll(reader)
            }
            XCTAssertEqual(got, expected, "round \(round)")
        }
    }

    func testLargeBulkAcrossManyFeeds() throws {
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let wire = Array("$\(payload.count)\r\n".utf8) + payload + Array("\r\n:1\r\n".utf8)
        let reader = RESPReader()
        var values: [RedisValue] = []
        for start in stride(from: 0, to: wire.count, by: 4096) {
            wire[start..<min(wire.count, start + 4096)].withUnsafeBytes { reader.feed($0) }
            values += try readAll(reader)
        }
        XCTAssertEqual(values, [.bulk(payload), .integer(1)])
    }

    func testGarbageIsAProtocolError() {
        let reader = RESPReader()
        reader.feed(Array("+OK\r\n!nonsense\r\n".utf8))
        XCTAssertEqual(try reader.next(), .simple("OK"))
        XCTAssertThrowsError(try reader.next()) { error in
            guard case .protocolError(let message) = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("Protocol error"), message)
        }
    }

    func testBadLengthIsAProtocolError() {
        let reader = RESPReader()
        reader.feed(Array("$abc\r\n".utf8))
        XCTAssertThrowsError(try reader.next()) { error in
            guard case .protocolError = error as? RedisError else { return XCTFail("\(error)") }
        }
    }

    /// Found by `Fuzz/resp` (kept as `Fuzz/corpus/resp/crash_huge_array`): hiredis 0.14 allocated
    /// 8.9 GB for the header `*1111111112`. Arrays over the bound now fail the reader.
    func testArrayHeaderOverTheBoundIsAProtocolErrorWithoutAllocating() throws {
        let reader = RESPReader()
        reader.feed(Array("*1111111112\r\n".utf8))
        XCTAssertThrowsError(try reader.next()) { error in
            guard case .protocolError(let text) = error as? RedisError else { return XCTFail("\(error)") }
            XCTAssertEqual(text, "reply too large or out of memory")
        }
        let atBound = RESPReader()
        atBound.feed(Array("*\(RESPReader.maxArrayElements)\r\n".utf8))
        XCTAssertNil(try atBound.next(), "an array at the bound waits for its elements")
        let small = RESPReader(maxArrayElements: 2)
        small.feed(Array("*2\r\n:1\r\n:2\r\n*3\r\n".utf8))
        XCTAssertEqual(try small.next(), .array([.integer(1), .integer(2)]))
        XCTAssertThrowsError(try small.next(), "a reader's own bound applies")
    }

    func testValueConveniences() {
        XCTAssertEqual(RedisValue.simple("OK").string, "OK")
        XCTAssertEqual(b("héllo").string, "héllo")
        XCTAssertNil(RedisValue.integer(3).string)
        XCTAssertNil(RedisValue.error("ERR").string)
        XCTAssertEqual(RedisValue.integer(-3).int, -3)
        XCTAssertEqual(b("12").int, 12)
        XCTAssertNil(b("12a").int)
        XCTAssertNil(RedisValue.null.int)
        XCTAssertEqual(RedisValue.array([.null]).array, [.null])
        XCTAssertNil(RedisValue.null.array)
        XCTAssertTrue(RedisValue.null.isNull)
        XCTAssertFalse(RedisValue.bulk([]).isNull)
        XCTAssertEqual(b("xy").bytes, [120, 121])
    }
}
