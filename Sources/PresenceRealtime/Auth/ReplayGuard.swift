import PresenceLoop
import Synchronization

/// Single-use token ids (`jti`, docs/protocol.md, "How a token is checked"). Embedded mode uses
/// `MemoryReplayGuard`; with Redis a shared implementation stands behind the same protocol so a
/// token works once across instances.
protocol ReplayGuard: Sendable {
    /// Whether `jti` is seen for the first time; it is remembered until `expiresAt` (plus the
    /// clock leeway), after which the token itself is refused as expired anyway. `done` runs on
    /// the calling loop's thread, at once (in memory) or after a Redis round trip.
    func firstUse(jti: String, expiresAt: Int64, now: Int64, _ done: @escaping (ReplayCheck) -> Void)
    /// Whether `jti` was spent on `/ws` (here, or with Redis on any instance), without spending
    /// it: a token read from an access log opens nothing else
    /// (docs/protocol.md, "Channel presence endpoint"). `done` runs on the calling loop's thread.
    func wasUsed(jti: String, now: Int64, _ done: @escaping (Bool) -> Void)
}

/// What a single-use check found.
enum ReplayCheck: Equatable {
    /// Never seen, here or (with Redis) on any instance.
    case first
    /// Never seen in this process; the shared store could not be asked (Redis unreachable), so
    /// another instance may have seen it.
    case firstInThisProcess
    /// Seen before: refuse the token.
    case replayed
}

/// The in-process `ReplayGuard`: a mutex-guarded set of jti digests, each with the last second it
/// must be remembered. Safe to call from every loop thread. Expired entries are swept in amortized
/// O(1) per insert — when the clock passes the next sweep time (every `sweepInterval` seconds) or
/// the set has doubled since the last sweep — so memory stays proportional to the live tokens.
final class MemoryReplayGuard: ReplayGuard {
    /// A spent jti: 64 bits of a SipHash under this process's random seed and the second until
    /// which it is remembered, in 12 bytes — a heap string was ~110 B an idle connection held
    /// until its token expired, a 24-byte digest → time map 41 B at 19,000 connections, this 21 B
    /// (issue 19). Identity is the digest alone, so a set of these is a map from digest to time.
    /// With 2¹⁵ tokens live, a fresh jti matches a stored digest with probability ~2⁻⁴⁹ (it would
    /// be refused as replayed, and the client fetches another token); nobody outside the process
    /// can aim for it.
    struct Entry: Hashable {
        let high: UInt32
        let low: UInt32
        /// Unix seconds, clamped to `UInt32`'s range (a token past 2106 is kept for good).
        let until: UInt32

        init(_ jti: String, until: Int64 = 0) {
            var hasher = Hasher()
            hasher.combine(jti)
            let digest = UInt64(bitPattern: Int64(hasher.finalize()))
            high = UInt32(truncatingIfNeeded: digest >> 32)
            low = UInt32(truncatingIfNeeded: digest)
            self.until = UInt32(clamping: until)
        }

        static func == (a: Entry, b: Entry) -> Bool { a.high == b.high && a.low == b.low }

        /// The digest is already a uniform hash.
        func hash(into hasher: inout Hasher) { hasher.combine(UInt64(high) << 32 | UInt64(low)) }

        func remembered(at now: Int64) -> Bool { Int64(until) >= now }
    }

    /// Mutable state behind the mutex.
    private struct State {
        var seen = Set<Entry>()
        var nextSweepAt: Int64 = .min
        var sweepAtCount = MemoryReplayGuard.minimumSweepCount
    }

    /// Seconds a jti is kept past its `exp` (the verifier's clock leeway on `exp`).
    let leeway: Int64
    /// Seconds between time-driven sweeps.
    let sweepInterval: Int64
    private static let minimumSweepCount = 1024
    private let state = Lock(State())

    init(leeway: Int64 = 5, sweepInterval: Int64 = 10) {
        self.leeway = leeway
        self.sweepInterval = sweepInterval
    }

    func firstUse(jti: String, expiresAt: Int64, now: Int64, _ done: @escaping (ReplayCheck) -> Void) {
        done(firstUse(jti: jti, expiresAt: expiresAt, now: now) ? .first : .replayed)
    }

    func wasUsed(jti: String, now: Int64, _ done: @escaping (Bool) -> Void) {
        done(wasUsed(jti: jti, now: now))
    }

    /// The synchronous check behind `wasUsed(jti:now:_:)`.
    func wasUsed(jti: String, now: Int64) -> Bool {
        let probe = Entry(jti)
        return state.withLock { state in state.seen.firstIndex(of: probe).map { state.seen[$0].remembered(at: now) } ?? false }
    }

    /// The synchronous check behind `firstUse(_:_:_:_:)`.
    func firstUse(jti: String, expiresAt: Int64, now: Int64) -> Bool {
        let keepUntil = expiresAt.addingReportingOverflow(leeway)
        let entry = Entry(jti, until: keepUntil.overflow ? Int64.max : keepUntil.partialValue)
        return state.withLock { state in
            if now >= state.nextSweepAt || state.seen.count >= state.sweepAtCount {
                Self.sweep(&state, now: now, interval: sweepInterval)
            }
            if let i = state.seen.firstIndex(of: entry), state.seen[i].remembered(at: now) { return false }
            state.seen.update(with: entry)
            return true
        }
    }

    /// Entries still remembered (expired ones may linger until the next sweep).
    var count: Int { state.withLock { $0.seen.count } }

    /// Drops every entry whose time has passed at `now` (for tests and housekeeping timers).
    func sweep(now: Int64) {
        state.withLock { Self.sweep(&$0, now: now, interval: sweepInterval) }
    }

    private static func sweep(_ state: inout State, now: Int64, interval: Int64) {
        state.seen = state.seen.filter { $0.remembered(at: now) }
        state.nextSweepAt = now + interval
        state.sweepAtCount = max(minimumSweepCount, state.seen.count * 2)
    }
}
