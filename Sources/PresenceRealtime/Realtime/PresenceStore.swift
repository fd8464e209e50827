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
/// `disconnected`, `users`: docs/protocol.md, "User presence"); see `UserPresence`.
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
