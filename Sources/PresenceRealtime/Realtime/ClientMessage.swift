import PresenceJSON

/// A client → server message (docs/protocol.md, "Client messages").
enum ClientMessage: Equatable, Sendable {
    /// `since`: where the client's copy of the channel ends (recovery after a reconnect).
    case join(channel: String, since: StreamPosition? = nil)
    case leave(channel: String)
    /// `nonce`: the client's id for this send; a repeat within NONCE_WINDOW is not sent again.
    case message(channel: String, content: String, nonce: String? = nil)
    case typing(channel: String, typing: Bool)
    case ping

    /// Largest `content`, in UTF-8 bytes after unescaping.
    static let maxContentBytes = 4096
    /// Longest `nonce` and `since.epoch`, in bytes.
    static let maxNonceBytes = 64
    /// Deepest nesting accepted anywhere in a payload (the message object itself is level 1).
    static let maxDepth = 8
    /// Longest piece of client input echoed in an error message, in UTF-8 bytes.
    static let maxEchoBytes = 64

    /// Parses one text-frame payload straight off the tokenizer (no DOM).
    ///
    /// Checks, in order: well-formed JSON that is one object (depth ≤ 8, no duplicate known field) →
    /// `bad_json`; `type` present and a string → `bad_json`; a known type → `unknown_type`; no unknown or
    /// unexpected field, every required field present with the right JSON type → `bad_json`; a valid
    /// channel → `invalid_channel`; non-empty content (`bad_json`) of at most 4096 bytes → `too_large`.
    static func parse(_ payload: UnsafeRawBufferPointer) -> Result<ClientMessage, ProtocolError> {
        var reader = JSONReader(payload, maxDepth: maxDepth)
        var fields = Fields()
        do throws(JSONError) {
            guard try reader.next() == .objectStart else { return .failure(bad("expected a JSON object")) }
            try readFields(&reader, into: &fields)
        } catch {
            return .failure(bad("invalid JSON: \(error.message) at byte \(error.offset)"))
        }
        if let duplicate = fields.duplicate {
            return .failure(bad("duplicate field '\(duplicate.name)'"))
        }
        return validate(&fields, reader)
    }

    /// Same, over a string's UTF-8 (tests, tools).
    static func parse(_ text: String) -> Result<ClientMessage, ProtocolError> {
        var text = text
        return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// 1–128 bytes of `[A-Za-z0-9_.:-]`.
    static func isValidChannel(_ s: String) -> Bool {
        JSONWriter.withUTF8(s) { isValidChannel($0) }
    }

    /// 1–128 bytes of `[A-Za-z0-9_.:-]`.
    static func isValidChannel(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        guard count >= 1, count <= 128, let base = bytes.baseAddress else { return false }
        for i in 0..<count {
            guard isChannelByte(base.load(fromByteOffset: i, as: UInt8.self)) else { return false }
        }
        return true
    }

    // MARK: Private

    /// Bit c set: byte c (0..<64) is allowed in a channel id ('-', '.', '0'-'9', ':').
    private static let channelLow: UInt64 = 0x07FF_6000_0000_0000
    /// Bit c-64 set: byte c (64..<128) is allowed ('A'-'Z', '_', 'a'-'z').
    private static let channelHigh: UInt64 = 0x07FF_FFFE_87FF_FFFE

    @inline(__always)
    private static func isChannelByte(_ c: UInt8) -> Bool {
        if c < 64 { return channelLow & (1 &<< UInt64(c)) != 0 }
        if c < 128 { return channelHigh & (1 &<< UInt64(c &- 64)) != 0 }
        return false
    }

    /// Whether `s` is a nonce: 1–64 bytes of `[A-Za-z0-9_-]`.
    static func isValidNonce(_ s: String) -> Bool {
        JSONWriter.withUTF8(s) { isNonce($0) }
    }

    private static func isNonce(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 1, bytes.count <= maxNonceBytes else { return false }
        return bytes.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }

    /// An epoch as clients send it back: 1–64 bytes of `[A-Za-z0-9_.:-]` (what the server hands out).
    private static func isEpoch(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count <= maxNonceBytes && isValidChannel(bytes)
    }

    /// The message's known fields.
    private enum Field: UInt8 {
        case type, channel, content, typing, nonce, since

        var name: StaticString {
            switch self {
            case .type: "type"
            case .channel: "channel"
            case .content: "content"
            case .typing: "typing"
            case .nonce: "nonce"
            case .since: "since"
            }
        }
    }

    /// One known field: the JSON type of its value (nil: absent) and, for strings, the value.
    private struct Slot {
        var kind: JSONReader.Token?
        var string = JSONReader.StringToken(start: 0, end: 0, decodedCount: 0)

        /// The JSON type in words, for error messages.
        var description: String {
            switch kind {
            case nil: "missing"
            case .string?: "a string"
            case .true?, .false?: "a boolean"
            case .number?: "a number"
            case .null?: "null"
            case .objectStart?: "an object"
            default: "an array"
            }
        }
    }

    /// Everything `readFields` gathered from the object.
    private struct Fields {
        var type = Slot()
        var channel = Slot()
        var content = Slot()
        var typing = Slot()
        var nonce = Slot()
        var since = Slot()
        /// `since` read as a position, or why it is not one.
        var sinceValue: Result<StreamPosition, ProtocolError>?
        /// The first member whose name is not a known field.
        var unknown: JSONReader.StringToken?
        /// The first known field seen twice.
        var duplicate: Field?
    }

    /// Reads the rest of the object and the document (so any malformation is reported), recording the
    /// known fields.
    private static func readFields(_ reader: inout JSONReader, into fields: inout Fields) throws(JSONError) {
        while try reader.next() == .key {  // else .objectEnd: the grammar allows nothing else
            let name = reader.stringToken
            let field = field(named: name, reader)
            let kind = try reader.next()
            let value = reader.stringToken  // meaningful when kind is .string (read before any skipping)
            if field == .since && kind == .objectStart && fields.since.kind == nil {
                fields.sinceValue = try readPosition(&reader)
            } else {
                try reader.skipValue(startedBy: kind)
            }
            switch field {
            case .type?: record(&fields.type, kind, value, .type, &fields.duplicate)
            case .channel?: record(&fields.channel, kind, value, .channel, &fields.duplicate)
            case .content?: record(&fields.content, kind, value, .content, &fields.duplicate)
            case .typing?: record(&fields.typing, kind, value, .typing, &fields.duplicate)
            case .nonce?: record(&fields.nonce, kind, value, .nonce, &fields.duplicate)
            case .since?: record(&fields.since, kind, value, .since, &fields.duplicate)
            case nil: if fields.unknown == nil { fields.unknown = name }
            }
        }
        _ = try reader.next()  // .end, or throws on trailing data
    }

    /// `{"offset":N,"epoch":E}` (the object's start already read): N a whole number 0...2^53, E an
    /// epoch; anything else (another member, a duplicate, a wrong type) is a `bad_json` result.
    private static func readPosition(_ reader: inout JSONReader) throws(JSONError) -> Result<StreamPosition, ProtocolError> {
        var offset: Int64?, epoch: String?, problem: String?
        while try reader.next() == .key {
            let name = reader.stringToken
            let namesOffset = reader.equals(name, "offset"), namesEpoch = reader.equals(name, "epoch")
            let kind = try reader.next()
            if namesOffset && offset == nil && kind == .number {
                let number = reader.numberToken
                let value = number.isPlainInteger ? (try? reader.double(number)) : nil
                if let value, value >= 0, value <= 9_007_199_254_740_992 {
                    offset = Int64(value)
                } else {
                    problem = "since.offset must be a whole number"
                }
            } else if namesEpoch && epoch == nil && kind == .string {
                let token = reader.stringToken
                if !token.hasEscapes && isEpoch(reader.rawBytes(token)) {
                    epoch = reader.string(token)
                } else {
                    problem = "since.epoch is not an epoch"
                }
            } else {
                problem = problem ?? "since must be {\"offset\":N,\"epoch\":E}"
            }
            try reader.skipValue(startedBy: kind)
        }
        if let problem { return .failure(bad(problem)) }
        guard let offset, let epoch else { return .failure(bad("since must be {\"offset\":N,\"epoch\":E}")) }
        return .success(StreamPosition(offset: offset, epoch: epoch))
    }

    @inline(__always)
    private static func record(
        _ slot: inout Slot, _ kind: JSONReader.Token, _ value: JSONReader.StringToken, _ field: Field,
        _ duplicate: inout Field?
    ) {
        if slot.kind == nil {
            slot.kind = kind
            slot.string = value
        } else if duplicate == nil {
            duplicate = field
        }
    }

    @inline(__always)
    private static func field(named name: JSONReader.StringToken, _ reader: borrowing JSONReader) -> Field? {
        switch name.decodedCount {
        case 4: return reader.equals(name, "type") ? .type : nil
        case 5:
            if reader.equals(name, "nonce") { return .nonce }
            return reader.equals(name, "since") ? .since : nil
        case 6: return reader.equals(name, "typing") ? .typing : nil
        case 7:
            if reader.equals(name, "channel") { return .channel }
            return reader.equals(name, "content") ? .content : nil
        default: return nil
        }
    }

    /// The message kinds, by `type`.
    private enum Kind {
        case join, leave, message, typing, ping

        var name: StaticString {
            switch self {
            case .join: "join"
            case .leave: "leave"
            case .message: "message"
            case .typing: "typing"
            case .ping: "ping"
            }
        }
    }

    @inline(__always)
    private static func kind(of token: JSONReader.StringToken, _ reader: borrowing JSONReader) -> Kind? {
        switch token.decodedCount {
        case 4:
            if reader.equals(token, "join") { return .join }
            return reader.equals(token, "ping") ? .ping : nil
        case 5: return reader.equals(token, "leave") ? .leave : nil
        case 6: return reader.equals(token, "typing") ? .typing : nil
        case 7: return reader.equals(token, "message") ? .message : nil
        default: return nil
        }
    }

    @inline(__always)
    private static func validate(_ fields: inout Fields, _ reader: borrowing JSONReader) -> Result<ClientMessage, ProtocolError> {
        guard let typeKind = fields.type.kind else { return .failure(bad("missing field 'type'")) }
        guard typeKind == .string else { return .failure(bad("'type' must be a string, not \(fields.type.description)")) }
        guard let kind = kind(of: fields.type.string, reader) else {
            return .failure(ProtocolError(code: .unknownType, message: "unknown type '\(echo(fields.type.string, reader))'"))
        }
        if let unknown = fields.unknown {
            return .failure(bad("unknown field '\(echo(unknown, reader))'"))
        }
        // Fields other than `type` each kind takes (nonce and since are optional).
        let allowed: (channel: Bool, content: Bool, typing: Bool)
        switch kind {
        case .join, .leave: allowed = (true, false, false)
        case .message: allowed = (true, true, false)
        case .typing: allowed = (true, false, true)
        case .ping: allowed = (false, false, false)
        }
        if let error = presence(.channel, fields.channel, allowed.channel, kind)
            ?? presence(.content, fields.content, allowed.content, kind)
            ?? presence(.typing, fields.typing, allowed.typing, kind)
            ?? (kind == .message ? nil : presence(.nonce, fields.nonce, false, kind))
            ?? (kind == .join ? nil : presence(.since, fields.since, false, kind))
        {
            return .failure(error)
        }
        if kind == .ping { return .success(.ping) }

        // A message's nonce first: every later error about the message carries it.
        var nonce: String?
        if fields.nonce.kind != nil {
            let token = fields.nonce.string
            guard fields.nonce.kind == .string, !token.hasEscapes, isNonce(reader.rawBytes(token)) else {
                return .failure(bad("nonce must be 1-\(maxNonceBytes) characters of [A-Za-z0-9_-]"))
            }
            nonce = reader.string(token)
        }
        func failure(_ error: ProtocolError) -> Result<ClientMessage, ProtocolError> {
            var error = error
            error.nonce = nonce
            return .failure(error)
        }
        var since: StreamPosition?
        if fields.since.kind != nil {
            guard fields.since.kind == .objectStart, let read = fields.sinceValue else {
                return .failure(bad("since must be {\"offset\":N,\"epoch\":E}"))
            }
            switch read {
            case .success(let position): since = position
            case .failure(let error): return .failure(error)
            }
        }

        guard fields.channel.kind == .string else {
            return failure(bad("'channel' must be a string, not \(fields.channel.description)"))
        }
        if kind == .typing, fields.typing.kind != .true, fields.typing.kind != .false {
            return .failure(bad("'typing' must be a boolean, not \(fields.typing.description)"))
        }
        if kind == .message, fields.content.kind != .string {
            return failure(bad("'content' must be a string, not \(fields.content.description)"))
        }

        guard let channel = channel(fields.channel.string, reader) else {
            return failure(ProtocolError(code: .invalidChannel, message: "channel must be 1-128 bytes of [A-Za-z0-9_.:-]"))
        }
        switch kind {
        case .join: return .success(.join(channel: channel, since: since))
        case .leave: return .success(.leave(channel: channel))
        case .typing: return .success(.typing(channel: channel, typing: fields.typing.kind == .true))
        case .ping: return .success(.ping)
        case .message:
            let token = fields.content.string
            if token.decodedCount == 0 { return failure(bad("content is empty")) }
            if token.decodedCount > maxContentBytes {
                return failure(ProtocolError(code: .tooLarge, message: "content is over \(maxContentBytes) bytes"))
            }
            return .success(.message(channel: channel, content: reader.string(token), nonce: nonce))
        }
    }

    /// The error when `field` is missing although required, or present although not allowed.
    @inline(__always)
    private static func presence(_ field: Field, _ slot: Slot, _ isAllowed: Bool, _ kind: Kind) -> ProtocolError? {
        if slot.kind == nil {
            return isAllowed ? bad("missing field '\(field.name)'") : nil
        }
        return isAllowed ? nil : bad("unexpected field '\(field.name)' for type '\(kind.name)'")
    }

    /// The channel id, if valid.
    private static func channel(_ token: JSONReader.StringToken, _ reader: borrowing JSONReader) -> String? {
        guard token.decodedCount >= 1, token.decodedCount <= 128 else { return nil }
        if !token.hasEscapes {
            guard isValidChannel(reader.rawBytes(token)) else { return nil }
            return reader.string(token)
        }
        let decoded = reader.string(token)
        return isValidChannel(decoded) ? decoded : nil
    }

    /// A string token's value cut to at most `maxEchoBytes` bytes on a scalar boundary.
    private static func echo(_ token: JSONReader.StringToken, _ reader: borrowing JSONReader) -> String {
        if token.decodedCount <= maxEchoBytes { return reader.string(token) }
        var s = reader.string(token)
        return s.withUTF8 { utf8 in
            var end = maxEchoBytes
            while end > 0, utf8[end] & 0xC0 == 0x80 { end -= 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: utf8[..<end]), as: UTF8.self) + "…"
        }
    }

    @inline(__always)
    private static func bad(_ message: String) -> ProtocolError {
        ProtocolError(code: .badJSON, message: message)
    }
}
