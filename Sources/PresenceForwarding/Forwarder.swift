import PresenceLoop
import PresenceOutbound
import WSCore

/// Delivers one loop's queued chat messages to chat-service, at least once
/// (docs/operations.md, "Forward queue and dead letters").
///
/// Per channel, one entry is in flight at a time — the oldest — so a channel's messages reach
/// chat-service in the order they were accepted; channels do not wait for each other. An entry
/// is acknowledged (removed) only after a 2xx or 409; 408, 429, 5xx, timeouts and connection
/// errors retry with full-jitter backoff (250 ms … 30 s, at least `Retry-After`); any other status
/// moves it to the dead letters, and so does the 5xx answer that reaches `FORWARD_MAX_ATTEMPTS`
/// (``ForwardRetryPolicy``: a poison message must not hold its channel forever, while an outage of
/// chat-service, however long, never dead-letters anything). All on the loop's thread; the HTTP
/// client is the loop's own.
///
/// A forwarder that does not deliver (Redis mode, loops other than 0: the instance has one
/// reader of the shared stream) only appends. A queue other processes append to too is asked
/// again every ``ForwardQueue/pollIntervalMillis``.
package final class Forwarder {
    package unowned(unsafe) let loop: EventLoop
    package let queue: any ForwardQueue
    package let client: LoopHTTPClient
    package let target: OutboundURL
    package let token: String?
    /// Whether this forwarder reads the queue and sends to chat-service (else it only appends).
    package let delivers: Bool
    /// Backoff and the 5xx limit.
    package let policy: ForwardRetryPolicy
    /// Channels whose head entry is in flight or waiting for its retry.
    private var busy: Set<String> = []
    /// A pump is due at the end of this turn (entries are never held here: the queue is asked
    /// again for the oldest entry of every free channel).
    private var pumpScheduled = false
    /// A peek is in flight (Redis); another pump asked meanwhile runs when it is answered.
    private var peeking = false
    private var peekAgain = false
    private var stopped = false
    /// A message accepted this turn is in a channel with nothing in flight.
    private var pumpAfterTurn = false
    package private(set) var counters = ForwardCounters()
    /// The queue's depth, oldest entry and dead letters, refreshed on every upkeep tick (only
    /// where it delivers: a shared stream is reported once per instance).
    package private(set) var queueStats: ForwardQueueStats?

    package init(
        loop: EventLoop, queue: any ForwardQueue, client: LoopHTTPClient, target: OutboundURL, token: String?,
        delivers: Bool = true, policy: ForwardRetryPolicy = ForwardRetryPolicy()
    ) {
        self.loop = loop
        self.queue = queue
        self.client = client
        self.target = target
        self.token = token
        self.delivers = delivers
        self.policy = policy
    }

    /// Appends a message to the durable queue (before it is fanned out); `done` gets a failure
    /// when the queue is full or unreachable — the sender then gets `unavailable` (and the
    /// caller ``countRefused()``). A chat message's hot path: no closure of its own here.
    package func accept(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void) {
        // A busy channel's next entry goes when its head is done; only a free one needs a pump.
        if delivers && !pumpAfterTurn && !busy.contains(entry.channel) { pumpAfterTurn = true }
        queue.append(consume entry, done)
    }

    /// A message `accept` could not store.
    package func countRefused() { counters.refused += 1 }

    /// Where it delivers: starts delivering what the queue holds (after a restart too) and the
    /// queue's upkeep.
    package func start() {
        // The upkeep is the reader's (a Redis tick takes the reader lease).
        guard delivers else { return }
        scheduleTick()
        refreshStats()
        schedulePump()
        if let interval = queue.pollIntervalMillis { schedulePoll(every: interval) }
    }

    /// Batched appends go to the queue (the loop's turn is ending); a pump follows when one of
    /// them is in a free channel.
    package func endTurn() {
        queue.endTurn()
        if pumpAfterTurn {
            pumpAfterTurn = false
            schedulePump()
        }
    }

    /// Shutdown: no more sends (those in flight end with `.closed` and stay queued), the queue
    /// flushed and closed. Timers still pending find `stopped` and do nothing.
    package func stop() {
        stopped = true
        client.shutdown()
        queue.close()
    }

    private func refreshStats() {
        queue.stats { [self] in if case .success(let stats) = $0 { queueStats = stats } }
    }

    private func scheduleTick() {
        _ = loop.schedule(after: queue.tickIntervalMillis) { [self] in
            guard !stopped else { return }
            queue.tick()
            refreshStats()
            scheduleTick()
        }
    }

    private func schedulePoll(every interval: Int64) {
        _ = loop.schedule(after: interval) { [self] in
            guard !stopped else { return }
            schedulePump()
            schedulePoll(every: interval)
        }
    }

    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        _ = loop.schedule(after: 0) { [self] in
            pumpScheduled = false
            pump()
        }
    }

    private func pump() {
        guard !stopped else { return }
        guard !peeking else {
            peekAgain = true
            return
        }
        peeking = true
        queue.peek(limit: 256, excluding: busy, oneEntryPerChannel: true) { [self] result in
            peeking = false
            defer {
                if peekAgain {
                    peekAgain = false
                    schedulePump()
                }
            }
            guard case .success(let entries) = result else {
                _ = loop.schedule(after: 1_000) { [self] in schedulePump() }  // queue unreachable: try again
                return
            }
            // A channel that became busy while the peek was in flight keeps its one entry in flight.
            for entry in entries where busy.insert(entry.channel).inserted {
                deliver(entry, attempt: entry.attempts)
            }
        }
    }

    /// Sends `entry`; `attempt` numbers the backoff (it starts at the entry's persisted 5xx count,
    /// so a restart does not hammer a failing chat-service from 250 ms again).
    private func deliver(_ entry: ForwardEntry, attempt: Int) {
        client.send(
            method: "POST", url: target, path: ForwardRequest.path,
            headers: ForwardRequest.headers(entry, token: token), body: ForwardRequest.body(entry)
        ) { [self] result in
            let answered: ForwardOutcome
            switch result {
            case .success(let response):
                answered = .of(status: response.status, retryAfter: response.headers["retry-after"], nowUnixSeconds: UnixTime.now())
            case .failure(.closed):
                return  // the client was shut down (drain): the entry stays queued for the next start
            case .failure:
                answered = .retry(afterMillis: nil)  // timeout or connection error: never counted
            }
            let outcome = policy.settle(answered, serverErrorsBefore: entry.attempts)
            switch outcome {
            case .delivered:
                counters.delivered += 1
                queue.acknowledge(entry.id) { [self] _ in done(with: entry) }
            case .deadLetter(let reason):
                counters.deadLettered += 1
                if case .retry = answered {
                    counters.poisoned += 1
                    // The last 5xx is counted too, so the dead letter's attempts match its reason.
                    queue.recordAttempt(entry.id) { _ in }
                }
                Log.warn(
                    "forward dead-lettered", requestID: entry.requestID,
                    ["message_id": entry.id, "channel": entry.channel, "reason": reason])
                queue.moveToDeadLetters(entry.id, reason: reason) { [self] _ in done(with: entry) }
            case .retry(let after, let serverError):
                counters.retried += 1
                var next = entry
                if serverError != nil {
                    // Only a 5xx counts toward FORWARD_MAX_ATTEMPTS, and only it is persisted.
                    next.attempts += 1
                    queue.recordAttempt(entry.id) { _ in }
                }
                let wait = policy.delay(attempt: attempt, retryAfter: after)
                _ = loop.schedule(after: wait) { [self] in if !stopped { deliver(next, attempt: attempt + 1) } }
            }
        }
    }

    /// `entry` is settled: its channel's next entry may go, pumped after this turn's `endTurn`.
    /// Not at once: an entry accepted for the channel earlier in this turn, while it was busy, is
    /// written by `endTurn`, and a peek before that would miss it with nothing left to pump again
    /// (NonceTests saw the second message of a channel stay queued, 1 run in 4).
    private func done(with entry: ForwardEntry) {
        busy.remove(entry.channel)
        pumpAfterTurn = true
    }
}

/// Forwarding counters of one loop, for `/metrics`.
package struct ForwardCounters {
    package var delivered: UInt64 = 0
    package var retried: UInt64 = 0
    /// Every entry moved to the dead letters (refused by a 4xx, or `exhausted`).
    package var deadLettered: UInt64 = 0
    /// Of those, entries answered 5xx `FORWARD_MAX_ATTEMPTS` times (poison messages).
    package var poisoned: UInt64 = 0
    package var refused: UInt64 = 0
}
