/// Typing indicators (CONTRACT §5): to the other users' connections in the channel, never
/// stored, droppable under backpressure; a `typing:true` not followed by `typing:false` ends
/// after 5 s (`tick`).
extension RealtimeApplication {
    func typingChanged(_ id: ConnectionID, _ channel: String, _ typing: Bool) {
        let s = Int(id.slot)
        guard let session = sessions[s], session.joined.contains(channel) else {
            return fail(id, .notJoined, "join the channel before typing in it", channel: channel)
        }
        if !typing { return stopTyping(id, channel) }
        let until = loop.now + RealtimeApplication.typingTimeoutMillis
        if let i = session.typing.firstIndex(where: { $0.channel == channel }) {
            sessions[s]!.typing[i].until = until // still typing: only the auto-stop moves
        } else {
            sessions[s]!.typing.append((channel, until))
            typingSlots.insert(id.slot)
            announceTyping(true, user: session.user, channel: channel, from: id)
        }
        loop.scheduleTick(at: until)
    }

    func stopTyping(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        guard let session = sessions[s], let i = session.typing.firstIndex(where: { $0.channel == channel }) else { return }
        sessions[s]!.typing.remove(at: i)
        if sessions[s]!.typing.isEmpty { typingSlots.remove(id.slot) }
        announceTyping(false, user: session.user, channel: channel, from: id)
    }

    func announceTyping(_ typing: Bool, user: String, channel: String, from id: ConnectionID) {
        // To the other users' connections only, and droppable under backpressure.
        fanOut(channel: channel, frame: ServerMessage.typing(userID: user, channel: channel, typing: typing),
               exceptUser: user, droppable: true)
    }
}
