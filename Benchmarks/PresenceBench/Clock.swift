import Glibc

/// Time sources. Latencies use CLOCK_MONOTONIC nanoseconds on both ends (same machine);
/// token claims use the wall clock in seconds.
enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds.
    @inline(__always)
    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    /// Unix time in seconds (CLOCK_REALTIME).
    static func unixSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    /// Sleeps until the monotonic instant `deadline` (ns); returns at once if it has passed.
    static func sleep(until deadline: Int64) {
        while true {
            let left = deadline - now()
            if left <= 0 { return }
            var ts = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
            _ = nanosleep(&ts, nil)
        }
    }

    /// Sleeps for `nanoseconds`.
    static func sleep(nanoseconds: Int64) {
        sleep(until: now() + nanoseconds)
    }
}

/// Durations on the command line: `10`, `10s`, `500ms`, `2m`, `1.5s`.
enum DurationText {
    /// Nanoseconds for a duration text, nil if it is not one.
    static func parse(_ text: String) -> Int64? {
        var number = Substring(text)
        var scale = 1_000_000_000.0
        if number.hasSuffix("ms") {
            number = number.dropLast(2)
            scale = 1_000_000
        } else if number.hasSuffix("us") {
            number = number.dropLast(2)
            scale = 1_000
        } else if number.hasSuffix("s") {
            number = number.dropLast(1)
        } else if number.hasSuffix("m") {
            number = number.dropLast(1)
            scale = 60_000_000_000
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        return Int64(value * scale)
    }
}
