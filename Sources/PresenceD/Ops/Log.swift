import Glibc

/// JSON-lines logging on stdout: one object per line with ts, level, msg and fields.
/// Each line goes out in one write(2), so lines from loop threads never interleave.
/// Callers never pass tokens, cookies or secrets.
enum Log {
    enum Level: Int, Comparable, Sendable {
        case debug, info, warn, error
        static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var name: String { ["debug", "info", "warn", "error"][rawValue] }
        init?(name: String) {
            switch name.lowercased() {
            case "debug": self = .debug
            case "info": self = .info
            case "warn", "warning": self = .warn
            case "error": self = .error
            default: return nil
            }
        }
    }

    /// Set once at start, before any loop thread runs.
    nonisolated(unsafe) static var minimum: Level = .info

    static func debug(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.debug, msg, fields) }
    static func info(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.info, msg, fields) }
    static func warn(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.warn, msg, fields) }
    static func error(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.error, msg, fields) }

    static func write(_ level: Level, _ msg: String, _ fields: KeyValuePairs<String, String>) {
        guard level >= minimum else { return }
        var line = "{\"ts\":\"\(Timestamp.iso8601Now())\",\"level\":\"\(level.name)\",\"msg\":"
        line += JSONWriter.quoted(msg)
        for (key, value) in fields {
            line += ","
            line += JSONWriter.quoted(key)
            line += ":"
            line += JSONWriter.quoted(value)
        }
        line += "}\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { _ = Glibc.write(1, $0.baseAddress, $0.count) }
    }
}

/// UTC wall-clock timestamps with milliseconds, ISO 8601 (`2026-11-28T10:24:41.123Z`).
enum Timestamp {
    static func iso8601Now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return iso8601(seconds: Int(ts.tv_sec), millis: Int(ts.tv_nsec) / 1_000_000)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), written digit by digit: this runs once per chat message.
    static func iso8601(seconds: Int, millis: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(unsafeUninitializedCapacity: 24) { out in
            var o = 0
            func put(_ value: Int, _ digits: Int, then separator: UInt8) {
                var v = value
                for i in stride(from: digits - 1, through: 0, by: -1) {
                    out[o + i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
                out[o + digits] = separator
                o += digits + 1
            }
            put(Int(parts.tm_year) + 1900, 4, then: UInt8(ascii: "-"))
            put(Int(parts.tm_mon) + 1, 2, then: UInt8(ascii: "-"))
            put(Int(parts.tm_mday), 2, then: UInt8(ascii: "T"))
            put(Int(parts.tm_hour), 2, then: UInt8(ascii: ":"))
            put(Int(parts.tm_min), 2, then: UInt8(ascii: ":"))
            put(Int(parts.tm_sec), 2, then: UInt8(ascii: "."))
            put(millis, 3, then: UInt8(ascii: "Z"))
            return o
        }
    }
}
