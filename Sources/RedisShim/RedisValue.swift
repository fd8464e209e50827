/// A RESP2 reply. hiredis folds the null bulk string (`$-1`) and the null array (`*-1`) into
/// one nil type, so both are ``null``. Error replies inside arrays (e.g. in `EXEC` results) stay
/// ``error``; a top-level error reply reaches a command's completion as ``RedisError/server(_:)``.
public enum RedisValue: Hashable, Sendable {
    /// A status reply (`+OK`).
    case simple(String)
    /// An error reply (`-ERR …`), as a value (nested in an array).
    case error(String)
    /// An integer reply (`:42`).
    case integer(Int64)
    /// A bulk string (`$3\r\nfoo`), binary-safe.
    case bulk([UInt8])
    /// The null bulk string or the null array.
    case null
    /// A multi-bulk reply.
    case array([RedisValue])

    /// The text of a status or bulk reply (bulk bytes decoded as UTF-8, invalid sequences
    /// repaired); nil for any other type.
    public var string: String? {
        switch self {
        case .simple(let s): return s
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The bytes of a bulk or status reply; nil for any other type.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): return bytes
        case .simple(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// An integer reply, or a bulk/status reply holding a decimal integer (what `GET` of a counter
    /// returns); nil otherwise.
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .simple(let s): return Int64(s)
        case .bulk(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    /// The elements of an array reply; nil for any other type (including ``null``).
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// True for the null bulk string and the null array.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
