import Glibc
import PresenceLoop

/// Unique, time-ordered message ids: UUIDv7 (RFC 9562) — 48 bits of Unix milliseconds, a
/// 12-bit counter that keeps ids from one generator increasing within a millisecond, 62 random bits.
package struct MessageIDGenerator {
    private var lastMillis: Int64 = 0
    private var counter: UInt16 = 0
    private var rng = SystemRandomNumberGenerator()

    /// The next id and the wall-clock milliseconds it carries (use them for the timestamp too).
    mutating func next() -> (id: String, millis: Int64) {
        var millis = UnixTime.nowMillis()
        if millis <= lastMillis {
            // Same millisecond (or the clock stepped back): keep order with the counter.
            millis = lastMillis
            counter &+= 1
            if counter > 0x0FFF {
                millis += 1
                counter = 0
            }
        } else {
            counter = UInt16(truncatingIfNeeded: rng.next() as UInt64) & 0x01FF
        }
        lastMillis = millis
        let random = rng.next() as UInt64
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: UInt64(millis) >> (40 - 8 * UInt64(i))) }
        bytes[6] = 0x70 | UInt8(counter >> 8)
        bytes[7] = UInt8(truncatingIfNeeded: counter)
        bytes[8] = 0x80 | UInt8(truncatingIfNeeded: random >> 56) & 0x3F
        for i in 9..<16 { bytes[i] = UInt8(truncatingIfNeeded: random >> (8 * UInt64(15 - i))) }
        return (MessageIDGenerator.format(bytes), millis)
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private static func format(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: 36) { out in
            var o = 0
            for (i, b) in bytes.enumerated() {
                if i == 4 || i == 6 || i == 8 || i == 10 {
                    out[o] = UInt8(ascii: "-")
                    o += 1
                }
                out[o] = hex[Int(b >> 4)]
                out[o + 1] = hex[Int(b & 0x0F)]
                o += 2
            }
            return o
        }
    }
}
