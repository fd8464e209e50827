import WSCore

/// libFuzzer entry for `FrameDecoder` and `UTF8Validator` (Sources/WSCore/FrameDecoder.swift, UTF8Validator.swift).
///
/// Input: byte 0 picks the role and message limit, bytes 1–4 are a cycle of chunk sizes (1...64), the
/// rest is the byte stream. The stream is decoded once as a single receive buffer and once in chunks.
/// Invariants: both give the same events; the payload bytes reported never exceed the bytes fed;
/// messages respect the limit, control payloads 125 bytes, text and close reasons are valid UTF-8
/// (checked against the standard library) and close codes are valid on the wire (RFC 6455 §7.4 plus the IANA registry's 1012–1014); a failure is sticky;
/// `consumed` never leaves the buffer and `.needMoreData` means the whole buffer was taken. The
/// UTF-8 validator, fed the same chunks, agrees with the standard library.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 5 else { return 0 }
    let role: FrameDecoder.Role = data[0] & 1 == 0 ? .server : .client
    let limits = [0, 1, 125, 126, 200, 65535, 65536, 1 << 20]
    let limit = limits[Int(data[0] >> 1) % limits.count]
    let sizes = (1...4).map { Int(data[$0] % 64) + 1 }
    let stream = Array(UnsafeBufferPointer(start: data + 5, count: size - 5))

    let whole = decode(stream, chunks: [max(stream.count, 1)], role: role, limit: limit)
    let split = decode(stream, chunks: sizes, role: role, limit: limit)
    invariant(whole == split, "chunking changed the events:\n\(whole)\nvs\n\(split)")

    // UTF-8 validator: incremental over the chunks, and one-shot, against the standard library.
    let expected = String(validating: stream, as: UTF8.self) != nil
    var validator = UTF8Validator()
    var ok = true, offset = 0, i = 0
    stream.withUnsafeBytes { raw in
        while offset < raw.count && ok {
            let n = min(sizes[i % sizes.count], raw.count - offset)
            ok = validator.feed(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + n)]))
            offset += n
            i += 1
        }
        invariant(UTF8Validator.isValid(raw) == expected, "UTF8Validator.isValid disagrees with the standard library")
    }
    invariant((ok && validator.isComplete) == expected, "incremental UTF8Validator disagrees with the standard library")
    return 0
}

/// One decoded event, with its payload copied out.
private enum Event: Equatable {
    case text([UInt8]), binary([UInt8]), ping([UInt8]), pong([UInt8])
    case close(UInt16?, [UInt8])
    case failure(UInt16)
}

/// Decodes `stream` delivered in receive buffers of the cycled `chunks` sizes, checking each event.
private func decode(_ stream: [UInt8], chunks: [Int], role: FrameDecoder.Role, limit: Int) -> [Event] {
    var decoder = FrameDecoder(role: role, maxMessageSize: limit)
    var events: [Event] = []
    var fed = 0, reported = 0, offset = 0, i = 0
    while offset < stream.count {
        let n = min(chunks[i % chunks.count], stream.count - offset)
        i += 1
        var buffer = Array(stream[offset..<(offset + n)])
        offset += n
        fed += n
        var failed = false
        buffer.withUnsafeMutableBytes { input in
            var consumed = 0
            while true {
                let before = consumed
                let output = decoder.next(input, consumed: &consumed)
                invariant(consumed >= before && consumed <= input.count, "consumed moved to \(consumed) from \(before) in \(input.count)")
                func take(_ p: UnsafeRawBufferPointer, _ max: Int) -> [UInt8] {
                    invariant(p.count <= max, "payload of \(p.count) over its limit \(max)")
                    reported += p.count
                    invariant(reported <= fed, "reported \(reported) payload bytes after \(fed) fed")
                    return Array(p)
                }
                switch output {
                case .needMoreData:
                    invariant(consumed == input.count, ".needMoreData with \(input.count - consumed) bytes left")
                    return
                case .text(let p):
                    let bytes = take(p, limit)
                    invariant(String(validating: bytes, as: UTF8.self) != nil, "text message is not UTF-8")
                    events.append(.text(bytes))
                case .binary(let p): events.append(.binary(take(p, limit)))
                case .ping(let p): events.append(.ping(take(p, 125)))
                case .pong(let p): events.append(.pong(take(p, 125)))
                case .close(let code, let reason):
                    let bytes = take(reason, 123)
                    invariant(String(validating: bytes, as: UTF8.self) != nil, "close reason is not UTF-8")
                    if let code {
                        invariant(
                            (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code),
                            "close code \(code) is not valid on the wire")
                    } else {
                        invariant(bytes.isEmpty, "reason without a code")
                    }
                    events.append(.close(code, bytes))
                case .failure(let code):
                    events.append(.failure(code.rawValue))
                    var again = 0
                    guard case .failure(let same) = decoder.next(input, consumed: &again), same == code else {
                        invariant(false, "failure is not sticky")
                        return
                    }
                    failed = true
                    return
                }
            }
        }
        if failed { break }
    }
    if !decoder.hasPartialData {
        invariant(decoder.bufferedBytes == 0, "idle decoder still holds \(decoder.bufferedBytes) bytes")
    }
    return events
}

private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("Invariant violated: \(message())") }
}
