import RedisShim

/// One environment variable presenced reads: its name, default and meaning (for `--help`), and
/// how `check-config` shows its effective value — secrets only as "set" or "unset".
package struct ConfigVariable: Sendable {
    package let name: String
    let defaultValue: String
    let meaning: String
    /// The effective value as it may be printed (never a secret).
    package let shown: @Sendable (Config) -> String

    /// "set" / "unset", for secrets.
    static func presence(_ value: String?) -> String { value == nil ? "unset" : "set" }

    static func millis(_ m: Int64) -> String { m % 1000 == 0 ? "\(m / 1000)s" : "\(m)ms" }

    /// Every variable, in the order `--help` lists them.
    package static let all: [ConfigVariable] = [
        ConfigVariable(name: "PORT", defaultValue: "8082", meaning: "listen port (HTTP and WebSocket)") { "\($0.port)" },
        ConfigVariable(name: "BIND", defaultValue: "127.0.0.1", meaning: "listen address (IPv4 or IPv6)") { $0.bind },
        ConfigVariable(name: "IO_BACKEND", defaultValue: "auto", meaning: "uring, epoll, or auto (io_uring, else epoll)") { $0.io.rawValue },
        ConfigVariable(name: "THREADS", defaultValue: "one per core", meaning: "event-loop threads (1-1024)") { "\($0.threads)" },
        ConfigVariable(name: "REDIS_URL", defaultValue: "unset = embedded single-instance mode",
                       meaning: "redis://[user:pass@]host:port[/db] or rediss:// (TLS)") { config in
            // The password never shows: the endpoint's description masks it.
            config.redisURL.map { url in (try? RedisEndpoint.parse(url)).map { "\($0)" } ?? "set" } ?? "unset"
        },
        ConfigVariable(name: "WS_TOKEN_SECRET", defaultValue: "required, except dev mode",
                       meaning: "HMAC key of the ephemeral tokens, at least 32 bytes") { presence($0.tokenSecret) },
        ConfigVariable(name: "WS_TOKEN_SECRET_PREVIOUS", defaultValue: "unset",
                       meaning: "previous HMAC key, still accepted during a rotation") { presence($0.tokenSecretPrevious) },
        ConfigVariable(name: "WS_TOKEN_AUDIENCE", defaultValue: "presenced", meaning: "required aud claim") { $0.tokenAudience },
        ConfigVariable(name: "ALLOWED_ORIGINS", defaultValue: "https://casa.devarno.cloud,http://localhost:3000",
                       meaning: "comma list: exact origins, scheme://*.domain, or *") { $0.allowedOrigins.joined(separator: ",") },
        ConfigVariable(name: "CHAT_SERVICE_URL", defaultValue: "unset = not forwarded",
                       meaning: "chat-service base URL; chat messages are forwarded there") { $0.chatServiceURL ?? "unset" },
        ConfigVariable(name: "CHAT_SERVICE_TOKEN", defaultValue: "unset",
                       meaning: "bearer token sent on forwards") { presence($0.chatServiceToken) },
        ConfigVariable(name: "AUTH_SERVICE_URL", defaultValue: "unset = no /api/v1/ws-token",
                       meaning: "better-auth base URL for POST /api/v1/ws-token") { $0.authServiceURL ?? "unset" },
        ConfigVariable(name: "AUTH_SESSION_COOKIE", defaultValue: "better-auth.session_token",
                       meaning: "better-auth's session cookie: POST /api/v1/ws-token asks better-auth only when it is sent (also as __Secure-NAME)") { $0.authSessionCookie },
        ConfigVariable(name: "WS_TOKEN_RATE", defaultValue: "2",
                       meaning: "POST /api/v1/ws-token requests per second per client address (burst 10x); above it 429; 0 = no limit") { "\($0.wsTokenRate)" },
        ConfigVariable(name: "AUTH_MAX_IN_FLIGHT", defaultValue: "64",
                       meaning: "better-auth calls waiting at once; above it POST /api/v1/ws-token answers 503") { "\($0.authMaxInFlight)" },
        ConfigVariable(name: "TRUSTED_PROXIES", defaultValue: "none",
                       meaning: "comma list of proxy addresses or CIDR prefixes whose X-Forwarded-For names the client (ws-token pacing)") { config in
            config.trustedProxies.isEmpty ? "none" : config.trustedProxies.joined(separator: ",")
        },
        ConfigVariable(name: "CHANNEL_AUTH_URL", defaultValue: "unset = channels decided by the token's channels claim, else open",
                       meaning: "asked (POST) before a join or presence read of a channel the token's channels claim does not list") { $0.channelAuthURL ?? "unset" },
        ConfigVariable(name: "CHANNEL_AUTH_TOKEN", defaultValue: "unset",
                       meaning: "bearer token sent to CHANNEL_AUTH_URL") { presence($0.channelAuthToken) },
        ConfigVariable(name: "CHANNEL_AUTH_CACHE", defaultValue: "60s",
                       meaning: "how long an answer is reused per (user, channel); a refusal at most 5s") { millis($0.channelAuthCacheMillis) },
        ConfigVariable(name: "CHANNELS_OPEN", defaultValue: "0",
                       meaning: "1 = any verified user may join any channel (single-family install); ignored with CHANNEL_AUTH_URL") { $0.channelsOpen ? "1" : "0" },
        ConfigVariable(name: "SERVER_API_TOKEN", defaultValue: "unset = no server API",
                       meaning: "bearer token (at least 16 bytes) of POST /api/v1/disconnect, /api/v1/publish and GET /api/v1/presence?user=") { presence($0.serverAPIToken) },
        ConfigVariable(name: "MAX_CONNECTION_AGE", defaultValue: "0 = off",
                       meaning: "older connections are closed with 4401 (spread over the last tenth) so clients fetch a fresh token") { millis($0.maxConnectionAgeMillis) },
        ConfigVariable(name: "MAX_CONNECTIONS_PER_USER", defaultValue: "32",
                       meaning: "connections per user (token sub) on this instance; above it upgrades get 503; 0 = no cap") { "\($0.maxConnectionsPerUser)" },
        ConfigVariable(name: "HISTORY_SIZE", defaultValue: "200",
                       meaning: "chat messages kept per channel for recovery after a reconnect (0-100000); 0 = no history, no offset/epoch") { "\($0.historySize)" },
        ConfigVariable(name: "HISTORY_TTL", defaultValue: "10m",
                       meaning: "a message older than this is no longer recoverable (1s-7d)") { millis($0.historyTTLMillis) },
        ConfigVariable(name: "NONCE_WINDOW", defaultValue: "5m",
                       meaning: "how long a sender's message nonce is remembered: a repeat is answered with the original, not sent again") { millis($0.nonceWindowMillis) },
        ConfigVariable(name: "PRESENCE_TTL", defaultValue: "30s", meaning: "presence entry lifetime (1s-24h)") { millis($0.presenceTTLMillis) },
        ConfigVariable(name: "PRESENCE_GRACE", defaultValue: "2s",
                       meaning: "delay before online:false (a quick reconnect does not flap)") { millis($0.presenceGraceMillis) },
        ConfigVariable(name: "PING_INTERVAL", defaultValue: "25s",
                       meaning: "server ping; two missed pongs close the connection") { millis($0.pingIntervalMillis) },
        ConfigVariable(name: "MAX_MESSAGE_BYTES", defaultValue: "65536", meaning: "largest WebSocket message; above it close 1009") { "\($0.maxMessageBytes)" },
        ConfigVariable(name: "MAX_OUTBOUND_BYTES", defaultValue: "1048576",
                       meaning: "bytes queued per connection before closing it as a slow consumer (4008)") { "\($0.maxOutboundBytes)" },
        ConfigVariable(name: "MESSAGE_RATE", defaultValue: "20",
                       meaning: "client messages per second per connection (burst twice that); 0 = no limit") { "\($0.messageRate)" },
        ConfigVariable(name: "MAX_CONNECTIONS", defaultValue: "100000", meaning: "above it, upgrades get 503") { "\($0.maxConnections)" },
        ConfigVariable(name: "MAX_CONNECTIONS_PER_IP", defaultValue: "0",
                       meaning: "open connections per client address, IPv6 by /64 (set it when clients connect directly, not through a proxy); above it new ones are closed at accept; 0 = no cap") { "\($0.maxConnectionsPerIP)" },
        ConfigVariable(name: "STATE_DIRECTORY", defaultValue: "./state",
                       meaning: "durable forward queue (Redis mode: messages kept during a Redis outage); must be writable when forwarding (systemd sets it)") { $0.stateDirectory },
        ConfigVariable(name: "FORWARD_QUEUE_MAX", defaultValue: "100000",
                       meaning: "entries per loop's forward queue (Redis mode: in the shared stream); past it messages are refused") { "\($0.forwardQueueMaxEntries)" },
        ConfigVariable(name: "FORWARD_QUEUE_MAX_BYTES", defaultValue: "67108864",
                       meaning: "bytes per loop's forward queue (embedded mode)") { "\($0.forwardQueueMaxBytes)" },
        ConfigVariable(name: "FORWARD_MAX_ATTEMPTS", defaultValue: "50",
                       meaning: "a forward answered 5xx this many times becomes a dead letter (1-1000000); timeouts, connection errors, 408 and 429 never count") { "\($0.forwardMaxAttempts)" },
        ConfigVariable(name: "FORWARD_CLAIM_IDLE", defaultValue: "15s",
                       meaning: "Redis mode: a crashed instance's forwards are taken over after this idle time") { millis($0.forwardClaimIdleMillis) },
        ConfigVariable(name: "LOG_LEVEL", defaultValue: "info", meaning: "debug, info, warn or error") { $0.logLevel.name },
        ConfigVariable(name: "DRAIN_WINDOW", defaultValue: "5s",
                       meaning: "SIGTERM closes clients with 1001 spread over this window (0-10m)") { millis($0.drainWindowMillis) },
        ConfigVariable(name: "ENV_FILE", defaultValue: "unset",
                       meaning: "KEY=VALUE file re-read on SIGHUP (token secrets, ALLOWED_ORIGINS); must be readable") { $0.environmentFile ?? "unset" },
        ConfigVariable(name: "SSL_CERT_FILE", defaultValue: "system CAs",
                       meaning: "CA bundle (OpenSSL) for rediss:// or https:// services; must be readable") { $0.certificateFile ?? "system CAs" },
        ConfigVariable(name: "CONSOLE_DEV_TOKENS", defaultValue: "auto = on in dev mode (no WS_TOKEN_SECRET, loopback, not under systemd) without REDIS_URL",
                       meaning: "auto, 1 (dev mode with Redis too) or 0: POST /api/v1/dev-token mints a token for any user, for local requests only (the console's Try it)") { config in
            "\(config.consoleDevTokens.rawValue) (\(config.devTokensEnabled ? "on" : "off"))"
        },
        ConfigVariable(name: "CONSOLE_ADMIN_TOKEN", defaultValue: "unset = no instance view",
                       meaning: "bearer token (at least 16 bytes) of GET /api/v1/admin/stats and the console's instance view") { presence($0.consoleAdminToken) },
    ]
}
