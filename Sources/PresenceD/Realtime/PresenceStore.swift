import Synchronization

/// A user online (or in its grace period) in a channel, and its display name when known.
struct PresenceUser: Sendable, Equatable {
    var userID: String
    /// The `name` claim of the token of one of its connections (the latest that had one).
    var name: String?
}

/// What a join learned from presence: whether the joiner's user just came online in the channel
/// (its first connection there, across all instances) and who is online now, the joiner included.
struct PresenceJoin: Sendable {
    var firstConnection: Bool
    var online: [PresenceUser]
}

/// One user's presence in a channel, for `GET /api/v1/presence`.
struct PresenceMember: Sendable, Equatable {
    var userID: String
    var name: String?
    var connections: Int
}

/// A user that went offline in a channel: its last connection there ended at `lastSeen`
/// (wall-clock ms; for an instance that died, its last sign of life) and the grace period passed.
struct PresenceDeparture: Sendable, Equatable {
    var channel: String
    var userID: String
    var name: String?
    var lastSeen: Int64
}

/// Where presence lives: in this process (embedded mode) or in Redis (shared by every instance).
/// Completions run on the calling loop's thread. A user whose last connection leaves goes
/// offline after `PRESENCE_GRACE` through `offlineSink` (once, across instances).
///
/// Besides channels, a store knows whether each user has any connection at all (`connected`,
/// `disconnected`, `users`: CONTRACT §11); see `UserPresence`.
protocol PresenceStore: AnyObject, Sendable {
    /// A connection of `user` joined `channel`; `name` is its token's `name` claim.
    func join(channel: String, user: String, name: String?, now: Int64, _ done: @escaping (PresenceJoin) -> Void)
    /// A connection of `user` left `channel` (leave, close or expiry).
    func leave(channel: String, user: String, now: Int64)
    /// Users with at least one connection in `channel`; nil when the store cannot be asked
    /// (Redis unreachable).
    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void)
    /// A connection of `user` opened (one presence operation: nothing is read back).
    func connected(user: String, now: Int64)
    /// A connection of `user` closed.
    func disconnected(user: String, now: Int64)
    /// Whether each of `users` is connected anywhere, in the order asked; nil when the store
    /// cannot be asked.
    func users(_ users: [String], _ done: @escaping ([UserPresence]?) -> Void)
    /// Runs expiry (grace periods); called regularly by one loop.
    func tick(now: Int64)
    /// Receives each user that went offline in a channel; set once at start.
    var offlineSink: (@Sendable (PresenceDeparture) -> Void)? { get set }
}

/// Presence in this process: per channel, per user, a connection count, the user's name and,
/// while the last connection's grace period runs, the time it ends and when that connection left.
/// User presence is the reserved channel `UserPresence.channelPrefix` in the same table; its
/// departures go to a `LastSeenBook` instead of `offlineSink`.
final class EmbeddedPresenceStore: PresenceStore, @unchecked Sendable {
    private struct Entry {
        var connections = 0
        /// The end of the grace period (loop clock), while it runs.
        var offlineAt: Int64?
        var name: String?
        /// When the last connection left (wall clock), while the grace period runs.
        var leftAt: Int64 = 0
    }
    private struct State {
        var channels: [String: [String: Entry]] = [:]
        var pending: [(channel: String, user: String, at: Int64)] = []
        var lastSeen = LastSeenBook()

        mutating func removeUser(_ user: String, from channel: String) {
            channels[channel]?[user] = nil
            if channels[channel]?.isEmpty == true { channels[channel] = nil }
        }

        /// `entry`'s user is gone from `channel`: the departure to announce, or — for user
        /// presence — nothing to announce, only the time remembered.
        mutating func depart(_ user: String, _ entry: Entry, from channel: String) -> PresenceDeparture? {
            removeUser(user, from: channel)
            if channel == usersChannel {
                lastSeen.record(user, at: entry.leftAt)
                return nil
            }
            return PresenceDeparture(channel: channel, userID: user, name: entry.name, lastSeen: entry.leftAt)
        }
    }
    private static let usersChannel = UserPresence.channelPrefix
    private let state = Lock(State())
    private let graceMillis: Int64
    var offlineSink: (@Sendable (PresenceDeparture) -> Void)?

    init(graceMillis: Int64) {
        self.graceMillis = graceMillis
    }

    func join(channel: String, user: String, name: String?, now: Int64, _ done: @escaping (PresenceJoin) -> Void) {
        let result = state.withLock { s -> PresenceJoin in
            // Mutated in place: no copy of the channel's table per join.
            let first = Self.countJoin(&s.channels[channel, default: [:]][user, default: Entry()], name: name)
            return PresenceJoin(firstConnection: first,
                                online: s.channels[channel]!.map { PresenceUser(userID: $0.key, name: $0.value.name) })
        }
        done(result)
    }

    /// One more connection; true when the user was not online before (back within the grace
    /// period does not count: the others never saw it leave).
    private static func countJoin(_ entry: inout Entry, name: String?) -> Bool {
        let first = entry.connections == 0 && entry.offlineAt == nil
        entry.connections += 1
        entry.offlineAt = nil
        if let name { entry.name = name }
        return first
    }

    func leave(channel: String, user: String, now: Int64) {
        let wall = UnixTime.nowMillis()
        let gone = state.withLock { s -> PresenceDeparture? in
            guard var entry = s.channels[channel]?[user], entry.connections > 0 else { return nil }
            if entry.connections > 1 {
                s.channels[channel]![user]!.connections -= 1
                return nil
            }
            entry.connections = 0
            entry.leftAt = wall
            if graceMillis == 0 { return s.depart(user, entry, from: channel) }
            entry.offlineAt = now + graceMillis
            s.channels[channel]![user] = entry
            s.pending.append((channel, user, now + graceMillis))
            return nil
        }
        if let gone { offlineSink?(gone) }
    }

    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void) {
        let list = state.withLock { s in
            (s.channels[channel] ?? [:]).compactMap { user, entry in
                entry.connections > 0 ? PresenceMember(userID: user, name: entry.name, connections: entry.connections) : nil
            }.sorted { $0.userID < $1.userID }
        }
        done(list)
    }

    func connected(user: String, now: Int64) {
        state.withLock { s in
            _ = Self.countJoin(&s.channels[Self.usersChannel, default: [:]][user, default: Entry()], name: nil)
        }
    }

    func disconnected(user: String, now: Int64) {
        leave(channel: Self.usersChannel, user: user, now: now)
    }

    func users(_ users: [String], _ done: @escaping ([UserPresence]?) -> Void) {
        let wall = UnixTime.nowMillis()
        let list = state.withLock { s in
            users.map { user in
                // Connected, or within the grace period after its last connection (as in channels).
                s.channels[Self.usersChannel]?[user] != nil
                    ? UserPresence(userID: user, online: true, lastSeen: nil)
                    : UserPresence(userID: user, online: false, lastSeen: s.lastSeen.lastSeen(user, now: wall))
            }
        }
        done(list)
    }

    func tick(now: Int64) {
        let gone = state.withLock { s -> [PresenceDeparture] in
            guard s.pending.contains(where: { $0.at <= now }) else { return [] }
            var gone: [PresenceDeparture] = []
            var keep: [(channel: String, user: String, at: Int64)] = []
            for p in s.pending {
                guard p.at <= now else { keep.append(p); continue }
                // Still offline with this very deadline (not rejoined, not re-left later)?
                if let entry = s.channels[p.channel]?[p.user], entry.connections == 0, entry.offlineAt == p.at,
                   let departure = s.depart(p.user, entry, from: p.channel) {
                    gone.append(departure)
                }
            }
            s.pending = keep
            return gone
        }
        for departure in gone { offlineSink?(departure) }
    }
}
