import CSystem

/// SHA-1 digest through libcrypto; used only for `Sec-WebSocket-Accept`.
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
        [UInt8](unsafeUninitializedCapacity: 20) { out, initialized in
            _ = CSystem.SHA1(buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, out.baseAddress)
            initialized = 20
        }
    }
}
