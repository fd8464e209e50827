/// Request ids (`X-Request-ID`, the `request_id` of log lines): the caller's when it is sane,
/// otherwise a new random one — 128 bits from the system's CSPRNG as 32 lowercase hex digits,
/// also presenced's source of random hex wherever it needs an unguessable name (a development
/// token secret, the console's instance id, history epoch prefixes, the request id of a forward
/// or an access check that came without one). A loop's own requests get theirs from its ``RequestIDSource`` (the same
/// rule and format, without a system call per id).
package enum RequestID {
    /// `given` when it is 1–128 bytes of printable ASCII other than `"` and `\` (safe in a header
    /// and a log line as it is); otherwise ``make()``.
    package static func accept(_ given: String?) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 128,
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
        {
            return given
        }
        return make()
    }

    /// 128 random bits as 32 hex digits.
    package static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        let a = rng.next() as UInt64, b = rng.next() as UInt64
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(a) + hex(b)
    }
}
