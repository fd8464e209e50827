/// RFC 6455 payload masking (§5.3): byte `i` of the payload is XORed with key byte `(i + offset) % 4`.
/// Masking and unmasking are the same operation.
///
/// A key is held as a number whose little-endian byte `j` is the `j`-th key byte on the wire, so the
/// arithmetic here is independent of the machine's byte order.
enum Masking {
    /// The key number for four wire-order key bytes at `pointer`.
    @inline(__always)
    static func key(wireBytesAt pointer: UnsafeRawPointer) -> UInt32 {
        UInt32(littleEndian: pointer.loadUnaligned(as: UInt32.self))
    }

    /// The key number for a key given in network byte order (first wire byte most significant).
    @inline(__always)
    static func key(networkOrder: UInt32) -> UInt32 {
        UInt32(littleEndian: networkOrder.bigEndian)
    }

    /// XORs `count` bytes from `source` into `destination` (which may be the same memory) with the key,
    /// starting at key position `offset` (0...3). Returns the key position after the last byte.
    /// Works 32, then 8 bytes at a time with a 64-bit mask.
    @discardableResult
    static func apply(key: UInt32, offset: Int, from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int) -> Int {
        let shift = UInt32(truncatingIfNeeded: (offset & 3) &* 8)
        // Rotate so that little-endian byte 0 of `rotated` is key byte `offset`.
        let rotated = shift == 0 ? key : (key >> shift) | (key << (32 &- shift))
        let mask = UInt64(rotated) | (UInt64(rotated) << 32)
        var i = 0
        while i &+ 32 <= count {
            let a = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ mask
            let b = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self)) ^ mask
            let c = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i &+ 16, as: UInt64.self)) ^ mask
            let d = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i &+ 24, as: UInt64.self)) ^ mask
            destination.storeBytes(of: a.littleEndian, toByteOffset: i, as: UInt64.self)
            destination.storeBytes(of: b.littleEndian, toByteOffset: i &+ 8, as: UInt64.self)
            destination.storeBytes(of: c.littleEndian, toByteOffset: i &+ 16, as: UInt64.self)
            destination.storeBytes(of: d.littleEndian, toByteOffset: i &+ 24, as: UInt64.self)
            i &+= 32
        }
        while i &+ 8 <= count {
            let word = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ mask
            destination.storeBytes(of: word.littleEndian, toByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        // Fewer than 8 bytes left; `i` is a multiple of 8, so the mask still starts at `rotated` byte 0.
        var tail = mask
        while i < count {
            let byte = source.load(fromByteOffset: i, as: UInt8.self) ^ UInt8(truncatingIfNeeded: tail)
            destination.storeBytes(of: byte, toByteOffset: i, as: UInt8.self)
            tail >>= 8
            i &+= 1
        }
        return (offset &+ count) & 3
    }
}
