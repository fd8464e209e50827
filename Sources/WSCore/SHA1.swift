/// SHA-1 (FIPS 180-4); used only for `Sec-WebSocket-Accept`.
///
/// Computed here rather than through libcrypto: OpenSSL 3's one-shot `SHA1()` goes through
/// `EVP_Q_digest`, which fetches the algorithm from the provider on every call — 8,200
/// instructions per upgrade for a 60-byte input (callgrind, issue 19); these two blocks cost
/// about a fifth of that.
public enum SHA1 {
    /// The 20-byte SHA-1 digest of `bytes`.
    public static func digest<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        if let digest = bytes.withContiguousStorageIfAvailable({ digest(UnsafeRawBufferPointer($0)) }) {
            return digest
        }
        return Array(bytes).withUnsafeBytes { digest($0) }
    }

    /// The 20-byte SHA-1 digest of the bytes in `buffer`.
    static func digest(_ buffer: UnsafeRawBufferPointer) -> [UInt8] {
        var state = State()
        let whole = buffer.count / 64 * 64
        var offset = 0
        while offset < whole {
            state.compress(UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + 64)]))
            offset += 64
        }
        // The last block(s): the rest, 0x80, zeros, and the length in bits (big-endian).
        var tail = (
            UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
            UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0)
        )
        withUnsafeMutableBytes(of: &tail) { block in
            let rest = buffer.count - whole
            if rest > 0 { block.baseAddress!.copyMemory(from: buffer.baseAddress! + whole, byteCount: rest) }
            block[rest] = 0x80
            let blocks = rest + 9 > 64 ? 2 : 1
            let bits = UInt64(buffer.count) &* 8
            for i in 0..<8 { block[blocks * 64 - 1 - i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))) }
            for b in 0..<blocks { state.compress(UnsafeRawBufferPointer(rebasing: block[(b * 64)..<(b * 64 + 64)])) }
        }
        return [UInt8](unsafeUninitializedCapacity: 20) { out, initialized in
            let raw = UnsafeMutableRawPointer(out.baseAddress!)
            raw.storeBytes(of: state.h0.bigEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: state.h1.bigEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: state.h2.bigEndian, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: state.h3.bigEndian, toByteOffset: 12, as: UInt32.self)
            raw.storeBytes(of: state.h4.bigEndian, toByteOffset: 16, as: UInt32.self)
            initialized = 20
        }
    }

    /// The five chaining words.
    private struct State {
        var h0: UInt32 = 0x6745_2301, h1: UInt32 = 0xEFCD_AB89, h2: UInt32 = 0x98BA_DCFE
        var h3: UInt32 = 0x1032_5476, h4: UInt32 = 0xC3D2_E1F0

        /// One 64-byte block: the 80-word schedule on the stack, then four loops of 20 rounds
        /// (no branch and no closure per round).
        mutating func compress(_ block: UnsafeRawBufferPointer) {
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { schedule in
                let w = schedule.baseAddress!
                for i in 0..<16 {
                    w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                }
                for t in 16..<80 {
                    let x = w[t &- 3] ^ w[t &- 8] ^ w[t &- 14] ^ w[t &- 16]
                    w[t] = x << 1 | x >> 31
                }
                var a = h0, b = h1, c = h2, d = h3, e = h4
                var t = 0
                while t < 20 {
                    let temp = (a << 5 | a >> 27) &+ ((b & c) | (~b & d)) &+ e &+ 0x5A82_7999 &+ w[t]
                    e = d
                    d = c
                    c = b << 30 | b >> 2
                    b = a
                    a = temp
                    t &+= 1
                }
                while t < 40 {
                    let temp = (a << 5 | a >> 27) &+ (b ^ c ^ d) &+ e &+ 0x6ED9_EBA1 &+ w[t]
                    e = d
                    d = c
                    c = b << 30 | b >> 2
                    b = a
                    a = temp
                    t &+= 1
                }
                while t < 60 {
                    let temp = (a << 5 | a >> 27) &+ ((b & c) | (b & d) | (c & d)) &+ e &+ 0x8F1B_BCDC &+ w[t]
                    e = d
                    d = c
                    c = b << 30 | b >> 2
                    b = a
                    a = temp
                    t &+= 1
                }
                while t < 80 {
                    let temp = (a << 5 | a >> 27) &+ (b ^ c ^ d) &+ e &+ 0xCA62_C1D6 &+ w[t]
                    e = d
                    d = c
                    c = b << 30 | b >> 2
                    b = a
                    a = temp
                    t &+= 1
                }
                h0 &+= a
                h1 &+= b
                h2 &+= c
                h3 &+= d
                h4 &+= e
            }
        }
    }
}
