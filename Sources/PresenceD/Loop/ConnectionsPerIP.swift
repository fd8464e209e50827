import Glibc
import Synchronization

/// Open connections per client address across every loop of a group (`MAX_CONNECTIONS_PER_IP`);
/// an IPv6 client counts by its /64 (`PeerAddress.clientKey`).
///
/// A connection lives on one loop, but one address's connections are spread over all of them by
/// SO_REUSEPORT, so the count is shared: 64 shards, each a dictionary behind its own `Lock`,
/// touched only when a connection is accepted and when its descriptor is closed — never per
/// message. Loops accepting from different addresses rarely meet on the same shard.
final class ConnectionsPerIP: Sendable {
    /// One shard of the table (a class: a `Mutex` cannot live in an array by value).
    private final class Shard: Sendable {
        let counts = Lock<[PeerAddress: Int32]>([:])
    }

    /// The most open connections one address may hold.
    let limit: Int
    private let shards: [Shard]

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
        shards = (0..<64).map { _ in Shard() }
    }

    /// The table for `limit`, or nil when there is no cap (0).
    static func make(limit: Int) -> ConnectionsPerIP? { limit > 0 ? ConnectionsPerIP(limit: limit) : nil }

    @inline(__always)
    private func shard(_ address: PeerAddress) -> Shard {
        shards[Int(truncatingIfNeeded: ((address.high ^ address.low) &* 0x9E37_79B9_7F4A_7C15) >> 58)]
    }

    /// Counts one more connection from `address`; false (nothing counted) when it already holds `limit`.
    func acquire(_ peer: PeerAddress) -> Bool {
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
    func release(_ peer: PeerAddress) {
        let address = peer.clientKey
        return shard(address).counts.withLock { counts in
            guard let current = counts[address] else { return }
            counts[address] = current > 1 ? current - 1 : nil
        }
    }

    /// Open connections from `address` (for tests and diagnostics).
    func count(_ peer: PeerAddress) -> Int {
        let address = peer.clientKey
        return Int(shard(address).counts.withLock { $0[address] ?? 0 })
    }
}

/// A client's IP address as 16 bytes, the key of the per-IP count: IPv6 as is, IPv4 as its
/// IPv4-mapped IPv6 form (so a dual-stack listener counts `::ffff:a.b.c.d` and `a.b.c.d` once).
struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    var high: UInt64
    var low: UInt64

    /// The IPv4 address `a.b.c.d` (in host order, `a` highest).
    init(ipv4 host: UInt32) {
        high = 0
        low = 0x0000_FFFF_0000_0000 | UInt64(host)
    }

    /// The IPv6 address from its 16 network-order bytes.
    init(ipv6 bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        var b = bytes
        let (h, l) = withUnsafeBytes(of: &b) { raw in
            (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        high = UInt64(bigEndian: h)
        low = UInt64(bigEndian: l)
    }

    /// The peer of a connected socket; nil when it is not an IP socket or has no peer any more.
    static func peer(of fd: Int32) -> PeerAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return withUnsafePointer(to: &storage) { pointer -> PeerAddress? in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    PeerAddress(ipv4: UInt32(bigEndian: $0.pointee.sin_addr.s_addr))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    PeerAddress(ipv6: $0.pointee.sin6_addr.__in6_u.__u6_addr8)
                }
            default:
                return nil
            }
        }
    }

    var description: String {
        if high == 0 && low >> 32 == 0xFFFF {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\((v >> 16) & 0xFF).\((v >> 8) & 0xFF).\(v & 0xFF)"
        }
        let groups = (0..<8).map { i -> String in
            let word = i < 4 ? high >> (48 - 16 * UInt64(i)) : low >> (48 - 16 * UInt64(i - 4))
            return String(UInt16(truncatingIfNeeded: word), radix: 16)
        }
        return groups.joined(separator: ":")
    }
}
