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

    /// `EVALSHA sha1 keyCount`: append the keys, then the arguments.
    public func command(keyCount: Int) -> RedisCommand {
        RedisCommand("EVALSHA", sha1, String(keyCount))
    }

    /// `EVALSHA sha1 n keys… args…`.
    public func command(keys: [String], args: [String]) -> RedisCommand {
        var command = command(keyCount: keys.count)
        command.reserve(
            arguments: keys.count + args.count,
            bytes: keys.reduce(0) { $0 + $1.utf8.count } + args.reduce(0) { $0 + $1.utf8.count })
        for key in keys { command.append(key) }
        for arg in args { command.append(arg) }
        return command
    }

    /// `command` (an `EVALSHA` of this script) as `EVAL source …`, for a server without the script.
    public func bySource(_ command: RedisCommand) -> RedisCommand {
        command.replacingFirst(2, with: ["EVAL", source])
    }
}
