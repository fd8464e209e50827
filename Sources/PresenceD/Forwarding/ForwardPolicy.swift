import RedisShim

/// What chat-service's answer to one forward means (CONTRACT §7): 2xx or 409 = done; 408, 429,
/// 5xx, timeouts and connection errors = try again later (after `Retry-After` when given);
/// any other status = a dead letter for an operator.
enum ForwardOutcome: Equatable {
    case delivered
    case retry(afterMillis: Int64?)
    case deadLetter(reason: String)

    /// The outcome of an HTTP answer. `retryAfter` is the header's value (seconds or an HTTP date).
    static func of(status: Int, retryAfter: String?, nowUnixSeconds: Int64) -> ForwardOutcome {
        switch status {
        case 200..<300, 409:
            return .delivered
        case 408, 429, 500..<600:
            return .retry(afterMillis: retryAfter.flatMap { retryAfterMillis($0, nowUnixSeconds: nowUnixSeconds) })
        default:
            return .deadLetter(reason: "chat-service answered \(status)")
        }
    }

    /// `Retry-After`: delay-seconds or an IMF-fixdate; nil when unreadable. Capped at one hour.
    static func retryAfterMillis(_ value: String, nowUnixSeconds: Int64) -> Int64? {
        let trimmed = String(value.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        if let seconds = Int64(trimmed), seconds >= 0 { return min(seconds, 3600) * 1000 }
        guard let date = HTTPDate.parse(trimmed) else { return nil }
        return max(0, min(date - nowUnixSeconds, 3600)) * 1000
    }
}

/// The retry schedule of forwards: exponential backoff with full jitter, base 250 ms, cap 30 s.
enum ForwardBackoff {
    static let policy = RedisBackoff(baseMillis: 250, capMillis: 30_000)

    /// The wait before attempt `attempt + 1` (attempt 0 = after the first failure).
    static func delay(attempt: Int, retryAfter: Int64?) -> Int64 {
        var random = SystemRandomNumberGenerator()
        let jittered = policy.delay(attempt: attempt, using: &random)
        return max(jittered, retryAfter ?? 0)
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) → Unix seconds.
enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int64(parts[1]),
              let month = months.firstIndex(of: String(parts[2])), let year = Int64(parts[3]) else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int64($0) }
        guard clock.count == 3, (1...31).contains(day), clock[0] < 24, clock[1] < 60, clock[2] < 61 else { return nil }
        return daysFromCivil(year: year, month: Int64(month) + 1, day: day) * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
