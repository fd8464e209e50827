import WSCore

/// libFuzzer entry for `HTTPRequestParser` (Sources/WSCore/HTTPRequestParser.swift, HTTPHeadParser.swift).
///
/// Input: byte 0 picks a chunk size (1...32, or the whole input when 0), the rest is the byte stream.
/// Invariants: the outcome does not depend on how the stream is split; `consumed` lies inside the
/// last feed and the head ends with a blank line; a parsed head re-serialised parses to the same head
/// and consumes exactly the serialised bytes; feeding after completion reports `consumed: 0`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let chunk = Int(data[0] % 33)
    let stream = UnsafeRawBufferPointer(start: data + 1, count: size - 1)

    var whole = HTTPRequestParser(maxHeadSize: 4096)
    let once = whole.feed(stream)
    var onceOffset = -1
    if case .complete(let head, let consumed) = once {
        onceOffset = consumed
        invariant(consumed > 0 && consumed <= stream.count, "consumed \(consumed) outside input of \(stream.count)")
        let tail = Array(stream[..<consumed].suffix(2))
        invariant(tail == [0x0A, 0x0A] || tail == [0x0D, 0x0A] && consumed >= 4, "head does not end with a line ending")
        reserialise(head)
        invariant(whole.feed(stream) == .complete(head, consumed: 0), "feed after completion must consume nothing")
    }
    if case .needMoreData = once {
        invariant(stream.count < 4096 + 4, "head over the limit still needs more data")
    }

    // Same stream, fed in pieces.
    var pieces = HTTPRequestParser(maxHeadSize: 4096)
    var offset = 0
    var split = HTTPRequestParser.Result.needMoreData
    var splitOffset = -1
    let step = chunk == 0 ? max(stream.count, 1) : chunk
    while offset < stream.count {
        let n = min(step, stream.count - offset)
        split = pieces.feed(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + n)]))
        if case .complete(_, let consumed) = split {
            invariant(consumed > 0 && consumed <= n, "consumed \(consumed) outside the last feed of \(n)")
            splitOffset = offset + consumed
            break
        }
        if case .failure = split { break }
        offset += n
    }
    switch (once, split) {
    case (.complete(let a, _), .complete(let b, _)):
        invariant(a == b && onceOffset == splitOffset, "split feeding changed the head or its end")
    case (.needMoreData, .needMoreData):
        break
    case (.failure(let a), .failure(let b)):
        invariant(a.status == b.status, "split feeding changed the error: \(a) vs \(b)")
    default:
        invariant(false, "split feeding changed the outcome: \(once) vs \(split)")
    }
    return 0
}

/// Writes `head` back as HTTP/1.1 text and checks that it parses to the same head.
private func reserialise(_ head: HTTPRequestHead) {
    var text = "\(head.method) \(head.target) HTTP/\(head.versionMajor).\(head.versionMinor)\r\n"
    for field in head.headers { text += "\(field.name): \(field.value)\r\n" }
    text += "\r\n"
    var again = HTTPRequestParser(maxHeadSize: 1 << 20)
    let bytes = Array(text.utf8)
    let result = bytes.withUnsafeBytes { again.feed($0) }
    invariant(
        result == .complete(head, consumed: bytes.count), "re-serialised head parses differently: \(result) from \(text.debugDescription)")
    _ = head.queryParameter("token")
    _ = head.keepAlive
}

private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("Invariant violated: \(message())") }
}
