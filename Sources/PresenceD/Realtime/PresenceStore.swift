import Synchronization

/// What a join learned from presence: whether the joiner's user just came online in the channel
/// (its first connection there, across all instances) and who is online now, the joiner included.
struct PresenceJoin: Sendable {
    var firstConnection: Bool
    var online: [String]
}

/// One user's presence in a channel, for `GET /api/v1/presence`.
struct PresenceMember: Sendable, Equatable {
    var userID: String
    var connections: Int
}

/// Where presence lives: in this process (embedded mode) or in Redis (shared by every instance).
/// Completions run on the calling loop's thread. A user whose last connection leaves goes
/// offline after `PRESENCE_GRACE` through `offlineSink` (once, across instances).
protocol PresenceStore: AnyObject, Sendable {
    /// A connection of `user` joined `channel`.
    func join(channel: String, user: String, now: Int64, _ done: @escaping (PresenceJoin) -> Void)
    /// A connection of `user` left `channel` (leave, close or expiry).
    func leave(channel: String, user: String, now: Int64)
    /// Users with at least one connection in `channel`; nil when the store cannot be asked
    /// (Redis unreachable).
    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void)
    /// Runs expiry (grace periods); called regularly by one loop.
    func tick(now: Int64)
    /// Receives each `(channel, user)` that went offline; set once at start.
    var offlineSink: (@Sendable (_ channel: String, _ user: String) -> Void)? { get set }
}

/// Presence in this process: per channel, per user, a connection count and, while the last
/// connection's grace period runs, the time it ends.
final class EmbeddedPresenceStore: PresenceStore, @unchecked Sendable {
    private struct Entry {
        var connections: Int
        var offlineAt: Int64?
    }
    private struct State {
        var channels: [String: [String: Entry]] = [:]
        var pending: [(channel: String, user: String, at: Int64)] = []

        mutating func removeUser(_ user: String, from channel: String) {
            channels[channel]?[user] = nil
            if channels[channel]?.isEmpty == true { channels[channel] = nil }
        }
    }
    private let state = Lock(State())
    private let graceMillis: Int64
    var offlineSink: (@Sendable (String, String) -> Void)?

    init(graceMillis: Int64) {
        self.graceMillis = graceMillis
    }

    func join(channel: String, user: String, now: Int64, _ done: @escaping (PresenceJoin) -> Void) {
        let result = state.withLock { s -> PresenceJoin in
            // Mutated in place: no copy of the channel's table per join.
            let first = Self.countJoin(&s.channels[channel, default: [:]][user, default: Entry(connections: 0, offlineAt: nil)])
            return PresenceJoin(firstConnection: first, online: Array(s.channels[channel]!.keys))
        }
        done(result)
    }

    /// One more connection; true when the user was not online before (back within the grace
    /// period does not count: the others never saw it leave).
    private static func countJoin(_ entry: inout Entry) -> Bool {
        let first = entry.connections == 0 && entry.offlineAt == nil
        entry.connections += 1
        entry.offlineAt = nil
        return first
    }

    func leave(channel: String, user: String, now: Int64) {
        let offline = state.withLock { s -> Bool in
            guard let entry = s.channels[channel]?[user], entry.connections > 0 else { return false }
            if entry.connections > 1 {
                s.channels[channel]![user]!.connections -= 1
                return false
            }
            if graceMillis == 0 {
                s.removeUser(user, from: channel)
                return true
            }
            s.channels[channel]![user] = Entry(connections: 0, offlineAt: now + graceMillis)
            s.pending.append((channel, user, now + graceMillis))
            return false
        }
        if offline { offlineSink?(channel, user) }
    }

    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void) {
        let list = state.withLock { s in
            (s.channels[channel] ?? [:]).compactMap { user, entry in
                entry.connections > 0 ? PresenceMember(userID: user, connections: entry.connections) : nil
            }.sorted { $0.userID < $1.userID }
        }
        done(list)
    }

    func tick(now: Int64) {
        let gone = state.withLock { s -> [(String, String)] in
            guard s.pending.contains(where: { $0.at <= now }) else { return [] }
            var gone: [(String, String)] = []
            var keep: [(channel: String, user: String, at: Int64)] = []
            for p in s.pending {
                guard p.at <= now else { keep.append(p); continue }
                // Still offline with this very deadline (not rejoined, not re-left later)?
                if let entry = s.channels[p.channel]?[p.user], entry.connections == 0, entry.offlineAt == p.at {
                    s.removeUser(p.user, from: p.channel)
                    gone.append((p.channel, p.user))
                }
            }
            s.pending = keep
            return gone
        }
        for (channel, user) in gone { offlineSink?(channel, user) }
    }
}
