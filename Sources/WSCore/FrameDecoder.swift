/// Incremental RFC 6455 frame decoder and message reassembler.
///
/// Feed it the receive buffer with `next` until it says `.needMoreData`. A complete unfragmented frame
/// that lies inside the buffer is unmasked in place and returned as a pointer into the buffer (no copy,
/// no allocation). Anything else — fragmented messages, frames split across receive calls — is unmasked
/// while being copied into reassembly storage that is released again as soon as the decoder is idle.
/// Partial headers live in fixed inline storage. No extensions are supported, so any RSV bit fails.
public struct FrameDecoder: Sendable {
    /// Which side of the connection this decoder reads for.
    public enum Role: Sendable {
        /// Decodes what a client sent: every frame must be masked.
        case server
        /// Decodes what a server sent: no frame may be masked.
        case client
    }

    /// One decoding event. Payload pointers are valid only until the next call to `next` or `reset`, or
    /// until the input buffer is reused.
    public enum Output {
        /// All of `input` from `consumed` on was taken; call again with new bytes.
        case needMoreData
        /// A complete, UTF-8-validated text message.
        case text(UnsafeRawBufferPointer)
        /// A complete binary message.
        case binary(UnsafeRawBufferPointer)
        /// A ping and its payload (at most 125 bytes).
        case ping(UnsafeRawBufferPointer)
        /// A pong and its payload (at most 125 bytes).
        case pong(UnsafeRawBufferPointer)
        /// A validated close frame: `code` nil means an empty payload (answer 1000); otherwise the code is
        /// valid on the wire and `reason` is valid UTF-8.
        case close(code: UInt16?, reason: UnsafeRawBufferPointer)
        /// Protocol violation: send a close with this code and drop the connection. Every later call
        /// returns the same failure.
        case failure(CloseCode)
    }

    /// The decoder's position in the byte stream.
    private enum State {
        /// Between frames, or `headerCount` bytes into a header that did not arrive whole.
        case header
        /// Inside the payload of a frame that is being copied into storage (`payloadRemaining` bytes left).
        case payload
        /// A protocol violation was found; nothing more is decoded.
        case failed(CloseCode)

        var isPayload: Bool {
            if case .payload = self { return true }
            return false
        }
    }

    /// What the current message is, between its first fragment and its final one.
    private enum Message: UInt8 {
        case none, text, binary
    }

    // Layout: ordered by alignment so the struct stays small (see FrameDecoderTests.testDecoderIsSmall):
    // 46 bytes. Every upgraded connection carries one for its whole life (issue 19: the server's
    // per-connection state went from 80 to 56 and then 48 bytes with it); lengths are 32-bit because messages
    // are limited to 4 GiB − 1 KiB and a data frame longer than the limit fails at its header.

    /// Reassembly storage: the message so far (`storageCount` bytes), then the payload of a control frame
    /// that did not arrive whole. Nil whenever the decoder is idle.
    private var storage: ReassemblyStorage?
    /// Payload bytes of the current frame not yet received (state `.payload`); see `payloadRemaining`.
    private var remaining: UInt32 = 0
    /// Largest message (sum of its fragments' payloads) accepted; see `maxMessageSize`.
    private let maxMessageBytes: UInt32
    /// Bytes of the current message in `storage`.
    private var storageCount: UInt32 = 0
    /// Masking key of the current frame (see `Masking`); 0 when unmasked.
    private var maskKey: UInt32 = 0
    private var state: State = .header
    private var headerCount: UInt8 = 0
    /// A header received in pieces; only the first `headerCount` bytes are meaningful.
    private var header: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// The current frame's opcode (bits 0–3) and FIN (bit 6), the current message (bits 4–5) and
    /// the role (bit 7) in one byte: three bytes less, so the server's per-connection state fits
    /// 48 bytes instead of 56 (issue 19).
    private var packed: UInt8
    /// Key position for the next payload byte of the current frame.
    private var maskOffset: UInt8 = 0
    /// Payload length of the current control frame (state `.payload`).
    private var controlLength: UInt8 = 0
    /// Validates the current text message across fragments and receive calls.
    private var utf8 = UTF8Validator()

    /// What the current message is (`packed`).
    private var message: Message {
        @inline(__always) get { Message(rawValue: packed >> 4 & 0x3) ?? .none }
        @inline(__always) set { packed = packed & ~0x30 | newValue.rawValue << 4 }
    }

    /// Opcode of the current frame (state `.payload`; `packed`).
    private var frameOpcode: WebSocketOpcode {
        @inline(__always) get { WebSocketOpcode(rawValue: packed & 0x0F) ?? .continuation }
        @inline(__always) set { packed = packed & ~0x0F | newValue.rawValue }
    }

    /// Whether the current frame is its message's last (`packed`).
    private var frameFin: Bool {
        @inline(__always) get { packed & 0x40 != 0 }
        @inline(__always) set { packed = newValue ? packed | 0x40 : packed & ~0x40 }
    }

    /// Which side this decoder reads for (`packed`).
    private var role: Role { packed & 0x80 != 0 ? .client : .server }

    /// Largest message (sum of its fragments' payloads) accepted.
    @inline(__always)
    private var maxMessageSize: Int { Int(maxMessageBytes) }

    /// Payload bytes of the current frame not yet received (state `.payload`): at most
    /// `maxMessageLimit` (data) or 125 (control), checked before it is set.
    @inline(__always)
    private var payloadRemaining: Int {
        get { Int(remaining) }
        set { remaining = UInt32(truncatingIfNeeded: newValue) }
    }

    /// Messages are counted in `UInt32` and storage also holds one control payload.
    private static let maxMessageLimit = Int(UInt32.max) - 1024

    /// A decoder for frames sent by the peer of `role`, accepting messages of up to `maxMessageSize` bytes
    /// (clamped to 0...4 GiB − 1 KiB).
    public init(role: Role = .server, maxMessageSize: Int = 65536) {
        packed = role == .client ? 0x80 : 0
        self.maxMessageBytes = UInt32(min(max(maxMessageSize, 0), Self.maxMessageLimit))
    }

    /// True while the decoder holds a partial frame or a partial fragmented message (for idle-memory accounting / timeouts).
    public var hasPartialData: Bool {
        switch state {
        case .failed: return false
        case .payload: return true
        case .header: return headerCount > 0 || message != .none
        }
    }

    /// Bytes of heap storage the decoder holds now (0 when idle).
    public var bufferedBytes: Int { storage?.capacity ?? 0 }

    /// Back to the initial state (same role and limit), dropping any partial data and a sticky failure.
    public mutating func reset() {
        self = FrameDecoder(role: role, maxMessageSize: maxMessageSize)
    }

    /// Decodes the next event from input[consumed...], advancing `consumed`. Call repeatedly with the same
    /// buffer until `.needMoreData`. Unmasks in place in `input` (frames returned zero-copy; bytes that go to
    /// reassembly storage are unmasked while being copied). A returned payload pointer is valid only
    /// until the next call to `next` or `reset`, or until `input` is reused — it points into `input` (zero-copy
    /// path: a whole unfragmented frame inside the input) or into the decoder's own reassembly storage.
    public mutating func next(_ input: UnsafeMutableRawBufferPointer, consumed: inout Int) -> Output {
        precondition(consumed >= 0 && consumed <= input.count, "FrameDecoder: consumed out of range")
        guard let base = input.baseAddress else {
            if case .failed(let code) = state { return .failure(code) }
            return needMoreData()
        }
        let end = input.count
        while true {
            switch state {
            case .failed(let code):
                return .failure(code)

            case .header:
                let available = end &- consumed
                if headerCount == 0, available >= 2,
                    case let size = Self.headerSize(secondByte: base.load(fromByteOffset: consumed &+ 1, as: UInt8.self)),
                    available >= size
                {
                    // Fast path: the whole header is in the input.
                    if let output = beginFrame(header: base + consumed) { return output }
                    consumed &+= size
                } else {
                    // Slow path: collect the header in inline storage, checking each part as it completes.
                    if let code = collectHeader(base, end: end, consumed: &consumed) { return fail(code) }
                    guard headerCount >= 2, Int(headerCount) == Self.headerSize(secondByte: header.1) else {
                        return needMoreData()
                    }
                    headerCount = 0
                    let collected = header
                    let output = withUnsafeBytes(of: collected) { beginFrame(header: $0.baseAddress!) }
                    if let output { return output }
                }
                let length = payloadRemaining
                let whole = end &- consumed >= length
                if frameOpcode.isControl {
                    if whole { return completeInPlace(base + consumed, length: length, consumed: &consumed) }
                    controlLength = UInt8(truncatingIfNeeded: length)
                    state = .payload
                } else if whole, frameFin, message == .none {
                    // Zero-copy: a whole unfragmented message inside the input.
                    return completeInPlace(base + consumed, length: length, consumed: &consumed)
                } else {
                    if frameOpcode != .continuation {
                        message = frameOpcode == .text ? .text : .binary
                        utf8.reset()
                    }
                    state = .payload
                }

            case .payload:
                if let output = readPayload(base, end: end, consumed: &consumed) { return output }
            }
        }
    }

    // MARK: Header

    /// Header size announced by the second header byte (mask bit and 7-bit length).
    @inline(__always)
    private static func headerSize(secondByte: UInt8) -> Int {
        let lengthBytes: Int
        switch secondByte & 0x7F {
        case 126: lengthBytes = 2
        case 127: lengthBytes = 8
        default: lengthBytes = 0
        }
        return 2 &+ lengthBytes &+ (secondByte & 0x80 != 0 ? 4 : 0)
    }

    /// Copies header bytes into inline storage up to the next checkpoint (first byte, second byte,
    /// extended length, complete header), running each checkpoint's checks as soon as it is reached.
    private mutating func collectHeader(_ base: UnsafeMutableRawPointer, end: Int, consumed: inout Int) -> CloseCode? {
        while consumed < end {
            let count = Int(headerCount)
            let target: Int
            switch count {
            case 0: target = 1
            case 1: target = 2
            default:
                let size = Self.headerSize(secondByte: header.1)
                if count == size { return nil }
                let lengthEnd = size &- (header.1 & 0x80 != 0 ? 4 : 0)
                target = count < lengthEnd ? lengthEnd : size
            }
            let n = min(target &- count, end &- consumed)
            withUnsafeMutableBytes(of: &header) { header in
                header.baseAddress!.advanced(by: count).copyMemory(from: base + consumed, byteCount: n)
            }
            consumed &+= n
            headerCount = UInt8(count &+ n)
            guard count &+ n == target else { return nil }
            switch target {
            case 1:
                if let code = checkFirstByte(header.0) { return code }
            case 2:
                if let code = checkSecondByte(first: header.0, second: header.1) { return code }
            default:
                if target == Self.headerSize(secondByte: header.1) { return nil }
                // Extended length complete, masking key still to come.
                let collected = header
                let length = withUnsafeBytes(of: collected) { Self.extendedLength($0.baseAddress!) }
                if let code = checkLength(length, opcode: header.0 & 0x0F) { return code }
            }
        }
        return nil
    }

    /// Checks the first header byte: RSV bits, opcode, control fragmentation, message sequencing.
    @inline(__always)
    private func checkFirstByte(_ byte: UInt8) -> CloseCode? {
        if byte & 0x70 != 0 { return .protocolError }
        guard let opcode = WebSocketOpcode(rawValue: byte & 0x0F) else { return .protocolError }
        switch opcode {
        case .continuation:
            if message == .none { return .protocolError }
        case .text, .binary:
            if message != .none { return .protocolError }
        case .close, .ping, .pong:
            if byte & 0x80 == 0 { return .protocolError }
        }
        return nil
    }

    /// Checks the second header byte: masking for the role, control payload length, message size.
    @inline(__always)
    private func checkSecondByte(first: UInt8, second: UInt8) -> CloseCode? {
        let masked = second & 0x80 != 0
        if masked != (role == .server) { return .protocolError }
        let length = second & 0x7F
        let opcode = first & 0x0F
        if opcode & 0x8 != 0 {
            if length > 125 { return .protocolError }
            if length == 1 && opcode == WebSocketOpcode.close.rawValue { return .protocolError }
            return nil
        }
        return length < 126 ? checkLength(UInt64(length), opcode: opcode) : nil
    }

    /// Checks a payload length: 64-bit lengths must have the MSB clear; a data frame must not take the
    /// message past `maxMessageSize`.
    @inline(__always)
    private func checkLength(_ length: UInt64, opcode: UInt8) -> CloseCode? {
        if length > UInt64(Int64.max) { return .protocolError }
        if opcode & 0x8 == 0, length > UInt64(maxMessageSize &- Int(storageCount)) { return .messageTooBig }
        return nil
    }

    /// The 16- or 64-bit extended payload length of a header whose second byte says there is one.
    @inline(__always)
    private static func extendedLength(_ header: UnsafeRawPointer) -> UInt64 {
        if header.load(fromByteOffset: 1, as: UInt8.self) & 0x7F == 126 {
            return UInt64(UInt16(bigEndian: header.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        }
        return UInt64(bigEndian: header.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
    }

    /// Validates a complete header and sets up the frame (`payloadRemaining`, `maskKey`, `frameOpcode`,
    /// `frameFin`). Returns a failure, or nil to go on. On return `state` is still `.header`.
    private mutating func beginFrame(header: UnsafeRawPointer) -> Output? {
        let first = header.load(as: UInt8.self)
        let second = header.load(fromByteOffset: 1, as: UInt8.self)
        if let code = checkFirstByte(first) { return fail(code) }
        if let code = checkSecondByte(first: first, second: second) { return fail(code) }
        var offset = 2
        var length = UInt64(second & 0x7F)
        if length >= 126 {
            offset = length == 126 ? 4 : 10
            length = Self.extendedLength(header)
            if let code = checkLength(length, opcode: first & 0x0F) { return fail(code) }
        }
        maskKey = second & 0x80 != 0 ? Masking.key(wireBytesAt: header + offset) : 0
        payloadRemaining = Int(length)
        frameOpcode = WebSocketOpcode(rawValue: first & 0x0F)!
        frameFin = first & 0x80 != 0
        maskOffset = 0
        return nil
    }

    // MARK: Payload

    /// Completes a frame whose whole payload (`length` bytes at `payload`) is in the input: unmasks it in
    /// place, consumes it and returns its event. Only for control frames and unfragmented messages.
    private mutating func completeInPlace(_ payload: UnsafeMutableRawPointer, length: Int, consumed: inout Int) -> Output {
        if role == .server, length > 0 {
            Masking.apply(key: maskKey, offset: 0, from: payload, to: payload, count: length)
        }
        consumed &+= length
        let bytes = UnsafeRawBufferPointer(start: payload, count: length)
        switch frameOpcode {
        case .ping: return .ping(bytes)
        case .pong: return .pong(bytes)
        case .close: return closeEvent(bytes)
        case .text: return UTF8Validator.isValid(bytes) ? .text(bytes) : fail(.invalidPayload)
        case .binary, .continuation: return .binary(bytes)
        }
    }

    /// State `.payload`: takes what the input has of the current frame's payload into storage, unmasking
    /// it on the way and validating text as it arrives. Returns the event when the frame completes one,
    /// `.needMoreData` when the input runs out first, or nil to go on decoding.
    private mutating func readPayload(_ base: UnsafeMutableRawPointer, end: Int, consumed: inout Int) -> Output? {
        let n = min(payloadRemaining, end &- consumed)
        let source = base + consumed
        consumed &+= n
        if frameOpcode.isControl {
            // After the message so far: [storageCount, storageCount + controlLength).
            let start = Int(storageCount)
            let received = Int(controlLength) &- payloadRemaining
            if n > 0 {
                let buffer = reserve(start &+ Int(controlLength), limit: start &+ Int(controlLength))
                copyPayload(from: source, to: buffer + (start &+ received), count: n)
                payloadRemaining &-= n
            }
            guard payloadRemaining == 0 else { return needMoreData() }
            state = .header
            let payload = UnsafeRawBufferPointer(start: storage!.elements + start, count: Int(controlLength))
            switch frameOpcode {
            case .ping: return .ping(payload)
            case .pong: return .pong(payload)
            default: return closeEvent(payload)
            }
        }
        if n > 0 {
            let start = Int(storageCount)
            // A final frame's end is the message's end; before that only the size limit is known.
            let limit = frameFin ? start &+ payloadRemaining : maxMessageSize
            let destination = reserve(start &+ n, limit: limit) + start
            copyPayload(from: source, to: destination, count: n)
            if message == .text, !utf8.feed(UnsafeRawBufferPointer(start: destination, count: n)) {
                return fail(.invalidPayload)
            }
            storageCount &+= UInt32(truncatingIfNeeded: n)
            payloadRemaining &-= n
        }
        guard payloadRemaining == 0 else { return needMoreData() }
        state = .header
        guard frameFin else { return nil }
        if message == .text, !utf8.isComplete { return fail(.invalidPayload) }
        let payload = UnsafeRawBufferPointer(start: storage.map { UnsafeRawPointer($0.elements) }, count: Int(storageCount))
        let kind = message
        message = .none
        // The bytes stay in storage until the next call: only then can they be overwritten or freed.
        storageCount = 0
        return kind == .text ? .text(payload) : .binary(payload)
    }

    /// Copies payload bytes, unmasking them with the current frame's key when the peer masks.
    @inline(__always)
    private mutating func copyPayload(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int) {
        guard count > 0 else { return }
        if role == .server {
            maskOffset = UInt8(
                truncatingIfNeeded: Masking.apply(key: maskKey, offset: Int(maskOffset), from: source, to: destination, count: count))
        } else {
            destination.copyMemory(from: source, byteCount: count)
        }
    }

    /// Validates a complete close payload and makes the event.
    private mutating func closeEvent(_ payload: UnsafeRawBufferPointer) -> Output {
        guard payload.count >= 2, let base = payload.baseAddress else {
            // Length 1 was rejected with the header.
            return .close(code: nil, reason: UnsafeRawBufferPointer(start: payload.baseAddress, count: 0))
        }
        let code = UInt16(bigEndian: base.loadUnaligned(as: UInt16.self))
        guard CloseCode.isValidOnWire(code) else { return fail(.protocolError) }
        let reason = UnsafeRawBufferPointer(start: base + 2, count: payload.count &- 2)
        guard UTF8Validator.isValid(reason) else { return fail(.invalidPayload) }
        return .close(code: code, reason: reason)
    }

    // MARK: Storage and state changes

    /// Ensures storage for `required` bytes, keeping the bytes in use. Grows geometrically (so a message
    /// of many small fragments costs amortized O(1) per byte) but not past `limit` (the most the current
    /// message can need), unless `required` is larger. Returns the storage's first byte.
    private mutating func reserve(_ required: Int, limit: Int) -> UnsafeMutableRawPointer {
        let capacity = storage?.capacity ?? 0
        if required <= capacity, isKnownUniquelyReferenced(&storage) {
            return storage!.elements
        }
        let newCapacity = max(required, min(max(capacity &* 2, 256), limit))
        let grown = ReassemblyStorage.make(capacity: newCapacity)
        if let storage {
            // Keep the message so far and the part of a control payload already received.
            let used =
                frameOpcode.isControl && state.isPayload
                ? Int(storageCount) &+ Int(controlLength) &- payloadRemaining
                : Int(storageCount)
            if used > 0 { grown.elements.copyMemory(from: storage.elements, byteCount: used) }
        }
        storage = grown
        return grown.elements
    }

    /// `.needMoreData`, releasing the storage when nothing partial needs it.
    private mutating func needMoreData() -> Output {
        if storage != nil, message == .none, !state.isPayload {
            storage = nil
        }
        return .needMoreData
    }

    /// Enters the sticky failed state.
    private mutating func fail(_ code: CloseCode) -> Output {
        state = .failed(code)
        storage = nil
        storageCount = 0
        message = .none
        headerCount = 0
        return .failure(code)
    }
}

/// The decoder's reassembly buffer: one allocation, header = capacity in bytes, bytes tail-allocated
/// (laid out by `ManagedBufferPointer`, like `SharedBytes`). Only ever mutated by the one decoder that
/// uniquely references it (the decoder copies it before writing otherwise), hence `Sendable`.
private final class ReassemblyStorage: @unchecked Sendable {
    private typealias Layout = ManagedBufferPointer<Int, UInt8>

    static func make(capacity: Int) -> ReassemblyStorage {
        let layout = Layout(bufferClass: ReassemblyStorage.self, minimumCapacity: capacity) { _, _ in capacity }
        return unsafeDowncast(layout.buffer, to: ReassemblyStorage.self)
    }

    private init() {
        fatalError("ReassemblyStorage is created only by make(capacity:)")
    }

    /// Capacity in bytes.
    var capacity: Int {
        Layout(unsafeBufferObject: self).header
    }

    /// First byte; stable for the object's lifetime.
    var elements: UnsafeMutableRawPointer {
        Layout(unsafeBufferObject: self).withUnsafeMutablePointerToElements { UnsafeMutableRawPointer($0) }
    }
}
