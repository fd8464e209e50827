import Glibc

/// The wall clock (CLOCK_REALTIME), as token claims, presence expiries, message ids and log
/// lines use it: comparable between instances, unlike the loops' monotonic `now`.
package enum UnixTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    package static func now() -> Int64 {
        nowMillis() / 1000
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    package static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
