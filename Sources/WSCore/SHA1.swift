import CSystem

/// SHA-1 digest through libcrypto; used only for `Sec-WebSocket-Accept`.
public enum SHA1 {
    /// The 20-byte SHA-1 digest of `bytes`.
    public static func digest<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out = [UInt8](repeating: 0, count: 20)
        let input = Array(bytes)
        input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                _ = CSystem.SHA1(inp.baseAddress, inp.count, o.baseAddress)
            }
        }
        return out
    }
}
