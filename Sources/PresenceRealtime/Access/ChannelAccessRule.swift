/// Who asks for a channel, from the verified token (docs/protocol.md, "Channel access"): the
/// check's request body carries the role and session, and a `channels` claim decides on its own.
struct AccessSubject: Sendable {
    var user: String
    var role: String?
    var sessionID: String?
    /// The token's `channels` claim (nil: absent).
    var channels: Set<String>?
}

/// What a join (or a presence read) of one channel needs before it may go on.
enum ChannelAccessRule: Equatable, Sendable {
    /// Admitted without asking: the `channels` claim lists it, or channels are open.
    case allowed
    /// The `channels` claim does not list it.
    case refused
    /// CHANNEL_AUTH_URL decides (through the cache).
    case ask

    /// The rule for `subject` and `channel` under `asksService` (CHANNEL_AUTH_URL is set): a
    /// `channels` claim is checked against the claim alone; otherwise the service decides when
    /// there is one, and the channel is open when there is none (CHANNELS_OPEN=1, or family-hub
    /// minting every token with the claim).
    static func of(_ subject: AccessSubject, channel: String, asksService: Bool) -> ChannelAccessRule {
        if let listed = subject.channels { return listed.contains(channel) ? .allowed : .refused }
        return asksService ? .ask : .allowed
    }
}

/// The answer about one (user, channel).
enum AccessDecision: Equatable, Sendable {
    case allowed
    /// `forbidden_channel` (the service said no, or the claim does not list it).
    case refused
    /// The service could not be asked or gave no usable answer: `unavailable`, nothing cached.
    case unavailable
}
