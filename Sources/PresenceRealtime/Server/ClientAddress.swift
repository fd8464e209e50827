import Glibc
import PresenceLoop

/// An IP address prefix (`10.0.0.0/8`, `2001:db8::/32`, or one address): TRUSTED_PROXIES.
/// IPv4 prefixes cover the IPv4-mapped form that `PeerAddress` uses.
struct AddressPrefix: Sendable {
    let address: PeerAddress
    /// Leading bits compared, 0...128 (over the 16-byte form).
    let bits: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = PeerAddress(parsing: String(parts[0])) else { return nil }
        let isV4 = !parts[0].contains(":")
        let width = isV4 ? 32 : 128
        var length = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...width).contains(n), parts[1].allSatisfy(\.isASCII) else { return nil }
            length = n
        }
        self.address = address
        bits = isV4 ? 96 + length : length
    }

    func contains(_ other: PeerAddress) -> Bool {
        func masked(_ a: PeerAddress) -> (UInt64, UInt64) {
            let highBits = min(bits, 64), lowBits = max(0, bits - 64)
            let highMask: UInt64 = highBits == 0 ? 0 : ~0 << (64 - UInt64(highBits))
            let lowMask: UInt64 = lowBits == 0 ? 0 : ~0 << (64 - UInt64(lowBits))
            return (a.high & highMask, a.low & lowMask)
        }
        return masked(address) == masked(other)
    }
}

/// Who sent a request: the TCP peer, or — when the peer is one of TRUSTED_PROXIES — the right-most
/// X-Forwarded-For entry that is not itself a trusted proxy (entries to its left were written by
/// the client and cannot be believed).
enum ClientAddress {
    static func of(peer: PeerAddress?, forwardedFor: String?, trusted: [AddressPrefix]) -> PeerAddress? {
        guard let peer, !trusted.isEmpty, trusted.contains(where: { $0.contains(peer) }), let forwardedFor else { return peer }
        for entry in forwardedFor.split(separator: ",").reversed() {
            guard let address = PeerAddress(parsing: entry.trimmingSpaces()) else { return peer }
            if !trusted.contains(where: { $0.contains(address) }) { return address }
        }
        return peer
    }
}
