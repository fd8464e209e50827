import PresenceLoop
import Synchronization

/// CHANNEL_AUTH_URL's answers per (user, channel), shared by every loop, and the checks in
/// flight: while one (user, channel) is being asked, further joins of it — from any loop — wait
/// for that one answer instead of asking again (a reconnect storm makes one call per pair).
///
/// An admission is reused for `allowedMillis` (CHANNEL_AUTH_CACHE), a refusal for at most 5 s;
/// `unavailable` is never kept. The table holds at most `maxEntries` answers: past that, expired
/// ones are dropped, then the oldest half of what is left.
final class ChannelAccessCache: Sendable {
    /// One (user, channel) pair.
    struct Key: Hashable, Sendable {
        let user: String
        let channel: String
    }

    /// A join (or presence read) waiting for an answer: it runs on its own loop.
    struct Waiter: @unchecked Sendable {
        let loop: Int
        let mailbox: Mailbox
        let done: (AccessDecision) -> Void
    }

    private enum Entry: Sendable {
        case answered(allowed: Bool, until: Int64)
        case asking([Waiter])
    }

    /// What `lookup` found.
    enum Lookup {
        /// A cached answer.
        case cached(AccessDecision)
        /// Someone is asking; the waiter was added and runs when the answer comes.
        case waiting
        /// Nobody is asking: the caller asks now and reports with `answer` (its waiter is registered).
        case ask
    }

    static let refusalMillis: Int64 = 5_000

    let allowedMillis: Int64
    let refusedMillis: Int64
    let maxEntries: Int
    private let entries = Lock<[Key: Entry]>([:])

    init(allowedMillis: Int64, maxEntries: Int = 100_000) {
        self.allowedMillis = allowedMillis
        refusedMillis = min(allowedMillis, Self.refusalMillis)
        self.maxEntries = maxEntries
    }

    /// The cached answer for `key` at `now` (monotonic ms), or `waiter` joins the check in flight,
    /// or the caller must ask (and `waiter` waits for its own answer).
    func lookup(_ key: Key, now: Int64, waiter: Waiter) -> Lookup {
        entries.withLock { table in
            switch table[key] {
            case .answered(let allowed, let until)? where until > now:
                return .cached(allowed ? .allowed : .refused)
            case .asking(var waiters)?:
                waiters.append(waiter)
                table[key] = .asking(waiters)
                return .waiting
            default:
                if table.count >= maxEntries { Self.trim(&table, now: now, to: maxEntries / 2) }
                table[key] = .asking([waiter])
                return .ask
            }
        }
    }

    /// Only a cached answer (no waiting): a join that can be decided without a callback.
    func cached(_ key: Key, now: Int64) -> AccessDecision? {
        entries.withLock { table in
            guard case .answered(let allowed, let until)? = table[key], until > now else { return nil }
            return allowed ? .allowed : .refused
        }
    }

    /// The asker's answer for `key`: kept when it is one (`unavailable` is not), and every waiter
    /// to run with it.
    func answer(_ key: Key, _ decision: AccessDecision, now: Int64) -> [Waiter] {
        entries.withLock { table in
            guard case .asking(let waiters)? = table[key] else { return [] }
            switch decision {
            case .allowed where allowedMillis > 0: table[key] = .answered(allowed: true, until: now + allowedMillis)
            case .refused where refusedMillis > 0: table[key] = .answered(allowed: false, until: now + refusedMillis)
            default: table[key] = nil
            }
            return waiters
        }
    }

    /// Answers kept now (checks in flight included), for tests and the instance view.
    var count: Int { entries.withLock { $0.count } }

    /// Drops expired answers, then answers at random until at most `target` entries are left
    /// (checks in flight stay: their waiters need them).
    private static func trim(_ table: inout [Key: Entry], now: Int64, to target: Int) {
        table = table.filter { _, entry in
            if case .answered(_, let until) = entry { return until > now }
            return true
        }
        guard table.count > target else { return }
        for (key, entry) in table where table.count > target {
            if case .answered = entry { table[key] = nil }
        }
    }
}
