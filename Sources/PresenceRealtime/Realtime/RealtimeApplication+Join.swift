import PresenceLoop
import PresenceOutbound
import WSCore

/// Joining and leaving a channel (docs/protocol.md, "Joining and leaving"). A join goes through
/// four steps, each of which a leave or a close may cut short: channel access (the claim, the
/// cache, or CHANNEL_AUTH_URL), the channel's subscription on this instance (Redis mode), the
/// presence join and the history read (together: one round trip in Redis mode), then the join's
/// frames — the presence snapshot, the replay after `since`, `joined` — followed by whatever the
/// channel delivered meanwhile, in order and without a repeat.
extension RealtimeApplication {
    func join(_ id: ConnectionID, _ channel: String, since: StreamPosition?) {
        let s = Int(id.slot)
        guard let session = sessions[s] else { return }
        if session.joined.contains(channel) { return confirmAgain(id, channel) }
        let awaiting = AwaitingJoin(connection: id, channel: channel)
        if awaitingAccess[awaiting] != nil { return }  // its answer will come
        guard session.joined.count + Int(session.joinsAwaitingAccess) < RealtimeApplication.maxChannelsPerConnection else {
            return fail(id, .tooLarge, "at most \(RealtimeApplication.maxChannelsPerConnection) channels per connection", channel: channel)
        }
        let subject = AccessSubject(
            user: session.user, role: session.role?.claim, sessionID: session.sessionID,
            channels: channelClaims[id.slot])
        if let decision = hub.access.immediate(subject, channel: channel, on: loop) {
            return admit(id, channel, since: since, decision)
        }
        awaitingAccess[awaiting] = .some(since)
        sessions[s]!.joinsAwaitingAccess += 1
        let requestID = session.requestID.isEmpty ? RequestID.make() : session.requestID
        hub.access.ask(subject, channel: channel, requestID: requestID, on: loop) { [unowned self] decision in
            // Left, or gone, meanwhile: the answer is cached for the next join, nothing else.
            guard let since = self.awaitingAccess.removeValue(forKey: awaiting), self.loop.isOpen(id), self.sessions[s] != nil else {
                return
            }
            self.sessions[s]!.joinsAwaitingAccess -= 1
            self.admit(id, channel, since: since, decision)
        }
    }

    /// A join of a channel the connection is in: its own presence and `joined` again (nothing
    /// counted twice). While its first join is still under way, that one answers.
    private func confirmAgain(_ id: ConnectionID, _ channel: String) {
        guard let session = sessions[Int(id.slot)], let c = channels.channel(channel) else { return }
        if let j = c.joiningIndex(id), case .waiting = c.joining[j].stage { return }
        server.send(id, ServerMessage.presence(userID: session.user, name: session.name, online: true, channel: channel))
        hub.history.read(channel: channel, since: nil) { [unowned self] read in
            guard self.loop.isOpen(id), self.sessions[Int(id.slot)]?.joined.contains(channel) == true else { return }
            self.server.send(id, ServerMessage.joined(channel: channel, position: read.latest, recovered: nil))
        }
    }

    /// Carries out a join once channel access has answered.
    private func admit(_ id: ConnectionID, _ channel: String, since: StreamPosition?, _ decision: AccessDecision) {
        switch decision {
        case .allowed: enter(id, channel, since: since)
        case .refused: fail(id, .forbiddenChannel, "not allowed in this channel", channel: channel)
        case .unavailable: fail(id, .unavailable, "channel access could not be checked; try again", channel: channel)
        }
    }

    /// The join of an admitted connection: it joins the channel here (not a member yet: what the
    /// channel delivers is kept back for it), this instance listens to the channel, then presence
    /// and history are read.
    private func enter(_ id: ConnectionID, _ channel: String, since: StreamPosition?) {
        let s = Int(id.slot)
        sessions[s]!.joined.append(channel)
        if channels.addJoining(id, to: channel) { hub.channelOccupied(channel) }
        let awaiting = AwaitingJoin(connection: id, channel: channel)
        awaitingSubscription.insert(awaiting)
        hub.whenSubscribed(channel, on: loop) { [unowned self] in
            // Gone, left (and maybe back, with its own wait) meanwhile: nothing to do for this one.
            guard self.awaitingSubscription.remove(awaiting) != nil else { return }
            self.read(id, channel, since: since)
        }
    }

    /// The presence join and the history read, sent together; the join completes when both answered.
    private func read(_ id: ConnectionID, _ channel: String, since: StreamPosition?) {
        guard let session = sessions[Int(id.slot)] else { return }
        final class Answers {
            var presence: PresenceJoin?
            var history: HistoryRead?
        }
        let answers = Answers()
        let completeWhenBoth = { [unowned self] in
            guard let presence = answers.presence, let history = answers.history else { return }
            self.complete(id, channel, since: since, presence: presence, history: history)
        }
        hub.presence.join(channel: channel, user: session.user, name: session.name, now: loop.now) {
            answers.presence = $0
            completeWhenBoth()
        }
        hub.history.read(channel: channel, since: since) {
            answers.history = $0
            completeWhenBoth()
        }
    }

    /// The join's frames, in this order: the presence snapshot, the messages after `since`, `joined`,
    /// then what the channel delivered while the join was under way (only what the replay did not
    /// cover). The connection becomes a member once this loop has delivered everything the replay
    /// covered, so no message reaches it twice.
    private func complete(_ id: ConnectionID, _ channel: String, since: StreamPosition?, presence: PresenceJoin, history read: HistoryRead)
    {
        let s = Int(id.slot)
        guard loop.isOpen(id), let session = sessions[s], session.joined.contains(channel),
            let c = channels.channel(channel), let j = c.joiningIndex(id)
        else { return }
        let joiner = c.takeJoining(at: j)
        var recovered = read.recovered
        if joiner.overflowed && recovered == true { recovered = false }  // too much arrived meanwhile to replay in order
        var frames = presence.online.map { ServerMessage.presence(userID: $0.userID, name: $0.name, online: true, channel: channel) }
        if recovered == true { frames += read.frames }
        frames.append(ServerMessage.joined(channel: channel, position: read.latest, recovered: recovered))
        for kept in joiner.kept where !RealtimeApplication.covers(read.latest, kept.position) { frames.append(kept.frame) }
        if since != nil { realtimeCounters.recoveries.add(recovered == true ? .recovered : .notRecovered) }

        // A member at once unless this loop has yet to deliver messages the replay covered.
        let started = c.order.last != nil
        var caughtUp = true
        if let latest = read.latest, let last = c.order.last, last.epoch == latest.epoch, last.offset < latest.offset { caughtUp = false }
        for frame in frames where loop.isOpen(id) { server.send(id, frame) }
        guard loop.isOpen(id) else { return }
        if caughtUp {
            c.add(id)
        } else {
            c.joining.append(LocalChannels.Joining(id: id, stage: .catchingUp(through: read.latest!)))
        }
        if !started, let latest = read.latest, hub.history.keepsMessages {
            release(channel, c, c.order.start(at: latest))
        }
        if presence.firstConnection {
            fanOut(
                channel: channel, frame: ServerMessage.presence(userID: session.user, name: session.name, online: true, channel: channel),
                exceptConnection: id)
        }
    }

    /// Whether a join whose replay ended at `latest` already has the message at `position`.
    static func covers(_ latest: StreamPosition?, _ position: StreamPosition?) -> Bool {
        guard let latest, let position else { return false }
        return covers(latest, position.offset, epoch: position.epoch)
    }

    static func covers(_ latest: StreamPosition?, _ offset: Int64, epoch: String) -> Bool {
        guard let latest else { return false }
        return epoch == latest.epoch && offset <= latest.offset
    }

    func leave(_ id: ConnectionID, _ channel: String) {
        let s = Int(id.slot)
        let awaiting = AwaitingJoin(connection: id, channel: channel)
        if awaitingAccess.removeValue(forKey: awaiting) != nil {
            // A join still being checked: cancelled, it never counted.
            sessions[s]!.joinsAwaitingAccess -= 1
            return
        }
        guard let session = sessions[s], session.joined.contains(channel) else {
            return fail(id, .notJoined, "not a member of this channel", channel: channel)
        }
        stopTyping(id, channel)
        _ = sessions[s]!.joined.remove(channel)
        if channels.remove(id, from: channel) { hub.channelEmptied(channel) }
        // A join still waiting for the subscription never reached presence.
        if awaitingSubscription.remove(awaiting) == nil {
            hub.presence.leave(channel: channel, user: session.user, now: loop.now)
        }
    }
}
