import PresenceLoop

/// Open WebSocket sessions per user (token `sub`) on this instance, across every loop
/// (`MAX_CONNECTIONS_PER_USER`, docs/protocol.md, "Connection limits"): one user's tabs and devices
/// may land on any loop, so the count is shared — 16 shards, each a dictionary behind its own lock,
/// touched at the upgrade and at the close, never per message.
final class ConnectionsPerUser: Sendable {
    private final class Shard: Sendable {
        let counts = Lock<[String: Int32]>([:])
    }

    /// The most sessions one user may hold.
    let limit: Int
    private let shards: [Shard]

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
        shards = (0..<16).map { _ in Shard() }
    }

    /// The table for `limit`, or nil when there is no cap (0).
    static func make(limit: Int) -> ConnectionsPerUser? { limit > 0 ? ConnectionsPerUser(limit: limit) : nil }

    private func shard(_ user: String) -> Shard {
        var hasher = Hasher()
        hasher.combine(user)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }

    /// Counts one more session of `user`; false (nothing counted) when it already holds `limit`.
    func acquire(_ user: String) -> Bool {
        let limit = Int32(clamping: self.limit)
        return shard(user).counts.withLock { counts in
            let current = counts[user, default: 0]
            guard current < limit else { return false }
            counts[user] = current + 1
            return true
        }
    }

    /// A session counted by `acquire` ended (or its upgrade did not complete).
    func release(_ user: String) {
        shard(user).counts.withLock { counts in
            guard let current = counts[user] else { return }
            counts[user] = current > 1 ? current - 1 : nil
        }
    }

    /// Open sessions of `user`.
    func count(_ user: String) -> Int { Int(shard(user).counts.withLock { $0[user] ?? 0 }) }
}
