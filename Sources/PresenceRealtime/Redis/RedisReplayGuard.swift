import PresenceLoop
import RedisShim
import Synchronization

/// Single-use token ids across instances: `SET presenced:jti:<jti> 1 NX PX ttl` on the calling
/// loop's Redis connection. While Redis cannot be reached it falls back to this process's
/// memory (a token could then be replayed on another instance during the outage — accepted to
/// keep sign-ins working; tokens live at most 300 s), says so in the log once per outage and
/// counts each such token.
final class RedisReplayGuard: ReplayGuard, @unchecked Sendable {
    /// Seconds a jti is kept past the token's `exp` (the verifier's clock leeway).
    let leeway: Int64 = 5
    private let fallback = MemoryReplayGuard()
    /// Each loop's command connection, written at its registration (loops register concurrently).
    private let connections: LoopSlots<(any RedisCommanding)?>
    private let warned = Atomic<Bool>(false)

    init(loops: Int) {
        connections = LoopSlots(count: loops, initial: nil)
    }

    func register(loop: EventLoop, redis: any RedisCommanding) {
        connections[loop.index] = redis
    }

    /// The jti is remembered in this process first — a token used here while Redis was away
    /// stays used when Redis returns — then claimed in Redis for the other instances.
    func firstUse(jti: String, expiresAt: Int64, now: Int64, _ done: @escaping (ReplayCheck) -> Void) {
        guard fallback.firstUse(jti: jti, expiresAt: expiresAt, now: now) else { return done(.replayed) }
        guard let loop = EventLoop.current, let redis = connections[loop.index], redis.isReady else {
            warnOncePerOutage()
            return done(.firstInThisProcess)
        }
        let key = "presenced:jti:" + jti
        let millis = max(1, expiresAt + leeway - now) * 1000
        redis.send(RedisCommand("SET", key, "1", "NX", "PX", String(millis)), routingKey: key) { [self] result in
            switch result {
            case .success(.null):
                recovered()
                done(.replayed)
            case .success:
                recovered()
                done(.first)
            case .failure:
                warnOncePerOutage()
                done(.firstInThisProcess)
            }
        }
    }

    /// Spent in this process, or (asked of Redis) on another instance. While Redis cannot answer,
    /// this process's memory decides, as for `firstUse`.
    func wasUsed(jti: String, now: Int64, _ done: @escaping (Bool) -> Void) {
        if fallback.wasUsed(jti: jti, now: now) { return done(true) }
        guard let loop = EventLoop.current, let redis = connections[loop.index], redis.isReady else { return done(false) }
        let key = "presenced:jti:" + jti
        redis.send(RedisCommand("EXISTS", key), routingKey: key) { result in
            if case .success(.integer(let n)) = result { done(n > 0) } else { done(false) }
        }
    }

    /// Says so once per outage (the metric `presenced_tokens_checked_in_process_only_total` counts them).
    private func warnOncePerOutage() {
        if !warned.exchange(true, ordering: .relaxed) {
            Log.warn("Redis unreachable: single-use tokens are checked in this process only until it returns")
        }
    }

    private func recovered() {
        if warned.load(ordering: .relaxed), warned.exchange(false, ordering: .relaxed) {
            Log.info("Redis reachable: single-use tokens are checked across instances again")
        }
    }
}
