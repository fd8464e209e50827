import RedisShim

/// libFuzzer entry for `RESPReader` (Sources/RedisShim/RESPReader.swift over hiredis' reader).
///
/// Input: byte 0 picks a chunk size (1...64, or everything at once when 0), the rest is the stream.
/// Invariants: the replies and whether the stream fails do not depend on how it is split; no reply
/// carries more payload bytes than were fed; every reply re-serialised as RESP reads back as the
/// same value and nothing else.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let stream = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let chunk = Int(data[0] % 65)
    let whole = read(stream, chunk: max(stream.count, 1))
    let split = read(stream, chunk: chunk == 0 ? max(stream.count, 1) : chunk)
    invariant(whole.values == split.values && whole.failed == split.failed, "chunking changed the replies: \(whole) vs \(split)")
    for value in whole.values {
        var bytes: [UInt8] = []
        serialise(value, into: &bytes)
        let again = bytes.withUnsafeBytes { read($0, chunk: max(bytes.count, 1)) }
        invariant(!again.failed && again.values == [value], "re-serialised \(value) reads back as \(again)")
    }
    return 0
}

/// Feeds `stream` in `chunk`-byte pieces, taking every reply after each piece.
private func read(_ stream: UnsafeRawBufferPointer, chunk: Int) -> (values: [RedisValue], failed: Bool) {
    // A small array bound: the default (4 Mi elements) let each input ask hiredis for a 32 MB table,
    // which cut the run to ~1,300 executions a second; the bound's own path is exercised either way.
    let reader = RESPReader(maxArrayElements: 4096)
    var values: [RedisValue] = []
    var offset = 0
    while offset < stream.count {
        let n = min(chunk, stream.count - offset)
        reader.feed(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + n)]))
        offset += n
        do {
            while let value = try reader.next() {
                invariant(payloadBytes(value) <= offset, "reply carries \(payloadBytes(value)) bytes after \(offset) fed")
                values.append(value)
            }
        } catch {
            return (values, true)
        }
    }
    return (values, false)
}

private func payloadBytes(_ value: RedisValue) -> Int {
    switch value {
    case .simple(let s), .error(let s): return min(s.utf8.count, Array(s.unicodeScalars).count)
    case .bulk(let b): return b.count
    case .integer, .null: return 0
    case .array(let items): return items.reduce(0) { $0 + payloadBytes($1) }
    }
}

private func serialise(_ value: RedisValue, into out: inout [UInt8]) {
    switch value {
    case .simple(let s): out += Array("+\(s)\r\n".utf8)
    case .error(let s): out += Array("-\(s)\r\n".utf8)
    case .integer(let i): out += Array(":\(i)\r\n".utf8)
    case .bulk(let b): out += Array("$\(b.count)\r\n".utf8) + b + [13, 10]
    case .null: out += Array("$-1\r\n".utf8)
    case .array(let items):
        out += Array("*\(items.count)\r\n".utf8)
        for item in items { serialise(item, into: &out) }
    }
}

private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("Invariant violated: \(message())") }
}
