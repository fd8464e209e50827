import PresenceJSON

/// libFuzzer entry for `ClientMessage.parse` and the JSON tokenizer under it
/// (Sources/PresenceRealtime/Realtime/ClientMessage.swift, JSON/JSONReader.swift; JSONValue as the reference).
///
/// Invariants: a parsed message agrees with the DOM parser `JSONValue.parse` on the same bytes (an
/// object, same `type`, `channel`, `content`, `typing`, `nonce`, `since`; no other members), its
/// content is at most 4096 bytes, its channel and nonce valid; re-serialised with `JSONWriter` it parses to the same message;
/// bytes the DOM parser refuses are never accepted; every error echo stays bounded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientMessage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    let result = ClientMessage.parse(payload)
    let dom = try? JSONValue.parse(payload, maxDepth: ClientMessage.maxDepth)
    switch result {
    case .failure(let error):
        invariant(error.message.utf8.count <= 512, "error message of \(error.message.utf8.count) bytes")
    case .success(let message):
        guard case .object(let members)? = dom else {
            invariant(false, "accepted \(message) but JSONValue refuses or sees no object: \(String(describing: dom))")
            return 0
        }
        let (type, fields) = describe(message)
        invariant(members["type"] == .string(type), "type differs from the DOM: \(members)")
        invariant(
            Set(members.keys) == Set(fields.keys).union(["type"]), "members differ from the DOM: \(members.keys.sorted()) for \(message)")
        for (name, value) in fields {
            invariant(members[name] == value, "'\(name)' differs from the DOM: \(String(describing: members[name])) vs \(value)")
        }
        if case .message(let channel, let content, let nonce) = message {
            invariant(!content.isEmpty && content.utf8.count <= ClientMessage.maxContentBytes, "content of \(content.utf8.count) bytes")
            invariant(ClientMessage.isValidChannel(channel), "invalid channel accepted")
            invariant(nonce.map(ClientMessage.isValidNonce) ?? true, "invalid nonce accepted")
        }
        if case .join(_, let since?) = message {
            invariant(since.offset >= 0 && since.offset <= 1 << 53, "since.offset \(since.offset) accepted")
        }
        // Re-serialise and parse again.
        var text = "{\"type\":" + JSONWriter.quoted(type)
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch value {
            case .string(let s): text += ",\"\(name)\":" + JSONWriter.quoted(s)
            case .bool(let b): text += ",\"\(name)\":\(b)"
            case .object(let position):
                guard case .number(let offset)? = position["offset"], case .string(let epoch)? = position["epoch"] else {
                    invariant(false, "unexpected position \(position)")
                    return 0
                }
                text += ",\"\(name)\":{\"offset\":\(Int64(offset)),\"epoch\":" + JSONWriter.quoted(epoch) + "}"
            default: invariant(false, "unexpected field value \(value)")
            }
        }
        text += "}"
        invariant(ClientMessage.parse(text) == .success(message), "re-serialised \(text.debugDescription) parses differently")
    }
    return 0
}

/// The message's `type` and its other members as JSON values.
private func describe(_ message: ClientMessage) -> (String, [String: JSONValue]) {
    switch message {
    case .join(let channel, let since):
        var fields: [String: JSONValue] = ["channel": .string(channel)]
        if let since { fields["since"] = .object(["offset": .number(Double(since.offset)), "epoch": .string(since.epoch)]) }
        return ("join", fields)
    case .leave(let channel): return ("leave", ["channel": .string(channel)])
    case .message(let channel, let content, let nonce):
        var fields: [String: JSONValue] = ["channel": .string(channel), "content": .string(content)]
        if let nonce { fields["nonce"] = .string(nonce) }
        return ("message", fields)
    case .typing(let channel, let typing): return ("typing", ["channel": .string(channel), "typing": .bool(typing)])
    case .ping: return ("ping", [:])
    }
}

private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("Invariant violated: \(message())") }
}
