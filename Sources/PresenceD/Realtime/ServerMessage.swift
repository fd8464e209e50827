import WSCore

/// Server → client messages (CONTRACT §5), each serialized ONCE straight into a complete unmasked
/// WebSocket text frame: the exact payload length is measured first, then header and JSON are written
/// into one allocation, shared by every recipient. Keys are in contract order.
enum ServerMessage {
    /// `{"type":"message","id":…,"sender":…,"content":…,"channel":…,"timestamp":…}`
    static func message(id: String, sender: String, content: String, channel: String, timestamp: String) -> SharedBytes {
        JSONWriter.withUTF8(id) { id in
            JSONWriter.withUTF8(sender) { sender in
                JSONWriter.withUTF8(content) { content in
                    JSONWriter.withUTF8(channel) { channel in
                        JSONWriter.withUTF8(timestamp) { timestamp in
                            frame { out in
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

    /// `{"type":"presence","user_id":…,"name":…,"online":…,"channel":…,"last_seen":…}` — `name`
    /// when the user's token had one (CONTRACT §12), `last_seen` (ISO 8601) on `online:false`:
    /// when the user's last connection in the channel ended.
    static func presence(userID: String, name: String? = nil, online: Bool, channel: String, lastSeen: String? = nil) -> SharedBytes {
        JSONWriter.withUTF8(userID) { userID in
            JSONWriter.withUTF8(name ?? "") { nameBytes in
                JSONWriter.withUTF8(channel) { channel in
                    JSONWriter.withUTF8(lastSeen ?? "") { lastSeenBytes in
                        frame { out in
                            out.raw(#"{"type":"presence","user_id":"#)
                            out.string(userID)
                            if name != nil {
                                out.raw(#","name":"#)
                                out.string(nameBytes)
                            }
                            out.raw(#","online":"#)
                            out.bool(online)
                            out.raw(#","channel":"#)
                            out.string(channel)
                            if lastSeen != nil {
                                out.raw(#","last_seen":"#)
                                out.string(lastSeenBytes)
                            }
                            out.raw("}")
                        }
                    }
                }
            }
        }
    }

    /// `{"type":"typing","user_id":…,"channel":…,"typing":…}`
    static func typing(userID: String, channel: String, typing: Bool) -> SharedBytes {
        JSONWriter.withUTF8(userID) { userID in
            JSONWriter.withUTF8(channel) { channel in
                frame { out in
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
    static let pong: SharedBytes = frame { out in
        out.raw(#"{"type":"pong"}"#)
    }

    /// `{"type":"error","code":…,"message":…}`, with `"channel"` when the refused command named
    /// one and `"nonce"` when it carried one (so a client can tell which join or send failed).
    static func error(_ code: ProtocolErrorCode, _ message: String, channel: String? = nil, nonce: String? = nil) -> SharedBytes {
        JSONWriter.withUTF8(code.rawValue) { code in
            JSONWriter.withUTF8(message) { message in
                JSONWriter.withUTF8(channel ?? "") { channelBytes in
                    JSONWriter.withUTF8(nonce ?? "") { nonceBytes in
                        frame { out in
                            out.raw(#"{"type":"error","code":"#)
                            out.string(code)
                            out.raw(#","message":"#)
                            out.string(message)
                            if channel != nil {
                                out.raw(#","channel":"#)
                                out.string(channelBytes)
                            }
                            if nonce != nil {
                                out.raw(#","nonce":"#)
                                out.string(nonceBytes)
                            }
                            out.raw("}")
                        }
                    }
                }
            }
        }
    }

    /// The error frame for a refused client message.
    static func error(_ error: ProtocolError) -> SharedBytes {
        self.error(error.code, error.message)
    }

    // MARK: Private

    /// A text frame whose payload is what `write` writes. `write` runs twice: on a measuring cursor for
    /// the exact payload length, then on one writing straight into the frame's single allocation.
    @inline(__always)
    private static func frame(_ write: (inout JSONByteCursor) -> Void) -> SharedBytes {
        var measure = JSONByteCursor.measuring()
        write(&measure)
        let payloadLength = measure.count
        return FrameEncoder.serverFrame(.text, payloadLength: payloadLength) { payload in
            var cursor = JSONByteCursor(payload.baseAddress!)
            write(&cursor)
            precondition(cursor.count == payloadLength, "ServerMessage: length mismatch")
        }
    }
}
