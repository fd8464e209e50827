import Glibc

/// IPv4-mapped IPv6 form (so a dual-stack listener counts `::ffff:a.b.c.d` and `a.b.c.d` once).
package struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    package var high: UInt64
    package var low: UInt64

    /// The IPv4 address `a.b.c.d` (in host order, `a` highest).
    package init(ipv4 host: UInt32) {
        high = 0
        low = 0x0000_FFFF_0000_0000 | UInt64(host)
    }

    /// The IPv6 address from its 16 network-order bytes.
    package init(
        ipv6 bytes: (
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
        )
    ) {
        var b = bytes
        let (h, l) = withUnsafeBytes(of: &b) { raw in
            (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        high = UInt64(bigEndian: h)
        low = UInt64(bigEndian: l)
    }

    /// The peer of a connected socket; nil when it is not an IP socket or has no peer any more.
    package static func peer(of fd: Int32) -> PeerAddress? {
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

    package var description: String {
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

extension PeerAddress {
    /// An IPv4 (`a.b.c.d`) or IPv6 address in text form (IPv6 optionally in brackets).
    package init?(parsing text: String) {
        var host = text
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return nil }
        self.init(ipv6: v6.__in6_u.__u6_addr8)
    }

    /// Whether this is an IPv4 address (in its IPv4-mapped form).
    package var isIPv4: Bool { high == 0 && low >> 32 == 0xFFFF }

    /// The key that limits and pacing count a client by: an IPv4 address as it is, an IPv6
    /// address by its /64 (one subscriber, one host, usually holds a whole /64).
    package var clientKey: PeerAddress {
        isIPv4 ? self : PeerAddress(high: high, low: 0)
    }

    package init(high: UInt64, low: UInt64) {
        self.init(ipv4: 0)
        self.high = high
        self.low = low
    }
}
