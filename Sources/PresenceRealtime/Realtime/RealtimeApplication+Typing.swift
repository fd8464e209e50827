import PresenceLoop

/// Typing indicators (docs/protocol.md, "Typing"): to the other users' connections in the channel,
/// never stored, droppable under backpressure; a `typing:true` not followed by `typing:false` ends
/// after 5 s (`tick`).
extension RealtimeApplication {
    func typingChanged(_ id: ConnectionID, _ channel: String, _ typing: Bool) {
        let s = Int(id.slot)
        guard let session = sessions[s], session.joined.contains(channel) else {
            return fail(id, .notJoined, "join the channel before typing in it", channel: channel)
        }
        if !typing { return stopTyping(id, channel) }
        let until = loop.now + RealtimeApplication.typingTimeoutMillis
        if let i = typingChannels[id.slot]?.firstIndex(where: { $0.channel == channel }) {
            typingChannels[id.slot]![i].until = until  // still typing: only the auto-stop moves
        } else {
            typingChannels[id.slot, default: []].append((channel, until))
            announceTyping(true, user: session.user, channel: channel, from: id)
        }
        loop.scheduleTick(at: until)
    }

    func stopTyping(_ id: ConnectionID, _ channel: String) {
        guard let session = sessions[Int(id.slot)], let i = typingChannels[id.slot]?.firstIndex(where: { $0.channel == channel }) else {
            return
        }
        typingChannels[id.slot]!.remove(at: i)
        if typingChannels[id.slot]!.isEmpty { typingChannels[id.slot] = nil }
        announceTyping(false, user: session.user, channel: channel, from: id)
    }

    func announceTyping(_ typing: Bool, user: String, channel: String, from id: ConnectionID) {
        // To the other users' connections only, and droppable under backpressure.
        fanOut(
            channel: channel, frame: ServerMessage.typing(userID: user, channel: channel, typing: typing),
            exceptUser: user, droppable: true)
    }
}
