import Glibc

/// UTC wall-clock timestamps with milliseconds, ISO 8601 (`2026-11-28T10:24:41.123Z`): written
/// for logs, chat messages, `last_seen` and dead letters, and read back (a ban's end from the auth
/// service, the oldest queued chat message's `createdAt`) as Unix milliseconds, without Foundation.
package enum Timestamp {
    static func iso8601Now() -> String {
        let millis = UnixTime.nowMillis()
        return iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000))
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for wall-clock milliseconds.
    package static func iso8601(millis: Int64) -> String {
        iso8601(seconds: Int(millis / 1000), millis: Int(millis % 1000))
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), written digit by digit: this runs once per chat message.
    package static func iso8601(seconds: Int, millis: Int) -> String {
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

    /// Reads an ISO 8601 / RFC 3339 timestamp as Unix milliseconds: `YYYY-MM-DD`, optionally
    /// followed by `T` (or a space) `HH:MM[:SS[.fraction]]` and `Z` or `±HH:MM` / `±HHMM` (no
    /// zone: UTC, as a date-only value is). Digits of the fraction past milliseconds are dropped.
    /// Nil for anything else, an impossible date (`2023-02-29`) included.
    package static func parseISO8601(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= b.count else { return nil }
            var value = 0
            for k in i..<(i + width) {
                let d = Int(b[k]) - 48
                guard d >= 0 && d <= 9 else { return nil }
                value = value * 10 + d
            }
            i += width
            return value
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year)
        else { return nil }
        var seconds = 0, millis = 0, offset = 0
        if i < b.count {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
            i += 1
            guard let hour = number(2), expect(":"), let minute = number(2), hour < 24, minute < 60 else { return nil }
            var second = 0
            if expect(":") {
                guard let s = number(2), s <= 60 else { return nil }
                second = s
                if expect(".") || expect(",") {
                    var digits = 0
                    while i < b.count, b[i] >= 48, b[i] <= 57 {
                        if digits < 3 { millis = millis * 10 + Int(b[i] - 48) }
                        digits += 1
                        i += 1
                    }
                    guard digits > 0 else { return nil }
                    for _ in digits..<max(digits, 3) { millis *= 10 }
                }
            }
            seconds = hour * 3600 + minute * 60 + second
            if expect("Z") || expect("z") {
            } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let oh = number(2), oh < 24 else { return nil }
                _ = expect(":")
                guard let om = number(2), om < 60 else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            }
            guard i == b.count else { return nil }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        return (Int64(days) * 86_400 + Int64(seconds - offset)) * 1000 + Int64(millis)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm); negative
    /// before it. `month` 1–12.
    package static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
