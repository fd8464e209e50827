import WSCore

/// Delivers one loop's queued chat messages to chat-service, at least once (CONTRACT §7).
///
/// Per channel, one entry is in flight at a time — the oldest — so a channel's messages reach
/// chat-service in the order they were accepted; channels do not wait for each other. An entry
/// is acknowledged (removed) only after a 2xx or 409; 408, 429, 5xx, timeouts and connection
/// errors retry with full-jitter backoff (250 ms … 30 s, at least `Retry-After`); any other status
/// moves it to the dead letters. All on the loop's thread; the HTTP client is the loop's own.
final class Forwarder {
    unowned(unsafe) let loop: EventLoop
    let queue: any ForwardQueue
    let client: LoopHTTPClient
    let target: OutboundURL
    let token: String?
    /// Channels whose head entry is in flight or waiting for its retry.
    private var busy: Set<String> = []
    /// A pump is due at the end of this turn (entries are never held here: the queue is asked
    /// again for the oldest entry of every free channel).
    private var pumpScheduled = false
    private(set) var counters = ForwardCounters()
    /// The queue's depth, oldest entry and dead letters, refreshed on every upkeep tick.
    private(set) var queueStats: ForwardQueueStats?

    init(loop: EventLoop, queue: any ForwardQueue, client: LoopHTTPClient, target: OutboundURL, token: String?) {
        self.loop = loop
        self.queue = queue
        self.client = client
        self.target = target
        self.token = token
    }

    /// Appends a message to the durable queue (before it is fanned out); `done(false)` when the
    /// queue is full or unreachable — the sender then gets `unavailable`.
    func accept(_ entry: ForwardEntry, _ done: @escaping (Bool) -> Void) {
        queue.append(entry) { [self] result in
            switch result {
            case .success:
                schedulePump()
                done(true)
            case .failure:
                counters.refused += 1
                done(false)
            }
        }
    }

    /// Starts delivering what the queue holds (after a restart too) and the queue's upkeep.
    func start() {
        queue.stats { [self] in if case .success(let stats) = $0 { queueStats = stats } }
        schedulePump()
        scheduleTick()
    }

    private func scheduleTick() {
        _ = loop.schedule(after: queue.tickIntervalMillis) { [self] in
            queue.tick()
            queue.stats { [self] in if case .success(let stats) = $0 { queueStats = stats } }
            scheduleTick()
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
        queue.peek(limit: 256, excluding: busy, oneEntryPerChannel: true) { [self] result in
            guard case .success(let entries) = result else {
                _ = loop.schedule(after: 1_000) { [self] in schedulePump() } // queue unreachable: try again
                return
            }
            for entry in entries {
                busy.insert(entry.channel)
                deliver(entry, attempt: entry.attempts)
            }
        }
    }

    private func deliver(_ entry: ForwardEntry, attempt: Int) {
        client.send(method: "POST", url: target, path: ForwardRequest.path,
                    headers: ForwardRequest.headers(entry, token: token), body: ForwardRequest.body(entry)) { [self] result in
            let outcome: ForwardOutcome
            switch result {
            case .success(let response):
                outcome = .of(status: response.status, retryAfter: response.headers["retry-after"], nowUnixSeconds: UnixTime.now())
            case .failure(.closed):
                return // the client was shut down (drain): the entry stays queued for the next start
            case .failure:
                outcome = .retry(afterMillis: nil)
            }
            switch outcome {
            case .delivered:
                counters.delivered += 1
                queue.acknowledge(entry.id) { [self] _ in done(with: entry) }
            case .deadLetter(let reason):
                counters.deadLettered += 1
                Log.warn("forward dead-lettered", requestID: entry.requestID, ["message_id": entry.id, "reason": reason])
                queue.moveToDeadLetters(entry.id, reason: reason) { [self] _ in done(with: entry) }
            case .retry(let after):
                counters.retried += 1
                queue.recordAttempt(entry.id) { _ in }
                let wait = ForwardBackoff.delay(attempt: attempt, retryAfter: after)
                _ = loop.schedule(after: wait) { [self] in deliver(entry, attempt: attempt + 1) }
            }
        }
    }

    private func done(with entry: ForwardEntry) {
        busy.remove(entry.channel)
        schedulePump()
    }
}

/// Forwarding counters of one loop, for `/metrics`.
struct ForwardCounters {
    var delivered: UInt64 = 0
    var retried: UInt64 = 0
    var deadLettered: UInt64 = 0
    var refused: UInt64 = 0
}
