import CSystem

/// A Lua script and its SHA-1 (lowercase hex), for `EVALSHA` with an `EVAL` fallback
/// (``RedisConnection/evalScript(_:keys:args:_:)``).
public struct RedisScript: Hashable, Sendable {
    /// The Lua source.
    public let source: String
    /// SHA-1 of the source as Redis computes it for `SCRIPT LOAD`, lowercase hex.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        var digest = [UInt8](repeating: 0, count: 20)
        var body = Array(source.utf8)
        body.withUnsafeMutableBufferPointer { input in
            _ = CSystem.SHA1(input.baseAddress, input.count, &digest)
        }
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(40)
        for b in digest {
            text.append(hex[Int(b >> 4)])
            text.append(hex[Int(b & 0x0f)])
        }
        sha1 = String(decoding: text, as: UTF8.self)
    }
}
