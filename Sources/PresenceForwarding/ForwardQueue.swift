/// The durable queue between accepting a chat message and forwarding it, the same for both modes
/// (``FileForwardQueue`` in embedded mode, ``RedisStreamForwardQueue`` in Redis mode), so the
/// forwarder is written once.
///
/// Thread rule: one queue object belongs to one event loop; every call and every completion
/// happens on that loop's thread. Completions of ``FileForwardQueue`` run before the call
/// returns (its batched appends' at ``endTurn()``); those of ``RedisStreamForwardQueue`` later,
/// from the loop.
///
/// Order: ``peek(limit:excluding:oneEntryPerChannel:_:)`` hands out the oldest unacknowledged
/// entries in queue order. Keeping one channel's messages in order is the forwarder's part:
/// at most one entry of a channel in flight (pass busy or backing-off channels in `excluding`).
package protocol ForwardQueue: AnyObject {
    /// Stores `entry` durably before it is fanned out: `.full` at the bound (answer the sender
    /// `unavailable`), `.unavailable` when Redis is down, `.io` when the disk fails.
    func append(_ entry: consuming ForwardEntry, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// Up to `limit` of the oldest entries not yet acknowledged, in queue order, skipping
    /// entries of `excluding` channels; with `oneEntryPerChannel` only each channel's oldest.
    /// The same entries come back until acknowledged or dead-lettered.
    func peek(
        limit: Int, excluding: Set<String>, oneEntryPerChannel: Bool,
        _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void)
    /// Delivered (2xx or 409): removes it for good. Unknown ids are ignored.
    func acknowledge(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// One more attempt answered 5xx (persisted: the count toward `FORWARD_MAX_ATTEMPTS` and the
    /// backoff resume after a restart).
    func recordAttempt(_ id: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// Refused for good: moves the entry to the dead letters with `reason`.
    func moveToDeadLetters(_ id: String, reason: String, _ done: @escaping (Result<Void, ForwardQueueError>) -> Void)
    /// Up to `limit` dead letters, oldest first.
    func deadLetters(limit: Int, _ done: @escaping (Result<[DeadLetter], ForwardQueueError>) -> Void)
    /// Moves dead letter `id` back to the end of the queue with `attempts` 0; false when there is
    /// no such dead letter; `.full` when the queue is at its bound.
    func retryDeadLetter(_ id: String, _ done: @escaping (Result<Bool, ForwardQueueError>) -> Void)
    /// Moves every dead letter back (as many as the bound allows, oldest first); the count moved.
    func retryAllDeadLetters(_ done: @escaping (Result<Int, ForwardQueueError>) -> Void)
    /// Depth, bytes, oldest entry and dead letters, for metrics.
    func stats(_ done: @escaping (Result<ForwardQueueStats, ForwardQueueError>) -> Void)
    /// How often the owner should call ``tick()``.
    var tickIntervalMillis: Int64 { get }
    /// Periodic upkeep from a loop timer: embedded, `fdatasync` of what was written and
    /// compaction; Redis, keeps the entries this consumer holds from being claimed by others
    /// (and renews the reader lease).
    func tick()
    /// Flushes and releases files (embedded) or forgets held entries (Redis). No calls after it.
    func close()
    /// Called by the owning loop at the end of every turn, before its sends are flushed:
    /// appends batched during the turn are written (embedded: one `write(2)`) and completed.
    func endTurn()
    /// Other processes append too (Redis: every instance shares the stream): the reader asks
    /// for new entries this often. Nil when only this object appends.
    var pollIntervalMillis: Int64? { get }
}

extension ForwardQueue {
    package func endTurn() {}
    package var pollIntervalMillis: Int64? { nil }

    /// ``peek(limit:excluding:oneEntryPerChannel:_:)`` with nothing excluded.
    package func peek(limit: Int, _ done: @escaping (Result<[ForwardEntry], ForwardQueueError>) -> Void) {
        peek(limit: limit, excluding: [], oneEntryPerChannel: false, done)
    }
}
