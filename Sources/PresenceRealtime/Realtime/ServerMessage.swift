import PresenceJSON
import WSCore

/// Server → client messages (docs/protocol.md, "Server messages"), each serialized ONCE straight
/// into a complete unmasked WebSocket text frame: the exact payload length is measured first, then
/// header and JSON are written into one allocation, shared by every recipient. Keys are in contract
/// order.
enum ServerMessage {
    /// `{"type":"message","id":…,"sender":…,"content":…,"channel":…,"timestamp":…}`, then
    /// `"nonce"` when the sender gave one and `"offset"`/`"epoch"` when the channel keeps history
    /// (docs/protocol.md, "Offsets and epochs"; last, so the Redis history script can complete a
    /// prefix).
    static func message(
        id: String, sender: String, content: String, channel: String, timestamp: String,
        nonce: String? = nil, position: StreamPosition? = nil
    ) -> SharedBytes {
        JSONWriter.withUTF8(id) { id in
            JSONWriter.withUTF8(sender) { sender in
                JSONWriter.withUTF8(content) { content in
                    JSONWriter.withUTF8(channel) { channel in
                        JSONWriter.withUTF8(timestamp) { timestamp in
                            JSONWriter.withUTF8(nonce ?? "") { nonceBytes in
                                JSONWriter.withUTF8(position?.epoch ?? "") { epoch in
                                    frame { out in
                                        messageFields(&out, id, sender, content, channel, timestamp, nonce == nil ? nil : nonceBytes)
                                        if let position {
                                            out.raw(#","offset":"#)
                                            out.integer(position.offset)
                                            out.raw(#","epoch":"#)
                                            out.string(epoch)
                                        }
                                        out.raw("}")
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The JSON text of a `message` up to and including `,"offset":` — what Redis' history script
    /// completes with the offset it assigns and the channel's epoch (`HistoryScripts.append`) —
    /// or, `withOffset` false (no history), the whole text.
    static func messageText(
        id: String, sender: String, content: String, channel: String, timestamp: String,
        nonce: String?, withOffset: Bool
    ) -> [UInt8] {
        JSONWriter.withUTF8(id) { id in
            JSONWriter.withUTF8(sender) { sender in
                JSONWriter.withUTF8(content) { content in
                    JSONWriter.withUTF8(channel) { channel in
                        JSONWriter.withUTF8(timestamp) { timestamp in
                            JSONWriter.withUTF8(nonce ?? "") { nonceBytes in
                                JSONByteCursor.document { out in
                                    messageFields(&out, id, sender, content, channel, timestamp, nonce == nil ? nil : nonceBytes)
                                    if withOffset { out.raw(#","offset":"#) } else { out.raw("}") }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The frame of a `message` from its `messageText`: with `position`, the text ends in
    /// `,"offset":` and gets the offset and epoch; without, it is already whole.
    static func message(text: [UInt8], position: StreamPosition?) -> SharedBytes {
        JSONWriter.withUTF8(position?.epoch ?? "") { epoch in
            text.withUnsafeBytes { text in
                frame { out in
                    out.verbatim(text)
                    if let position {
                        out.integer(position.offset)
                        out.raw(#","epoch":"#)
                        out.string(epoch)
                        out.raw("}")
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func messageFields(
        _ out: inout JSONByteCursor, _ id: UnsafeRawBufferPointer, _ sender: UnsafeRawBufferPointer,
        _ content: UnsafeRawBufferPointer, _ channel: UnsafeRawBufferPointer,
        _ timestamp: UnsafeRawBufferPointer, _ nonce: UnsafeRawBufferPointer?
    ) {
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
        if let nonce {
            out.raw(#","nonce":"#)
            out.string(nonce)
        }
    }

    /// `{"type":"joined","channel":…,"offset":…,"epoch":…,"recovered":…}`: the join is complete
    /// (docs/protocol.md, "Recovery after a reconnect"); offset and epoch only with history,
    /// `recovered` only for a join with `since`.
    static func joined(channel: String, position: StreamPosition?, recovered: Bool?) -> SharedBytes {
        JSONWriter.withUTF8(channel) { channel in
            JSONWriter.withUTF8(position?.epoch ?? "") { epoch in
                frame { out in
                    out.raw(#"{"type":"joined","channel":"#)
                    out.string(channel)
                    if let position {
                        out.raw(#","offset":"#)
                        out.integer(position.offset)
                        out.raw(#","epoch":"#)
                        out.string(epoch)
                    }
                    if let recovered {
                        out.raw(#","recovered":"#)
                        out.bool(recovered)
                    }
                    out.raw("}")
                }
            }
        }
    }

    /// `{"type":"presence","user_id":…,"name":…,"online":…,"channel":…,"last_seen":…}` — `name`
    /// when the user's token had one (docs/protocol.md, "Presence"), `last_seen` (ISO 8601) on
    /// `online:false`: when the user's last connection in the channel ended.
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

    /// The payload of an unmasked server frame (its header skipped), or nil when it is cut short.
    static func payload(of frame: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard frame.count >= 2 else { return nil }
        let length = Int(frame[1] & 0x7F)
        let header = length < 126 ? 2 : (length == 126 ? 4 : 10)
        guard frame.count >= header else { return nil }
        return UnsafeRawBufferPointer(rebasing: frame[header...])
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
