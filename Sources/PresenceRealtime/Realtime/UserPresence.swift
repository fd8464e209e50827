import PresenceLoop

/// One user's presence anywhere, whatever channels it joined (docs/protocol.md, "User presence",
/// `GET /api/v1/presence?user=`): online while it has a connection on any instance (and through
/// `PRESENCE_GRACE` after its last one closed, like channel presence); otherwise the time its last
/// connection closed, when that is still remembered.
///
/// The Redis store keeps it with the channel machinery, on reserved pseudo-channels that every
/// connection joins when it opens and leaves when it closes: grace periods, TTL refreshes and the
/// sweep of a crashed instance's entries then work exactly as for channels, at one presence
/// operation per connection open and one per close. The embedded store keeps a per-user count
/// beside its channel tables, with the same grace period.
struct UserPresence: Sendable, Equatable {
    var userID: String
    var online: Bool
    /// Wall-clock milliseconds; nil while online, or when the user was never seen (or forgotten).
    var lastSeen: Int64?

    /// The reserved pseudo-channels start with `!`, outside the channel-id alphabet: no client
    /// can join one, and no event is ever fanned out on one.
    static let channelPrefix = "!users"

    /// Redis spreads users over this many pseudo-channels (hash-tagged keys), so a Redis Cluster
    /// spreads them over slots and each loop's TTL refresh is cut into as many script calls.
    static let redisBuckets = 16

    /// How long the time of a user's last connection is remembered, and for how many users at
    /// most (the oldest are forgotten first; in Redis, per bucket: `maxRemembered / redisBuckets`).
    /// A forgotten user answers `last_seen: null`, like one never seen.
    static let retentionMillis: Int64 = 30 * 24 * 3_600_000
    static let maxRemembered = 262_144

    /// The most users one `GET /api/v1/presence?user=` may ask about.
    static let maxQueryUsers = 100
    /// The longest user id it accepts (bytes).
    static let maxUserIDBytes = 256

    /// Whether `channel` is one of the reserved pseudo-channels.
    static func isReserved(_ channel: String) -> Bool {
        channel.utf8.first == UInt8(ascii: "!")
    }

    /// The Redis pseudo-channel holding `user` (FNV-1a of the id: the same on every instance).
    static func redisBucket(of user: String) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in user.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return channelPrefix + ":" + String(Int(hash % UInt32(redisBuckets)))
    }

    /// A user id a query may name: 1–256 bytes, no control characters (ids travel in a query
    /// string and inside Redis members, whose separator is a control character).
    static func isValidUserID(_ id: String) -> Bool {
        let bytes = id.utf8
        return !bytes.isEmpty && bytes.count <= maxUserIDBytes && bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }
}
