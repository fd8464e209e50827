import PresenceLoop
import RedisShim

/// What chat-service's answer to one forward means
/// (docs/operations.md, "Forward queue and dead letters"): 2xx or 409 = done; 408, 429, 5xx,
/// timeouts and connection errors = try again later (after `Retry-After` when given); any other
/// status = a dead letter for an operator. Of the retried ones only a 5xx counts toward
/// `FORWARD_MAX_ATTEMPTS` (``ForwardRetryPolicy``): it says chat-service read the message and
/// failed on it, which a poison message does every time. 408 and 429 are chat-service asking to be
/// called later (its own load, not this message), and a timeout or a connection error says nothing
/// about the message at all (chat-service is down or unreachable): those never count.
enum ForwardOutcome: Equatable {
    case delivered
    /// Try again after a backoff (at least `afterMillis`, from `Retry-After`). `serverError` is the
    /// status of a 5xx answer, which counts toward the limit; nil for 408, 429 and failures
    /// without an answer.
    case retry(afterMillis: Int64?, serverError: Int? = nil)
    case deadLetter(reason: String)

    /// The outcome of an HTTP answer. `retryAfter` is the header's value (seconds or an HTTP date).
    package static func of(status: Int, retryAfter: String?, nowUnixSeconds: Int64) -> ForwardOutcome {
        switch status {
        case 200..<300, 409:
            return .delivered
        case 408, 429, 500..<600:
            return .retry(
                afterMillis: retryAfter.flatMap { retryAfterMillis($0, nowUnixSeconds: nowUnixSeconds) },
                serverError: status >= 500 ? status : nil)
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

/// How forwards are retried: exponential backoff with full jitter (base 250 ms, cap 30 s, at
/// least `Retry-After`), and the number of 5xx answers after which an entry becomes a dead letter
/// so that its channel moves on (`FORWARD_MAX_ATTEMPTS`,
/// docs/operations.md, "Forward queue and dead letters"). The count is the entry's persisted
/// `attempts` (``ForwardQueue/recordAttempt(_:_:)`` is called for 5xx answers only), so it carries
/// over a restart and, in Redis mode, a change of reader.
package struct ForwardRetryPolicy: Sendable, Equatable {
    static let defaultMaxAttempts = 50
    package static let standardBackoff = RedisBackoff(baseMillis: 250, capMillis: 30_000)

    /// 5xx answers an entry may get; the last of them makes it a dead letter.
    package var maxAttempts: Int
    package var backoff: RedisBackoff

    package init(maxAttempts: Int = ForwardRetryPolicy.defaultMaxAttempts, backoff: RedisBackoff = ForwardRetryPolicy.standardBackoff) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
    }

    /// `outcome` for an entry that had `serverErrorsBefore` 5xx answers before this one: the 5xx
    /// answer that reaches ``maxAttempts`` turns a retry into a dead letter, whose reason names
    /// the status and the count.
    func settle(_ outcome: ForwardOutcome, serverErrorsBefore: Int) -> ForwardOutcome {
        guard case .retry(_, let status?) = outcome, serverErrorsBefore + 1 >= maxAttempts else { return outcome }
        return .deadLetter(reason: Self.exhaustedReason(status: status, attempts: serverErrorsBefore + 1))
    }

    /// The dead letter's reason after too many 5xx answers (`presenced dead-letters list` shows it).
    static func exhaustedReason(status: Int, attempts: Int) -> String {
        "chat-service answered \(status); \(attempts) attempts answered 5xx (FORWARD_MAX_ATTEMPTS)"
    }

    /// The wait before attempt `attempt + 1` (attempt 0 = after the first failure).
    package func delay(attempt: Int, retryAfter: Int64?) -> Int64 {
        var random = SystemRandomNumberGenerator()
        let jittered = backoff.delay(attempt: attempt, using: &random)
        return max(jittered, retryAfter ?? 0)
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) → Unix seconds. The year is
/// four digits, as the RFC has it: a longer one (from a broken or hostile chat-service) would
/// overflow the day count.
enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    package static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int64(parts[1]),
            let month = months.firstIndex(of: String(parts[2])), parts[3].utf8.count == 4,
            let year = Int64(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int64($0) }
        guard clock.count == 3, (1...31).contains(day), clock[0] < 24, clock[1] < 60, clock[2] < 61 else { return nil }
        let days = Int64(Timestamp.daysFromCivil(year: Int(year), month: month + 1, day: Int(day)))
        return days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
    }
}
