import CSystem

/// One Redis command as binary-safe argument strings, encoded as a RESP multi-bulk through
/// hiredis' `redisFormatCommandArgv`.
public struct RedisCommand: Hashable, Sendable {
    /// The arguments, concatenated; `ends[i]` is where argument `i` ends in `storage`.
    private var storage: [UInt8]
    private var ends: [Int]
    /// The uppercased first argument (`"SET"`), for metrics and logs; empty for an empty command.
    public let name: String

    /// A command from text arguments: `RedisCommand("SET", "key", "value")`.
    public init(_ args: String...) {
        self.init(args)
    }

    /// A command from text arguments.
    public init(_ args: [String]) {
        var storage: [UInt8] = []
        var ends: [Int] = []
        ends.reserveCapacity(args.count)
        for arg in args {
            storage.append(contentsOf: arg.utf8)
            ends.append(storage.count)
        }
        self.init(storage: storage, ends: ends)
    }

    /// A command from binary arguments.
    public init(arguments: [[UInt8]]) {
        var storage: [UInt8] = []
        storage.reserveCapacity(arguments.reduce(0) { $0 + $1.count })
        var ends: [Int] = []
        ends.reserveCapacity(arguments.count)
        for arg in arguments {
            storage.append(contentsOf: arg)
            ends.append(storage.count)
        }
        self.init(storage: storage, ends: ends)
    }

    private init(storage: [UInt8], ends: [Int]) {
        self.storage = storage
        self.ends = ends
        if let first = ends.first {
            name = String(decoding: storage[0..<first], as: UTF8.self).uppercased()
        } else {
            name = ""
        }
    }

    /// The number of arguments, the command name included.
    public var count: Int { ends.count }

    /// The arguments as byte strings.
    public var arguments: [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(ends.count)
        var start = 0
        for end in ends {
            result.append(Array(storage[start..<end]))
            start = end
        }
        return result
    }

    /// Appends the RESP encoding (`*N\r\n$len\r\narg\r\n…`) to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        let argc = ends.count
        var lengths = [Int](repeating: 0, count: argc)
        var start = 0
        for (i, end) in ends.enumerated() {
            lengths[i] = end - start
            start = end
        }
        var one: UInt8 = 0
        withUnsafePointer(to: &one) { fallback in
            storage.withUnsafeBufferPointer { bytes in
                let base = UnsafeRawPointer(bytes.baseAddress ?? fallback).assumingMemoryBound(to: CChar.self)
                var argv = [UnsafePointer<CChar>?](repeating: nil, count: argc)
                var offset = 0
                for i in 0..<argc {
                    argv[i] = base + offset
                    offset += lengths[i]
                }
                var target: UnsafeMutablePointer<CChar>?
                let length = argv.withUnsafeMutableBufferPointer { argvBuffer in
                    lengths.withUnsafeBufferPointer { lengthBuffer in
                        redisFormatCommandArgv(&target, Int32(argc), argvBuffer.baseAddress, lengthBuffer.baseAddress)
                    }
                }
                guard length >= 0, let target else { fatalError("redisFormatCommandArgv: out of memory") }
                buffer.append(contentsOf: UnsafeRawBufferPointer(start: target, count: Int(length)))
                redisFreeCommand(target)
            }
        }
    }

    /// The RESP encoding as a new array.
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }
}
