/// Where a message stands in its channel (docs/protocol.md, "Offsets and epochs"): offsets go up by
/// exactly 1 from message to message within an epoch; the epoch (a short string) changes when the
/// channel's history is lost — an embedded restart, Redis data loss, or a Redis outage (a
/// per-process epoch).
struct StreamPosition: Equatable, Hashable, Sendable {
    var offset: Int64
    var epoch: String
}
