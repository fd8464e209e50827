import PresenceLoop
import WSCore

/// Fan-out (docs/protocol.md, "Chat messages"): a frame encoded once goes to this loop's members at
/// once, to the other loops through their rings and to the other instances through Redis. On each
/// loop a channel's chat messages pass through its `MessageOrder` (offset order, no repeat), and
/// the channel's joins that are not live yet get what they are owed: kept back while their join is
/// under way, filtered against their replay until the loop has caught up with it.
extension RealtimeApplication {
    /// Delivers here at once, then to the other loops through their rings and to the other
    /// instances through Redis (unless the history script published it already).
    /// `local`: the channel here, when the caller has it already.
    func fanOut(
        channel: String, frame: SharedBytes, exceptUser: String? = nil, exceptConnection: ConnectionID? = nil,
        droppable: Bool = false, position: StreamPosition? = nil, publishedToRedis: Bool = false,
        local: LocalChannels.Channel? = nil
    ) {
        if let local = local ?? channels.channel(channel) {
            deliver(
                channel, local, frame: frame, exceptUser: exceptUser, exceptConnection: exceptConnection, droppable: droppable,
                position: position)
        }
        hub.publish(channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable, position: position, fromLoop: loop.index)
        if !publishedToRedis {
            hub.redis?.fanOut.publish(channel: channel, frame: frame, exceptUser: exceptUser, droppable: droppable)
        }
    }

    /// Hands `frame` to the members of `channel` on this loop, skipping `exceptUser`'s connections
    /// and `exceptConnection`; a chat message (`position`) first passes the channel's order here.
    func deliver(
        channel name: String, frame: SharedBytes, exceptUser: String?, exceptConnection: ConnectionID?, droppable: Bool,
        position: StreamPosition? = nil
    ) {
        guard let channel = channels.channel(name) else { return }
        deliver(
            name, channel, frame: frame, exceptUser: exceptUser, exceptConnection: exceptConnection, droppable: droppable,
            position: position)
    }

    private func deliver(
        _ name: String, _ channel: LocalChannels.Channel, frame: SharedBytes, exceptUser: String?,
        exceptConnection: ConnectionID?, droppable: Bool, position: StreamPosition?
    ) {
        guard let position, keepsHistory else {
            return send(channel, frame, exceptUser: exceptUser, exceptConnection: exceptConnection, droppable: droppable, position: nil)
        }
        switch channel.order.arrive(position, frame, now: loop.now) {
        case .next: send(channel, frame, exceptUser: nil, exceptConnection: nil, droppable: false, position: position)
        case .nothing: if channel.order.isHolding { holdingOrder.insert(name) }
        case .run(let released): release(name, channel, released)
        }
    }

    /// Sends what the order let through, in order, and notes a channel that now holds a gap.
    func release(_ name: String, _ channel: LocalChannels.Channel, _ released: [(StreamPosition, SharedBytes)]) {
        for (position, frame) in released {
            send(channel, frame, exceptUser: nil, exceptConnection: nil, droppable: false, position: position)
        }
        if channel.order.isHolding { holdingOrder.insert(name) }
    }

    /// Every tick: a gap that has not closed within `MessageOrder.gapMillis` is skipped.
    func skipOrderGaps(now: Int64) {
        guard !holdingOrder.isEmpty else { return }
        for name in holdingOrder {
            guard let channel = channels.channel(name) else {
                holdingOrder.remove(name)
                continue
            }
            let released = channel.order.skipGap(now: now)
            if !released.isEmpty {
                realtimeCounters.orderGapsSkipped &+= 1
                Log.warn("a gap in a channel's offsets did not close: skipped", ["loop": "\(loop.index)"])
            }
            release(name, channel, released)
            if !channel.order.isHolding { holdingOrder.remove(name) }
        }
    }

    /// Queues `frame` on the channel's members here, and hands it to its joins under way.
    /// Nothing is copied per recipient.
    private func send(
        _ channel: LocalChannels.Channel, _ frame: SharedBytes, exceptUser: String?, exceptConnection: ConnectionID?,
        droppable: Bool, position: StreamPosition?
    ) {
        let members = channel.members
        if exceptUser == nil && exceptConnection == nil && !droppable {
            // The message path: every member, no per-member test beyond the backlog.
            let server = self.server!
            let queued = members.withUnsafeBufferPointer { targets in
                loop.enqueue(frame, on: targets, limit: server.config.maxOutboundBytes) { server.closeSlowConsumer($0) }
            }
            loop.counters.fannedOut(frame, count: queued)
        } else {
            var queued = 0
            for member in members {
                if member == exceptConnection { continue }
                if let exceptUser, sessions[Int(member.slot)]?.user == exceptUser { continue }
                if server.queue(member, frame, droppable: droppable) { queued += 1 }
            }
            loop.counters.fannedOut(frame, count: queued)
        }
        if !channel.joining.isEmpty {
            handOver(channel, frame, exceptUser: exceptUser, exceptConnection: exceptConnection, droppable: droppable, position: position)
        }
    }

    /// A frame for a channel with joins under way: kept for those still waiting (bounded), sent to
    /// those catching up unless their replay had it; a join caught up with becomes a member.
    private func handOver(
        _ channel: LocalChannels.Channel, _ frame: SharedBytes, exceptUser: String?, exceptConnection: ConnectionID?,
        droppable: Bool, position: StreamPosition?
    ) {
        var promoted: [ConnectionID] = []
        for i in channel.joining.indices {
            let id = channel.joining[i].id
            if id == exceptConnection { continue }
            if let exceptUser, sessions[Int(id.slot)]?.user == exceptUser { continue }
            switch channel.joining[i].stage {
            case .waiting:
                if channel.joining[i].kept.count < LocalChannels.Joining.keptLimit {
                    channel.joining[i].kept.append((frame, position))
                } else if position != nil {
                    channel.joining[i].overflowed = true
                }
            case .catchingUp(let through):
                if !RealtimeApplication.covers(through, position) { _ = server.queue(id, frame, droppable: droppable) }
                if let position, !RealtimeApplication.covers(through, position) || position == through { promoted.append(id) }
            }
        }
        for id in promoted where loop.isOpen(id) {
            channel.removeJoining(id)
            channel.add(id)
        }
    }
}
