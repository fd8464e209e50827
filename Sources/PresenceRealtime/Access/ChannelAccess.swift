import PresenceLoop
import PresenceOutbound

/// Who may join (or read the presence of) which channel (docs/protocol.md, "Channel access"), for
/// every loop: the token's `channels` claim, else CHANNEL_AUTH_URL through a shared cache, else
/// open.
///
/// A join is decided at once when the rule or the cache can (`immediate`); otherwise `ask` puts
/// the question to the service on the calling loop's own HTTP client — no worker thread — or
/// lets the join wait for the same question already in flight from any loop.
final class ChannelAccess: @unchecked Sendable {
    /// CHANNEL_AUTH_URL (nil: never asked).
    let target: OutboundURL?
    let token: String?
    let cache: ChannelAccessCache
    private let counters: LoopSlots<AccessCounters?>
    /// The loop's HTTP client (from the hub).
    private let client: (EventLoop) -> LoopHTTPClient?
    /// When each loop last logged an unavailable check (one line per loop per 10 s).
    private let lastWarned: LoopSlots<Int64>

    init(config: Config, loops: Int, client: @escaping (EventLoop) -> LoopHTTPClient?) {
        target = config.channelAuthURL.flatMap(OutboundURL.init)
        token = config.channelAuthToken
        cache = ChannelAccessCache(allowedMillis: config.channelAuthCacheMillis)
        counters = LoopSlots(count: loops, initial: nil)
        lastWarned = LoopSlots(count: loops, initial: .min)
        self.client = client
    }

    /// On each loop's thread at its start.
    func loopStarted(_ loop: EventLoop) { counters[loop.index] = AccessCounters() }

    /// This loop's figures (on its thread).
    func counters(on loop: EventLoop) -> AccessCountersSnapshot? { counters[loop.index]?.snapshot() }

    func rule(_ subject: AccessSubject, channel: String) -> ChannelAccessRule {
        ChannelAccessRule.of(subject, channel: channel, asksService: target != nil)
    }

    /// The decision when it needs no call: the rule's, or a cached answer (counted as a cache
    /// hit). nil: `ask`.
    func immediate(_ subject: AccessSubject, channel: String, on loop: EventLoop) -> AccessDecision? {
        switch rule(subject, channel: channel) {
        case .allowed: return .allowed
        case .refused: return .refused
        case .ask:
            guard let cached = cache.cached(ChannelAccessCache.Key(user: subject.user, channel: channel), now: loop.now) else { return nil }
            counters[loop.index]?.cacheHits &+= 1
            return cached
        }
    }

    /// Asks CHANNEL_AUTH_URL about (`subject.user`, `channel`), or waits for the question already
    /// in flight; `done` runs on `loop`'s thread with the answer (at once if it was cached meanwhile).
    func ask(
        _ subject: AccessSubject, channel: String, requestID: String, on loop: EventLoop,
        _ done: @escaping (AccessDecision) -> Void
    ) {
        let key = ChannelAccessCache.Key(user: subject.user, channel: channel)
        let waiter = ChannelAccessCache.Waiter(loop: loop.index, mailbox: loop.mailbox, done: done)
        switch cache.lookup(key, now: loop.now, waiter: waiter) {
        case .cached(let decision):
            counters[loop.index]?.cacheHits &+= 1
            done(decision)
        case .waiting:
            counters[loop.index]?.coalesced &+= 1
        case .ask:
            guard let target, let http = client(loop) else { return finish(key, .unavailable, on: loop) }
            let started = EventLoop.monotonicNanos()
            let headers = ChannelAccessCheck.headers(
                token: token, requestID: requestID,
                traceparent: TraceParent.make(requestID: requestID))
            http.send(
                method: "POST", url: target, path: "", headers: headers, body: ChannelAccessCheck.body(subject, channel: channel),
                timeoutMillis: ChannelAccessCheck.timeoutMillis
            ) { [self] result in
                let decision = ChannelAccessCheck.interpret(result)
                if let counters = counters[loop.index] {
                    counters.checks.add(AccessCheckResult(decision))
                    counters.latency.observe(nanos: EventLoop.monotonicNanos() - started)
                }
                if decision == .unavailable { warnUnavailable(result, requestID: requestID, on: loop) }
                finish(key, decision, on: loop)
            }
        }
    }

    /// Caches the answer and runs every join waiting for it, each on its own loop.
    private func finish(_ key: ChannelAccessCache.Key, _ decision: AccessDecision, on loop: EventLoop) {
        for waiter in cache.answer(key, decision, now: loop.now) {
            if waiter.loop == loop.index {
                waiter.done(decision)
            } else {
                let job = UnsafeSendable(waiter.done)
                waiter.mailbox.post { _ in job.value(decision) }
            }
        }
    }

    private func warnUnavailable(_ result: Result<OutboundResponse, LoopHTTPClient.Failure>, requestID: String, on loop: EventLoop) {
        guard lastWarned[loop.index] + 10_000 <= loop.now else { return }
        lastWarned[loop.index] = loop.now
        let why: String
        switch result {
        case .failure(let failure): why = failure.description
        case .success(let response): why = "answered \(response.status)"
        }
        Log.warn(
            "channel access check unavailable: joins answer unavailable", requestID: requestID,
            ["reason": why, "loop": "\(loop.index)"])
    }
}
