import PresenceLoop
import RedisShim

/// Builds one loop's protocol stack: the realtime application (or the echo target) under the
/// WebSocket server. The same assembly serves the daemon and the in-process tests.
package enum ServerAssembly {
    /// What every loop shares.
    package enum Mode: Sendable {
        case echo
        case realtime(RealtimeHub)
    }

    package static func make(config: Config, mode: Mode, loop: EventLoop) -> WebSocketServer {
        loop.attachCounters()
        switch mode {
        case .echo:
            return WebSocketServer(config: config, application: EchoApplication(), endpoints: HTTPEndpoints(), loop: loop)
        case .realtime(let hub):
            let app = RealtimeApplication(hub: hub, loop: loop)
            let server = WebSocketServer(config: config, application: app, endpoints: HTTPEndpoints(hub: hub), loop: loop)
            app.server = server
            if loop.index == 0, let history = hub.console.history { history.start(hub: hub, loop: loop) }
            return server
        }
    }

    /// The process-wide realtime hub for this configuration (embedded mode: presence and
    /// single-use tokens in this process). `forwarding`: chat-service forwarding, when
    /// CHAT_SERVICE_URL is set (the daemon makes it).
    package static func makeHub(config: Config, secret: String, forwarding: (any ChatForwarding)?) -> RealtimeHub {
        let secrets = [secret] + (config.tokenSecretPrevious.map { [$0] } ?? [])
        let auth = config.authServiceURL.map {
            AuthServiceClient(baseURL: $0, timeoutMillis: config.outboundTimeoutMillis, sessionCookie: config.authSessionCookie)
        }
        let endpoint = config.redisURL.flatMap { try? RedisEndpoint.parse($0) }
        if let endpoint {
            let redis = RedisRuntime(
                endpoint: endpoint, loops: config.threads, ttlMillis: config.presenceTTLMillis,
                graceMillis: config.presenceGraceMillis, commandTimeoutMillis: config.redisTimeoutMillis,
                historySize: config.historySize, historyTTLMillis: config.historyTTLMillis,
                nonceWindowMillis: config.nonceWindowMillis, forwarding: forwarding)
            return RealtimeHub(
                config: config, secrets: secrets, loops: config.threads, presence: redis.presence,
                replayGuard: redis.replayGuard, history: redis.history, authService: auth, redis: redis,
                forwarding: forwarding)
        }
        let history = EmbeddedHistory(
            size: config.historySize, ttlMillis: config.historyTTLMillis, nonceWindowMillis: config.nonceWindowMillis)
        return RealtimeHub(
            config: config, secrets: secrets, loops: config.threads,
            presence: EmbeddedPresenceStore(graceMillis: config.presenceGraceMillis),
            replayGuard: MemoryReplayGuard(), history: history, authService: auth, forwarding: forwarding)
    }
}
