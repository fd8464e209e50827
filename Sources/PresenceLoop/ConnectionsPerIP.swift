import Glibc
import Synchronization

/// Open connections per client address across every loop of a group (`MAX_CONNECTIONS_PER_IP`);
/// an IPv6 client counts by its /64 (`PeerAddress.clientKey`).
///
/// A connection lives on one loop, but one address's connections are spread over all of them by
/// SO_REUSEPORT, so the count is shared: 64 shards, each a dictionary behind its own `Lock`,
/// touched only when a connection is accepted and when its descriptor is closed — never per
/// message. Loops accepting from different addresses rarely meet on the same shard.
package final class ConnectionsPerIP: Sendable {
    /// One shard of the table (a class: a `Mutex` cannot live in an array by value).
    private final class Shard: Sendable {
        let counts = Lock<[PeerAddress: Int32]>([:])
    }

    /// The most open connections one address may hold.
    package let limit: Int
    private let shards: [Shard]

    package init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
        shards = (0..<64).map { _ in Shard() }
    }

    /// The table for `limit`, or nil when there is no cap (0).
    package static func make(limit: Int) -> ConnectionsPerIP? { limit > 0 ? ConnectionsPerIP(limit: limit) : nil }

    @inline(__always)
    private func shard(_ address: PeerAddress) -> Shard {
        shards[Int(truncatingIfNeeded: ((address.high ^ address.low) &* 0x9E37_79B9_7F4A_7C15) >> 58)]
    }

    /// Counts one more connection from `address`; false (nothing counted) when it already holds `limit`.
    package func acquire(_ peer: PeerAddress) -> Bool {
        let address = peer.clientKey
        let limit = Int32(clamping: self.limit)
        return shard(address).counts.withLock { counts in
            let current = counts[address, default: 0]
            guard current < limit else { return false }
            counts[address] = current + 1
            return true
        }
    }

    /// A connection counted by `acquire` was closed.
    package func release(_ peer: PeerAddress) {
        let address = peer.clientKey
        return shard(address).counts.withLock { counts in
            guard let current = counts[address] else { return }
            counts[address] = current > 1 ? current - 1 : nil
        }
    }

    /// Open connections from `address` (for tests and diagnostics).
    package func count(_ peer: PeerAddress) -> Int {
        let address = peer.clientKey
        return Int(shard(address).counts.withLock { $0[address] ?? 0 })
    }
}

/// A client's IP address as 16 bytes, the key of the per-IP count: IPv6 as is, IPv4 as its
