import WSCore

/// A chat message on its way to its channel: what its frame says
/// (docs/protocol.md, "Server messages").
struct ChatMessage: Sendable {
    var id: String
    var channel: String
    var sender: String
    var content: String
    var timestamp: String
    var nonce: String?
}

/// What storing a chat message did.
struct HistoryAppend {
    /// The frame every member gets (with offset and epoch when the channel keeps history).
    var frame: SharedBytes
    var position: StreamPosition?
    /// The (sender, nonce) was sent before within NONCE_WINDOW: `frame` is the original, which
    /// was not stored, fanned out or forwarded again.
    var duplicate: Bool
    /// The store already published the frame to the other instances (Redis mode).
    var published: Bool
}

/// What a join reads of its channel.
struct HistoryRead {
    /// The channel's last offset and epoch (nil without history).
    var latest: StreamPosition?
    /// For a join with `since`: whether every message after it could be replayed.
    var recovered: Bool?
    /// The messages after `since`, in order (empty unless recovered).
    var frames: [SharedBytes]
}

/// Per-channel history of chat messages for recovery, and the nonce table
/// (docs/protocol.md, "Recovery and nonces"): in this process (`EmbeddedHistory`) or in Redis,
/// shared by every instance (`RedisHistory`). Completions run on the calling loop's thread.
protocol ChannelHistory: AnyObject, Sendable {
    /// Whether channels keep history (HISTORY_SIZE > 0): frames then carry offsets and epochs.
    var keepsMessages: Bool { get }
    /// Assigns the next offset, stores the frame, remembers the nonce — or finds the nonce's
    /// original. With `publish` (Redis mode) the store also sends the frame to the other
    /// instances, in offset order. nil when it could not be stored at all.
    func append(_ message: ChatMessage, publish: Bool, _ done: @escaping (HistoryAppend?) -> Void)
    /// The channel's latest position and, for `since`, the messages after it.
    func read(channel: String, since: StreamPosition?, _ done: @escaping (HistoryRead) -> Void)
    /// Drops what expired (called regularly by one loop).
    func tick(nowMillis: Int64)
    /// Before a message with a nonce is stored for chat-service: whether this (channel, sender,
    /// nonce) was claimed before within NONCE_WINDOW, on any instance — a repeat is then not
    /// forwarded again (`append` still answers with the original). Claims it when not.
    func claimForward(channel: String, sender: String, nonce: String, _ done: @escaping (_ seenBefore: Bool) -> Void)
    /// The claimed message could not be stored for chat-service after all: a re-send must try again.
    func releaseForward(channel: String, sender: String, nonce: String)
}
