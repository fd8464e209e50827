import PresenceLoop
import Synchronization

/// Presence in this process: per channel, per user, a connection count and the user's name; per
/// user, a connection count for user presence (`UserPresence`), whose departures go to a
/// `LastSeenBook` instead of `offlineSink`.
///
/// Idle connections make up most of the daemon's memory (issue 19), so the tables hold only what
/// every entry needs — a channel entry is 24 bytes, a user entry 8; a channel's users are a
/// `SmallUserTable`, pairs in an array for all but large channels — and the rest of a grace
/// period (its end, when the last connection left) waits in the short `pending` list. An entry
/// with no connection is in its grace period; the generation its last leave gave it tells the
/// pending item of that leave from older ones (the user came back and left again since).
final class EmbeddedPresenceStore: PresenceStore, @unchecked Sendable {
    /// A user in a channel: 24 bytes (a pair of the channel's table, or a bucket once it is a
    /// dictionary, key included, is 40 instead of 64). The optional string first: after the two
    /// 4-byte fields it would be padded to 32. Internal for `SmallUserTable`.
    struct Entry: PresenceCount, Equatable {
        /// The `name` claim of the latest of its connections' tokens that had one.
        var name: String?
        var connections: Int32
        var generation: UInt32

        /// What a join finds where the user has no entry yet (never stored as such).
        static var unseen: Entry { Entry(name: nil, connections: unseenConnections, generation: 0) }

        /// One more connection (see `countJoin`), and its name when it has one.
        mutating func join(name: String?) -> Bool {
            let first = countJoin()
            if let name { self.name = name }
            return first
        }
    }

    /// A user's connections anywhere, for user presence, which never needs a name: 8 bytes
    /// (a bucket of the table, key included, is 24 instead of 64).
    private struct UserEntry: PresenceCount {
        var connections: Int32
        var generation: UInt32

        static var unseen: UserEntry { UserEntry(connections: unseenConnections, generation: 0) }
    }

    /// A grace period running: the last connection of `user` left `channel` (nil: the user's last
    /// connection anywhere closed, for user presence) at `leftAt` (wall clock); it departs at
    /// `deadline` (loop clock) if its entry still has no connection and this `generation`.
    private struct Pending {
        var channel: String?
        var user: String
        var deadline: Int64
        var leftAt: Int64
        var generation: UInt32
    }

    private struct State {
        var channels: [String: SmallUserTable] = [:]
        var users: [String: UserEntry] = [:]
        var pending: [Pending] = []
        var lastSeen = LastSeenBook()
        /// The generation of the latest leave that ended a user's connections (wrapping). Counted
        /// across the whole store rather than per entry, so an entry made anew after a departure
        /// never takes up a generation an older pending item still holds.
        var lastGeneration: UInt32 = 0

        /// Removes `user` from `channel`, and the channel's table once empty; the entry it had.
        @discardableResult
        mutating func removeUser(_ user: String, from channel: String) -> Entry? {
            guard let entry = channels[channel]?.removeValue(forKey: user) else { return nil }
            if channels[channel]?.isEmpty == true { channels[channel] = nil }
            return entry
        }

        /// `p`'s grace period is over: its user departs unless it has come back, or come back and
        /// left again (a later pending item) since. The departure to announce — for user
        /// presence none, only the time remembered.
        mutating func depart(_ p: Pending) -> PresenceDeparture? {
            guard let channel = p.channel else {
                if users[p.user]?.isLeft(generation: p.generation) == true {
                    users[p.user] = nil
                    lastSeen.record(p.user, at: p.leftAt)
                }
                return nil
            }
            guard let entry = channels[channel]?[p.user], entry.isLeft(generation: p.generation) else { return nil }
            removeUser(p.user, from: channel)
            return PresenceDeparture(channel: channel, userID: p.user, name: entry.name, lastSeen: p.leftAt)
        }
    }

    /// `MemoryLayout<…>.stride` of the table entries (24 and 8 bytes) and of a channel's table in
    /// the table of channels (8), for the test that keeps them from growing back.
    static let entryStride = MemoryLayout<Entry>.stride
    static let userEntryStride = MemoryLayout<UserEntry>.stride
    static let channelTableStride = MemoryLayout<SmallUserTable>.stride

    private let state = Lock(State())
    private let graceMillis: Int64
    var offlineSink: (@Sendable (PresenceDeparture) -> Void)?

    init(graceMillis: Int64) {
        self.graceMillis = graceMillis
    }

    func join(channel: String, user: String, name: String?, now: Int64, _ done: @escaping (PresenceJoin) -> Void) {
        let result = state.withLock { s -> PresenceJoin in
            // Mutated in place: no copy of the channel's table per join.
            let first = s.channels[channel, default: SmallUserTable()].modify(user, default: .unseen) {
                $0.join(name: name)
            }
            return PresenceJoin(
                firstConnection: first,
                online: s.channels[channel]!.map { PresenceUser(userID: $0.key, name: $0.value.name) })
        }
        done(result)
    }

    func leave(channel: String, user: String, now: Int64) {
        let wall = UnixTime.nowMillis()
        let gone = state.withLock { s -> PresenceDeparture? in
            let generation = s.lastGeneration &+ 1
            // In place: one lookup of the channel, one of the user.
            let last = s.channels[channel]?.modifyIfPresent(user) { $0.countLeave(generation: generation) }
            guard last == true else { return nil }
            s.lastGeneration = generation
            if graceMillis == 0 {
                let entry = s.removeUser(user, from: channel)
                return PresenceDeparture(channel: channel, userID: user, name: entry?.name, lastSeen: wall)
            }
            s.pending.append(
                Pending(
                    channel: channel, user: user, deadline: now + graceMillis, leftAt: wall,
                    generation: generation))
            return nil
        }
        if let gone { offlineSink?(gone) }
    }

    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void) {
        let list = state.withLock { s in
            (s.channels[channel] ?? SmallUserTable()).compactMap { user, entry in
                entry.connections > 0
                    ? PresenceMember(userID: user, name: entry.name, connections: Int(entry.connections)) : nil
            }.sorted { $0.userID < $1.userID }
        }
        done(list)
    }

    func connected(user: String, now: Int64) {
        state.withLock { s in
            _ = s.users[user, default: .unseen].countJoin()
        }
    }

    func disconnected(user: String, now: Int64) {
        let wall = UnixTime.nowMillis()
        state.withLock { s in
            let generation = s.lastGeneration &+ 1
            guard s.users[user]?.countLeave(generation: generation) == true else { return }
            s.lastGeneration = generation
            if graceMillis == 0 {
                s.users[user] = nil
                s.lastSeen.record(user, at: wall)
            } else {
                s.pending.append(
                    Pending(
                        channel: nil, user: user, deadline: now + graceMillis, leftAt: wall,
                        generation: generation))
            }
        }
    }

    func users(_ users: [String], _ done: @escaping ([UserPresence]?) -> Void) {
        let wall = UnixTime.nowMillis()
        let list = state.withLock { s in
            users.map { user in
                // Connected, or within the grace period after its last connection (as in channels).
                s.users[user] != nil
                    ? UserPresence(userID: user, online: true, lastSeen: nil)
                    : UserPresence(userID: user, online: false, lastSeen: s.lastSeen.lastSeen(user, now: wall))
            }
        }
        done(list)
    }

    func tick(now: Int64) {
        let gone = state.withLock { s -> [PresenceDeparture] in
            guard s.pending.contains(where: { $0.deadline <= now }) else { return [] }
            var gone: [PresenceDeparture] = []
            var keep: [Pending] = []
            for p in s.pending {
                guard p.deadline <= now else {
                    keep.append(p)
                    continue
                }
                if let departure = s.depart(p) { gone.append(departure) }
            }
            s.pending = keep
            return gone
        }
        for departure in gone { offlineSink?(departure) }
    }
}

/// What channel and user entries share: a connection count (0: in the grace period after the last
/// connection left) and the generation of the leave that took it to 0.
private protocol PresenceCount {
    var connections: Int32 { get set }
    var generation: UInt32 { get set }
}

extension PresenceCount {
    /// The `connections` of an entry a join finds where there was none: tells a user's first
    /// connection from a return within the grace period (0 connections) without a second lookup.
    static var unseenConnections: Int32 { -1 }

    /// One more connection; true when the user was not there before (back within the grace
    /// period does not count: the others never saw it leave).
    mutating func countJoin() -> Bool {
        let first = connections == Self.unseenConnections
        connections = max(connections, 0) + 1
        return first
    }

    /// One connection fewer; true when that was the last one, the entry then stamped with
    /// `generation`. A leave without a connection left to count is ignored.
    mutating func countLeave(generation: UInt32) -> Bool {
        guard connections > 0 else { return false }
        connections -= 1
        guard connections == 0 else { return false }
        self.generation = generation
        return true
    }

    /// Whether the entry is still in the grace period that the leave of `generation` began.
    func isLeft(generation: UInt32) -> Bool {
        connections == 0 && self.generation == generation
    }
}
