import PresenceForwarding
import PresenceOutbound
import PresenceRealtime
import RedisShim

/// The daemon's composition: the realtime hub with chat-service forwarding plugged in (the
/// realtime code sees forwarding only through `ChatForwarding`). The daemon and the end-to-end
/// tests build their hubs here.
enum DaemonAssembly {
    /// The process-wide realtime hub for `config`. `forwardBackoff`: the wait between forward
    /// retries (tests shorten it). Throws when forwarding's state directory cannot be used.
    static func makeHub(
        config: Config, secret: String,
        forwardBackoff: RedisBackoff = ForwardRetryPolicy.standardBackoff
    ) throws(ForwardQueueError) -> RealtimeHub {
        let forwarding = try makeForwarding(config: config, backoff: forwardBackoff)
        return ServerAssembly.makeHub(config: config, secret: secret, forwarding: forwarding)
    }

    /// Forwarding as `config` describes it (nil: CHAT_SERVICE_URL is unset): the mode follows
    /// REDIS_URL, and STATE_DIRECTORY is locked in both modes. `backoff` is the retry schedule
    /// (tests shorten it). Throws when the state directory cannot be made or is locked.
    static func makeForwarding(
        config: Config, backoff: RedisBackoff = ForwardRetryPolicy.standardBackoff
    ) throws(ForwardQueueError)
        -> ForwardingRuntime?
    {
        guard let url = config.chatServiceURL, let target = OutboundURL(url) else { return nil }
        let local = FileForwardQueue.Options(maxEntries: config.forwardQueueMaxEntries, maxBytes: config.forwardQueueMaxBytes)
        let storage: ForwardingRuntime.Storage =
            config.redisURL == nil
            ? .files(directory: config.stateDirectory, options: local)
            : .redisStream(
                options: RedisStreamForwardQueue.Options(
                    maxEntries: config.forwardQueueMaxEntries,
                    claimIdleMillis: config.forwardClaimIdleMillis),
                localDirectory: config.stateDirectory, localOptions: local)
        return try ForwardingRuntime(
            target: target, token: config.chatServiceToken, storage: storage, loops: config.threads,
            policy: ForwardRetryPolicy(maxAttempts: config.forwardMaxAttempts, backoff: backoff))
    }
}
