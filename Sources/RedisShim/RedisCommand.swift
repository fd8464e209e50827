/// One Redis command as binary-safe argument strings, kept RESP-encoded as it is built: each
/// argument is written once as `$len\r\nbytes\r\n`, and sending adds only the `*N\r\n` header.
public struct RedisCommand: Hashable, Sendable {
    /// The encoded arguments, concatenated.
    private var body: [UInt8] = []
    /// The number of arguments, the command name included.
    public private(set) var count = 0

    /// A command from text arguments: `RedisCommand("SET", "key", "value")`.
    public init(_ args: String...) {
        self.init(args)
    }

    /// A command from text arguments.
    public init(_ args: [String]) {
        body.reserveCapacity(args.reduce(0) { $0 + Self.encodedLength($1.utf8.count) })
        for arg in args { append(arg) }
    }

    /// A command from binary arguments.
    public init(arguments: [[UInt8]]) {
        body.reserveCapacity(arguments.reduce(0) { $0 + Self.encodedLength($1.count) })
        for arg in arguments { append(bytes: arg) }
    }

    /// Makes room for arguments of `bytes` bytes in all, `arguments` of them.
    public mutating func reserve(arguments: Int, bytes: Int) {
        body.reserveCapacity(body.count + bytes + arguments * 16)
    }

    /// Adds a text argument at the end.
    public mutating func append(_ arg: String) {
        var arg = arg
        arg.withUTF8 { append(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Adds one argument made of `parts` one after the other (a key: prefix, channel, suffix),
    /// without building it as a String first.
    public mutating func append(joining parts: String...) {
        appendArgument(length: parts.reduce(0) { $0 + $1.utf8.count }) { out in
            var at = out
            for part in parts {
                var part = part
                part.withUTF8 { utf8 in
                    if let base = utf8.baseAddress { at.update(from: base, count: utf8.count) }
                    at += utf8.count
                }
            }
        }
    }

    /// Adds a whole number in decimal, optionally after a text `prefix`, without a String.
    public mutating func append(_ value: Int64, after prefix: String = "") {
        let digits = Self.digits(value.magnitude)
        let sign = value < 0 ? 1 : 0
        var prefix = prefix
        prefix.withUTF8 { prefix in
            appendArgument(length: prefix.count + sign + digits) { out in
                if let base = prefix.baseAddress { out.update(from: base, count: prefix.count) }
                if sign == 1 { out[prefix.count] = UInt8(ascii: "-") }
                Self.writeDecimal(value.magnitude, digits: digits, to: out + prefix.count + sign)
            }
        }
    }

    /// Adds `other`'s arguments at the end (arguments that are the same for many commands,
    /// encoded once).
    public mutating func append(contentsOf other: RedisCommand) {
        body += other.body
        count += other.count
    }

    /// Adds a binary argument at the end.
    public mutating func append(bytes arg: [UInt8]) {
        arg.withUnsafeBytes { append(bytes: $0) }
    }

    /// Adds a binary argument at the end.
    public mutating func append(bytes arg: UnsafeRawBufferPointer) {
        appendArgument(length: arg.count) { out in
            if let base = arg.baseAddress { UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: arg.count) }
        }
    }

    /// The uppercased first argument (`"SET"`), for logs; empty for an empty command.
    public var name: String {
        guard let first = firstArgument else { return "" }
        return String(decoding: body[first], as: UTF8.self).uppercased()
    }

    /// Whether the first argument is `upperName` (given in upper case), ignoring ASCII case.
    public func hasName(_ upperName: String) -> Bool {
        guard let first = firstArgument, first.count == upperName.utf8.count else { return false }
        return zip(body[first], upperName.utf8).allSatisfy { byte, upper in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte) == upper
        }
    }

    /// The arguments as byte strings.
    public var arguments: [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(count)
        var at = 0
        while let range = Self.argument(in: body, at: at) {
            result.append(Array(body[range]))
            at = range.upperBound + 2
        }
        return result
    }

    /// The same command with its first `n` arguments replaced by `replacement` (`EVALSHA sha` →
    /// `EVAL source`).
    public func replacingFirst(_ n: Int, with replacement: [String]) -> RedisCommand {
        var at = 0
        for _ in 0..<min(n, count) {
            guard let range = Self.argument(in: body, at: at) else { break }
            at = range.upperBound + 2
        }
        var result = RedisCommand(replacement)
        result.body.append(contentsOf: body[at...])
        result.count += count - min(n, count)
        return result
    }

    /// The RESP encoding (`*N\r\n$len\r\narg\r\n…`) in one exactly sized array.
    public var encoded: [UInt8] {
        let countDigits = Self.digits(UInt64(count))
        return [UInt8](unsafeUninitializedCapacity: 3 + countDigits + body.count) { out, written in
            out[0] = UInt8(ascii: "*")
            Self.writeDecimal(UInt64(count), digits: countDigits, to: out.baseAddress! + 1)
            out[1 + countDigits] = UInt8(ascii: "\r")
            out[2 + countDigits] = UInt8(ascii: "\n")
            body.withUnsafeBufferPointer { body in
                if let source = body.baseAddress {
                    (out.baseAddress! + 3 + countDigits).update(from: source, count: body.count)
                }
            }
            written = 3 + countDigits + body.count
        }
    }

    /// Appends the RESP encoding to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        buffer += encoded
    }

    // MARK: Private

    private var firstArgument: Range<Int>? { Self.argument(in: body, at: 0) }

    /// `$length\r\n`, the `length` bytes `write` writes, `\r\n`: assembled in a temporary buffer
    /// (on the stack when small) and appended at once.
    private mutating func appendArgument(length: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Void) {
        let n = Self.digits(UInt64(length))
        let total = n + 5 + length
        count += 1
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { out in
            let base = out.baseAddress!
            Self.writeHeader(length, digits: n, to: base)
            write(base + n + 3)
            base[total - 2] = UInt8(ascii: "\r")
            base[total - 1] = UInt8(ascii: "\n")
            body.append(contentsOf: UnsafeBufferPointer(start: base, count: total))
        }
    }

    /// `$length\r\n` at `out` (`digits` + 3 bytes).
    private static func writeHeader(_ length: Int, digits: Int, to out: UnsafeMutablePointer<UInt8>) {
        out[0] = UInt8(ascii: "$")
        writeDecimal(UInt64(length), digits: digits, to: out + 1)
        out[digits + 1] = UInt8(ascii: "\r")
        out[digits + 2] = UInt8(ascii: "\n")
    }

    /// The bytes of the argument whose `$` header starts at `at` in `body`.
    private static func argument(in body: [UInt8], at: Int) -> Range<Int>? {
        guard at < body.count, body[at] == UInt8(ascii: "$") else { return nil }
        var length = 0
        var i = at + 1
        while body[i] != UInt8(ascii: "\r") {
            length = length * 10 + Int(body[i] - UInt8(ascii: "0"))
            i += 1
        }
        return (i + 2)..<(i + 2 + length)
    }

    /// Bytes one argument of `length` bytes takes encoded.
    private static func encodedLength(_ length: Int) -> Int { 5 + digits(UInt64(length)) + length }

    /// How many decimal digits `value` has.
    private static func digits(_ value: UInt64) -> Int {
        var n = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            n += 1
        }
        return n
    }

    /// Writes `value`'s `digits` decimal digits at `out`.
    private static func writeDecimal(_ value: UInt64, digits: Int, to out: UnsafeMutablePointer<UInt8>) {
        var rest = value
        for i in stride(from: digits - 1, through: 0, by: -1) {
            out[i] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        }
    }
}
