import WSCore

/// libFuzzer entry for `HTTPResponseParser` and `HTTPBodyDecoder` (Sources/WSCore/HTTPResponseParser.swift,
/// Sources/PresenceOutbound/HTTPBodyDecoder.swift), the way the outbound client reads a response.
///
/// Input: byte 0 picks a chunk size (1...64, or everything at once when 0), byte 1 a body limit and
/// whether the request was HEAD, the rest is the response stream.
/// Invariants: head, body, completion and errors do not depend on the split; `feed` never returns
/// more than it was given, and less only once complete; the body never exceeds the limit or the bytes
/// fed after the head; a `Content-Length` body that completes has exactly that length; a read-until-
/// close body is exactly the rest of the stream; a complete chunked body re-encoded as one chunk
/// decodes to the same bytes; a parsed head re-serialised parses to the same head.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let stream = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    let chunk = Int(data[0] % 65)
    let limits = [0, 1, 16, 100, 4096, 1 << 20]
    let limit = limits[Int(data[1] >> 1) % limits.count]
    let isHead = data[1] & 1 == 1
    let whole = exchange(stream, chunk: max(stream.count, 1), limit: limit, isHead: isHead)
    let split = exchange(stream, chunk: chunk == 0 ? max(stream.count, 1) : chunk, limit: limit, isHead: isHead)
    invariant(whole == split, "chunking changed the outcome:\n\(whole)\nvs\n\(split)")
    return 0
}

/// What reading one response produced.
private struct Outcome: Equatable {
    var head: HTTPResponseHead?
    var headError: HTTPParseError?
    var framing: HTTPBodyDecoder.Framing?
    var framingError: OutboundError?
    var body: [UInt8] = []
    var complete = false
    var bodyError: OutboundError?
    var bodyEnd = 0
}

private func exchange(_ stream: UnsafeRawBufferPointer, chunk: Int, limit: Int, isHead: Bool) -> Outcome {
    var outcome = Outcome()
    var parser = HTTPResponseParser(maxHeadSize: 4096)
    var decoder: HTTPBodyDecoder?
    var offset = 0, bodyStart = 0
    while offset < stream.count {
        let n = min(chunk, stream.count - offset)
        var piece = UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + n)])
        defer { offset += n }
        if decoder == nil {
            switch parser.feed(piece) {
            case .needMoreData: continue
            case .failure(let error):
                outcome.headError = error
                return outcome
            case .complete(let head, let consumed):
                invariant(consumed > 0 && consumed <= n, "head consumed \(consumed) of \(n)")
                outcome.head = head
                reserialise(head)
                bodyStart = offset + consumed
                piece = UnsafeRawBufferPointer(rebasing: piece[consumed...])
                do throws(OutboundError) {
                    let framing = try HTTPBodyDecoder.framing(
                        status: head.status, headers: head.headers, isHeadRequest: isHead, limit: limit)
                    outcome.framing = framing
                    decoder = HTTPBodyDecoder(framing: framing, limit: limit)
                } catch {
                    outcome.framingError = error
                    return outcome
                }
            }
        }
        guard var body = decoder else { continue }
        do throws(OutboundError) {
            let used = try body.feed(piece)
            invariant(used >= 0 && used <= piece.count, "feed used \(used) of \(piece.count)")
            invariant(used == piece.count || body.isComplete, "feed stopped early without completing")
            outcome.bodyEnd = offset + (n - piece.count) + used
        } catch {
            outcome.bodyError = error
            outcome.bodyEnd = -1
            decoder = nil
            return finish(outcome, body, bodyStart: bodyStart, limit: limit, stream)
        }
        decoder = body
        if body.isComplete { break }
    }
    if var body = decoder {
        do throws(OutboundError) { try body.finish() } catch { outcome.bodyError = error }
        return finish(outcome, body, bodyStart: bodyStart, limit: limit, stream)
    }
    return outcome
}

private func finish(_ outcome: Outcome, _ body: HTTPBodyDecoder, bodyStart: Int, limit: Int, _ stream: UnsafeRawBufferPointer) -> Outcome {
    var outcome = outcome
    outcome.body = body.body
    outcome.complete = body.isComplete
    invariant(body.body.count <= limit, "body of \(body.body.count) over the limit \(limit)")
    invariant(body.body.count <= stream.count - bodyStart, "body of \(body.body.count) from \(stream.count - bodyStart) bytes")
    // After an error the partial body is thrown away, and how much of it was kept depends on the split.
    if outcome.bodyError != nil { outcome.body = [] }
    guard body.isComplete, outcome.bodyError == nil else { return outcome }
    switch body.framing {
    case .length(let count):
        invariant(body.body.count == count, "Content-Length \(count) completed with \(body.body.count) bytes")
        invariant(Array(stream[bodyStart..<(bodyStart + count)]) == body.body, "Content-Length body differs from the stream")
    case .untilClose:
        invariant(body.body == Array(stream[bodyStart...]), "read-until-close body differs from the rest of the stream")
    case .none:
        invariant(body.body.isEmpty, "body without framing")
    case .chunked:
        var encoded = Array(String(body.body.count, radix: 16).utf8) + [13, 10] + body.body
        if !body.body.isEmpty { encoded += Array("\r\n0\r\n".utf8) }
        encoded += [13, 10]
        var again = HTTPBodyDecoder(framing: .chunked, limit: limit)
        let used = try? encoded.withUnsafeBytes { try again.feed($0) }
        invariant(used == encoded.count && again.isComplete && again.body == body.body, "chunked body does not survive re-encoding")
    }
    return outcome
}

/// Writes `head` back as HTTP/1.1 text and checks that it parses to the same head.
private func reserialise(_ head: HTTPResponseHead) {
    let status = String(head.status)
    var text = "HTTP/\(head.versionMajor).\(head.versionMinor) \(String(repeating: "0", count: max(0, 3 - status.count)) + status)"
    if !head.reason.isEmpty { text += " \(head.reason)" }
    text += "\r\n"
    for field in head.headers { text += "\(field.name): \(field.value)\r\n" }
    text += "\r\n"
    var again = HTTPResponseParser(maxHeadSize: 1 << 20)
    let bytes = Array(text.utf8)
    let result = bytes.withUnsafeBytes { again.feed($0) }
    invariant(
        result == .complete(head, consumed: bytes.count), "re-serialised head parses differently: \(result) from \(text.debugDescription)")
}

private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("Invariant violated: \(message())") }
}
