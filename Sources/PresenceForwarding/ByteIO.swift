/// Little-endian writers appending to a byte array (queue records); ``ByteCursor`` reads them back.
enum ByteIO {
    @inline(__always)
    static func putU32(_ out: inout [UInt8], _ v: UInt32) {
        out.append(UInt8(truncatingIfNeeded: v))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 24))
    }

    @inline(__always)
    static func putU64(_ out: inout [UInt8], _ v: UInt64) {
        putU32(&out, UInt32(truncatingIfNeeded: v))
        putU32(&out, UInt32(truncatingIfNeeded: v >> 32))
    }

    /// Length (4 bytes) and UTF-8 bytes, copied in one piece.
    static func putString(_ out: inout [UInt8], _ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            putU32(&out, UInt32(utf8.count))
            out.append(contentsOf: utf8)
        }
    }

    /// Overwrites 4 bytes at `offset`.
    static func setU32(_ out: inout [UInt8], at offset: Int, _ v: UInt32) {
        out[offset] = UInt8(truncatingIfNeeded: v)
        out[offset + 1] = UInt8(truncatingIfNeeded: v >> 8)
        out[offset + 2] = UInt8(truncatingIfNeeded: v >> 16)
        out[offset + 3] = UInt8(truncatingIfNeeded: v >> 24)
    }
}
