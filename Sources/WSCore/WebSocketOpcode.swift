/// RFC 6455 opcodes (§5.2). Reserved opcodes (3–7, 0xB–0xF) have no case.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Whether this is a control opcode (close, ping, pong): high bit of the 4-bit opcode set.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}
