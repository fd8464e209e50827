import WSCore

/// Server → client messages (CONTRACT §5), each serialized ONCE straight into a complete unmasked
/// WebSocket text frame: the exact payload length is computed first, then header and JSON are written
/// into one allocation, shared by every recipient. Keys are in contract order.
enum ServerMessage {
    /// `{"type":"message","id":…,"sender":…,"content":…,"channel":…,"timestamp":…}`
    static func message(id: String, sender: String, content: String, channel: String, timestamp: String) -> SharedBytes {
        JSONWriter.withUTF8(id) { id in
            JSONWriter.withUTF8(sender) { sender in
                JSONWriter.withUTF8(content) { content in
                    JSONWriter.withUTF8(channel) { channel in
                        JSONWriter.withUTF8(timestamp) { timestamp in
                            let length = len(#"{"type":"message","id":"#) + len(#","sender":"#) + len(#","content":"#)
                                + len(#","channel":"#) + len(#","timestamp":"#) + len("}")
                                + JSONWriter.escapedLength(id) + JSONWriter.escapedLength(sender)
                                + JSONWriter.escapedLength(content) + JSONWriter.escapedLength(channel)
                                + JSONWriter.escapedLength(timestamp)
                            return frame(length) { out in
                                out.raw(#"{"type":"message","id":"#)
                                out.string(id)
                                out.raw(#","sender":"#)
                                out.string(sender)
                                out.raw(#","content":"#)
                                out.string(content)
                                out.raw(#","channel":"#)
                                out.string(channel)
                                out.raw(#","timestamp":"#)
                                out.string(timestamp)
                                out.raw("}")
                            }
                        }
                    }
                }
            }
        }
    }

    /// `{"type":"presence","user_id":…,"online":…,"channel":…}`
    static func presence(userID: String, online: Bool, channel: String) -> SharedBytes {
        JSONWriter.withUTF8(userID) { userID in
            JSONWriter.withUTF8(channel) { channel in
                let length = len(#"{"type":"presence","user_id":"#) + len(#","online":"#) + len(#","channel":"#) + len("}")
                    + (online ? 4 : 5) + JSONWriter.escapedLength(userID) + JSONWriter.escapedLength(channel)
                return frame(length) { out in
                    out.raw(#"{"type":"presence","user_id":"#)
                    out.string(userID)
                    out.raw(#","online":"#)
                    out.bool(online)
                    out.raw(#","channel":"#)
                    out.string(channel)
                    out.raw("}")
                }
            }
        }
    }

    /// `{"type":"typing","user_id":…,"channel":…,"typing":…}`
    static func typing(userID: String, channel: String, typing: Bool) -> SharedBytes {
        JSONWriter.withUTF8(userID) { userID in
            JSONWriter.withUTF8(channel) { channel in
                let length = len(#"{"type":"typing","user_id":"#) + len(#","channel":"#) + len(#","typing":"#) + len("}")
                    + (typing ? 4 : 5) + JSONWriter.escapedLength(userID) + JSONWriter.escapedLength(channel)
                return frame(length) { out in
                    out.raw(#"{"type":"typing","user_id":"#)
                    out.string(userID)
                    out.raw(#","channel":"#)
                    out.string(channel)
                    out.raw(#","typing":"#)
                    out.bool(typing)
                    out.raw("}")
                }
            }
        }
    }

    /// `{"type":"pong"}`, built once.
    static let pong: SharedBytes = frame(len(#"{"type":"pong"}"#)) { out in
        out.raw(#"{"type":"pong"}"#)
    }

    /// `{"type":"error","code":…,"message":…}`
    static func error(_ code: ProtocolErrorCode, _ message: String) -> SharedBytes {
        JSONWriter.withUTF8(code.rawValue) { code in
            JSONWriter.withUTF8(message) { message in
                let length = len(#"{"type":"error","code":"#) + len(#","message":"#) + len("}")
                    + JSONWriter.escapedLength(code) + JSONWriter.escapedLength(message)
                return frame(length) { out in
                    out.raw(#"{"type":"error","code":"#)
                    out.string(code)
                    out.raw(#","message":"#)
                    out.string(message)
                    out.raw("}")
                }
            }
        }
    }

    /// The error frame for a refused client message.
    static func error(_ error: ProtocolError) -> SharedBytes {
        self.error(error.code, error.message)
    }

    // MARK: Private

    @inline(__always)
    private static func len(_ literal: StaticString) -> Int {
        literal.utf8CodeUnitCount
    }

    /// A text frame whose payload `write` fills with exactly `payloadLength` bytes.
    @inline(__always)
    private static func frame(_ payloadLength: Int, _ write: (inout JSONByteCursor) -> Void) -> SharedBytes {
        FrameEncoder.serverFrame(.text, payloadLength: payloadLength) { payload in
            var cursor = JSONByteCursor(payload.baseAddress!)
            write(&cursor)
            precondition(cursor.pointer == payload.baseAddress! + payloadLength, "ServerMessage: length mismatch")
        }
    }
}
