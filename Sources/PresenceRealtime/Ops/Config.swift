import Glibc
import PresenceLoop
import PresenceOutbound
import RedisShim

/// A configuration value that cannot be used: the start fails with one line naming it (exit 78).
package struct ConfigError: Error, CustomStringConvertible {
    package var variable: String
    package var problem: String
    package var description: String { "presenced: invalid \(variable): \(problem)" }

    package init(variable: String, problem: String) {
        self.variable = variable
        self.problem = problem
    }
}

/// Everything presenced reads at start: environment first, command-line flags override
/// (docs/operations.md, "Configuration"). Parsing is pure so that tests can feed any environment.
///
/// Each environment variable is declared once, on the property that holds its value (``Setting``):
/// name, flag, format (parsing, range, how check-config shows it), default (the initial value)
/// and help. `parse`, `--help`, `check-config` and the table in docs/operations.md come from
/// these declarations, listed in the order they are declared here.
package struct Config: Sendable {
    package enum IOChoice: String, Sendable { case auto, uring, epoll }

    @Setting("PORT", flag: "--port", .port, help: "listen port (HTTP and WebSocket)")
    package var port: UInt16 = 8082
    @Setting("BIND", flag: "--bind", .text(Config.address), help: "listen address (IPv4 or IPv6)")
    package var bind = "127.0.0.1"
    @Setting("IO_BACKEND", flag: "--io", .ioChoice, help: "uring, epoll, or auto (io_uring, else epoll)")
    package var io = IOChoice.auto
    @Setting("THREADS", flag: "--threads", .integer(1...1024), default: "one per core", help: "event-loop threads (1-1024)")
    package var threads = Config.onlineCores()
    @Setting(
        "REDIS_URL", .redisURL, default: "unset = embedded single-instance mode",
        help: "redis://[user:pass@]host:port[/db] or rediss:// (TLS)")
    package var redisURL: String? = nil
    /// Set but empty is a mistake (an unfilled template line), not dev mode: too short.
    @Setting(
        "WS_TOKEN_SECRET", .secret(Config.secret, emptyIsUnset: false), default: "required, except dev mode",
        help: "HMAC key of the ephemeral tokens, at least 32 bytes")
    package var tokenSecret: String? = nil
    @Setting("WS_TOKEN_SECRET_PREVIOUS", .secret(Config.secret), help: "previous HMAC key, still accepted during a rotation")
    package var tokenSecretPrevious: String? = nil
    @Setting("WS_TOKEN_AUDIENCE", .text(Config.nonEmpty), help: "required aud claim")
    package var tokenAudience = "presenced"
    @Setting("ALLOWED_ORIGINS", .list(Config.origins), help: "comma list: exact origins, scheme://*.domain, or *")
    package var allowedOrigins = ["https://casa.devarno.cloud", "http://localhost:3000"]
    @Setting(
        "CHAT_SERVICE_URL", .optional(Config.httpURL), default: "unset = not forwarded",
        help: "chat-service base URL; chat messages are forwarded there")
    package var chatServiceURL: String? = nil
    @Setting("CHAT_SERVICE_TOKEN", .secret(Config.headerValue), help: "bearer token sent on forwards")
    package var chatServiceToken: String? = nil
    @Setting(
        "AUTH_SERVICE_URL", .optional(Config.httpURL), default: "unset = no /api/v1/ws-token",
        help: "better-auth base URL for POST /api/v1/ws-token")
    package var authServiceURL: String? = nil
    /// The better-auth session cookie; `POST /api/v1/ws-token` asks better-auth only when it is
    /// present (also under its `__Secure-` name).
    @Setting(
        "AUTH_SESSION_COOKIE", .text(Config.cookieName),
        help: "better-auth's session cookie: POST /api/v1/ws-token asks better-auth only when it is sent (also as __Secure-NAME)")
    package var authSessionCookie = "better-auth.session_token"
    /// `POST /api/v1/ws-token` requests per second per client address (burst ten times that); 0 = no limit.
    @Setting(
        "WS_TOKEN_RATE", .integer(0...100_000),
        help: "POST /api/v1/ws-token requests per second per client address (burst 10x); above it 429; 0 = no limit")
    package var wsTokenRate = 2
    /// better-auth calls in flight at once on this instance; above it 503.
    @Setting(
        "AUTH_MAX_IN_FLIGHT", .integer(1...100_000),
        help: "better-auth calls waiting at once; above it POST /api/v1/ws-token answers 503")
    package var authMaxInFlight = 64
    /// Addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names the client (for
    /// per-address pacing of `POST /api/v1/ws-token`).
    @Setting(
        "TRUSTED_PROXIES", .list(Config.addressPrefixes, none: "none"),
        help: "comma list of proxy addresses or CIDR prefixes whose X-Forwarded-For names the client (ws-token pacing)")
    package var trustedProxies: [String] = []
    /// Asked before a join (and before `GET /api/v1/presence`) of a channel the token's `channels`
    /// claim does not list (docs/protocol.md, "Channel access"); nil: not asked.
    @Setting(
        "CHANNEL_AUTH_URL", .optional(Config.httpURL), default: "unset = channels decided by the token's channels claim, else open",
        help: "asked (POST) before a join or presence read of a channel the token's channels claim does not list")
    package var channelAuthURL: String? = nil
    /// Bearer token sent to CHANNEL_AUTH_URL.
    @Setting("CHANNEL_AUTH_TOKEN", .secret(Config.headerValue), help: "bearer token sent to CHANNEL_AUTH_URL")
    package var channelAuthToken: String? = nil
    /// How long an answer is reused per (user, channel); refusals at most 5 s.
    @Setting(
        "CHANNEL_AUTH_CACHE", .duration(0...86_400_000),
        help: "how long an answer is reused per (user, channel); a refusal at most 5s")
    package var channelAuthCacheMillis: Int64 = 60_000
    /// 1: any verified user may join any channel (a single-family install).
    @Setting(
        "CHANNELS_OPEN", .flag,
        help: "1 = any verified user may join any channel (single-family install); ignored with CHANNEL_AUTH_URL")
    package var channelsOpen = false
    /// Bearer token of the server API (docs/protocol.md, "Server API"); nil: no server API.
    @Setting(
        "SERVER_API_TOKEN", .secret(Config.adminToken), default: "unset = no server API",
        help: "bearer token (at least 16 bytes) of POST /api/v1/disconnect, /api/v1/publish and GET /api/v1/presence?user=")
    package var serverAPIToken: String? = nil
    /// Older connections are closed with 4401 (0 = never).
    @Setting(
        "MAX_CONNECTION_AGE", .duration(0...30 * 86_400_000, offOrAtLeast: 1_000), default: "0 = off",
        help: "older connections are closed with 4401 (spread over the last tenth) so clients fetch a fresh token")
    package var maxConnectionAgeMillis: Int64 = 0
    /// Connections per token `sub` on this instance (0 = no cap).
    @Setting(
        "MAX_CONNECTIONS_PER_USER", .integer(0...1_000_000),
        help: "connections per user (token sub) on this instance; above it upgrades get 503; 0 = no cap")
    package var maxConnectionsPerUser = 32
    /// Chat messages kept per channel for recovery (docs/protocol.md, "Recovery and nonces"); 0 = no history (frames then
    /// carry no offset or epoch).
    @Setting(
        "HISTORY_SIZE", .integer(0...100_000),
        help: "chat messages kept per channel for recovery after a reconnect (0-100000); 0 = no history, no offset/epoch")
    package var historySize = 200
    /// A message older than this is no longer recoverable.
    @Setting("HISTORY_TTL", .duration(1_000...7 * 86_400_000), help: "a message older than this is no longer recoverable (1s-7d)")
    package var historyTTLMillis: Int64 = 600_000
    /// How long a sender's nonce is remembered (a repeat is not sent again).
    @Setting(
        "NONCE_WINDOW", .duration(1_000...86_400_000),
        help: "how long a sender's message nonce is remembered: a repeat is answered with the original, not sent again")
    package var nonceWindowMillis: Int64 = 300_000
    @Setting("PRESENCE_TTL", .duration(1_000...86_400_000), help: "presence entry lifetime (1s-24h)")
    package var presenceTTLMillis: Int64 = 30_000
    @Setting("PRESENCE_GRACE", .duration(0...3_600_000), help: "delay before online:false (a quick reconnect does not flap)")
    package var presenceGraceMillis: Int64 = 2_000
    @Setting("PING_INTERVAL", .duration(100...3_600_000), help: "server ping; two missed pongs close the connection")
    package var pingIntervalMillis: Int64 = 25_000
    @Setting("MAX_MESSAGE_BYTES", .integer(125...(1 << 30)), help: "largest WebSocket message; above it close 1009")
    package var maxMessageBytes = 65_536
    /// Per-connection bytes queued for sending before the connection is closed as a slow consumer (4008).
    @Setting(
        "MAX_OUTBOUND_BYTES", .integer(4096...(1 << 30)),
        help: "bytes queued per connection before closing it as a slow consumer (4008)")
    package var maxOutboundBytes = 1 << 20
    @Setting(
        "MESSAGE_RATE", .integer(0...1_000_000),
        help: "client messages per second per connection (burst twice that); 0 = no limit")
    package var messageRate = 20
    @Setting("MAX_CONNECTIONS", .integer(1...100_000_000), help: "above it, upgrades get 503")
    package var maxConnections = 100_000
    /// Open connections one client address may hold across all loops; above it new connections
    /// are closed at accept (0 = no cap).
    @Setting(
        "MAX_CONNECTIONS_PER_IP", .integer(0...100_000_000),
        help:
            "open connections per client address, IPv6 by /64 (set it when clients connect directly, not through a proxy); above it new ones are closed at accept; 0 = no cap"
    )
    package var maxConnectionsPerIP = 0
    /// systemd may pass several directories separated by colons: the first is ours.
    @Setting(
        "STATE_DIRECTORY", .text(Config.firstDirectory, emptyIsUnset: true),
        help: "durable forward queue (Redis mode: messages kept during a Redis outage); must be writable when forwarding (systemd sets it)")
    package var stateDirectory = "./state"
    /// Bounds of each loop's forward queue (FORWARD_QUEUE_MAX entries, FORWARD_QUEUE_MAX_BYTES):
    /// past them chat messages are refused with `unavailable`, never dropped.
    @Setting(
        "FORWARD_QUEUE_MAX", .integer(1...100_000_000),
        help: "entries per loop's forward queue (Redis mode: in the shared stream); past it messages are refused")
    package var forwardQueueMaxEntries = 100_000
    @Setting("FORWARD_QUEUE_MAX_BYTES", .integer(4096...(1 << 40)), help: "bytes per loop's forward queue (embedded mode)")
    package var forwardQueueMaxBytes = 64 << 20
    /// A chat message chat-service answered 5xx this many times becomes a dead letter so its
    /// channel moves on (docs/protocol.md, "Recovery and nonces"); timeouts, connection errors, 408 and 429 do not count.
    @Setting(
        "FORWARD_MAX_ATTEMPTS", .integer(1...1_000_000),
        help:
            "a forward answered 5xx this many times becomes a dead letter (1-1000000); timeouts, connection errors, 408 and 429 never count"
    )
    package var forwardMaxAttempts = 50
    /// Redis mode: a forward-stream entry its instance has not touched for this long (it
    /// crashed) is taken over by another instance; also the reader lease.
    @Setting(
        "FORWARD_CLAIM_IDLE", .duration(300...86_400_000),
        help: "Redis mode: a crashed instance's forwards are taken over after this idle time")
    package var forwardClaimIdleMillis: Int64 = 15_000
    @Setting("LOG_LEVEL", .logLevel, help: "debug, info, warn or error")
    package var logLevel = Log.Level.info
    /// SIGTERM closes every client with 1001 spread over this window, so their reconnects do not
    /// stampede the other instances.
    @Setting("DRAIN_WINDOW", .duration(0...600_000), help: "SIGTERM closes clients with 1001 spread over this window (0-10m)")
    package var drainWindowMillis: Int64 = 5_000
    /// A file of `KEY=VALUE` lines (systemd's EnvironmentFile) re-read on SIGHUP for the token
    /// secrets and ALLOWED_ORIGINS.
    @Setting(
        "ENV_FILE", .optional(Config.readableFile),
        help: "KEY=VALUE file re-read on SIGHUP (token secrets, ALLOWED_ORIGINS); must be readable")
    package var environmentFile: String? = nil
    /// A CA bundle OpenSSL reads itself (checked here so a typo fails the start).
    @Setting(
        "SSL_CERT_FILE", .optional(Config.readableFile, unset: "system CAs"),
        help: "CA bundle (OpenSSL) for rediss:// or https:// services; must be readable")
    package var certificateFile: String? = nil
    /// Whether `POST /api/v1/dev-token` exists (the console's "Try it").
    @Setting(
        "CONSOLE_DEV_TOKENS", .devTokens,
        default: "auto = on in dev mode (no WS_TOKEN_SECRET, loopback, not under systemd) without REDIS_URL",
        help:
            "auto, 1 (dev mode with Redis too) or 0: POST /api/v1/dev-token mints a token for any user, for local requests only (the console's Try it)"
    )
    package var consoleDevTokens = DevTokens.auto
    /// Bearer token of `GET /api/v1/admin/stats` (nil: the route does not exist).
    @Setting(
        "CONSOLE_ADMIN_TOKEN", .secret(Config.adminToken), default: "unset = no instance view",
        help: "bearer token (at least 16 bytes) of GET /api/v1/admin/stats and the console's instance view")
    package var consoleAdminToken: String? = nil

    /// Serve a plain WebSocket echo at `/` (conformance target) instead of the realtime protocol (`--echo`).
    package var echo = false
    package var handshakeTimeoutMillis: Int64 = 10_000
    /// Deadline of one outbound call (better-auth, chat-service): connect, TLS, request, response.
    package var outboundTimeoutMillis: Int64 = 10_000
    /// How long a closing connection may take to deliver what is queued and see the peer's EOF.
    package var closeTimeoutMillis: Int64 = 2_000
    /// How long a Redis command may wait for its reply before the connection counts as broken.
    package var redisTimeoutMillis: Int64 = 2_000
    /// Started by systemd (INVOCATION_ID is set): never a developer's machine.
    package var underSystemd = false
    package var showHelp = false
    package var showVersion = false

    /// CONSOLE_DEV_TOKENS values (docs/protocol.md, "Channel access"): the route exists only in dev mode (no
    /// WS_TOKEN_SECRET, a loopback BIND, not under systemd); `auto` also needs embedded mode,
    /// `1` allows it with REDIS_URL, `0` turns it off.
    package enum DevTokens: String, Sendable { case auto, on = "1", off = "0" }

    /// Whether the dev-token endpoint is served with this configuration.
    package var devTokensEnabled: Bool {
        guard isDevMode else { return false }
        switch consoleDevTokens {
        case .on: return true
        case .off: return false
        case .auto: return redisURL == nil
        }
    }

    /// No WS_TOKEN_SECRET, a loopback BIND and not under systemd: a random secret for this run.
    package var isDevMode: Bool { tokenSecret == nil && !echo && Config.isLoopback(bind) && !underSystemd }

    /// Whether a join of a channel that the token's `channels` claim does not list is decided by
    /// CHANNEL_AUTH_URL (docs/protocol.md, "Channel access"); otherwise such a join is allowed (CHANNELS_OPEN, or tokens
    /// minted by family-hub with the claim).
    package var asksChannelAccess: Bool { channelAuthURL != nil }

    /// Whether a bind address only accepts local connections (dev mode is allowed there).
    package static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address == "[::1]"
    }

    /// The start-up rule for WS_TOKEN_SECRET (docs/operations.md, "Configuration"): unset is allowed only in dev mode
    /// (loopback BIND, not under systemd) and in echo mode; nil when the configuration may start.
    package var tokenSecretProblem: ConfigError? {
        guard tokenSecret == nil, !echo, !isDevMode else { return nil }
        return ConfigError(variable: "WS_TOKEN_SECRET", problem: "required (at least 32 bytes) unless bound to loopback in dev mode")
    }

    /// Rules between variables (docs/protocol.md, "Channel access"), checked once every variable is read.
    package func crossCheck() throws {
        if authServiceURL != nil && channelAuthURL == nil && !channelsOpen {
            throw ConfigError(
                variable: "CHANNEL_AUTH_URL",
                problem:
                    "required with AUTH_SERVICE_URL (its tokens carry no channels claim, so any signed-in user could join any family's channels); set CHANNELS_OPEN=1 for a single-family install"
            )
        }
        if consoleDevTokens == .on && !echo && !isDevMode {
            throw ConfigError(
                variable: "CONSOLE_DEV_TOKENS",
                problem:
                    "1 needs dev mode (no WS_TOKEN_SECRET, a loopback BIND, not under systemd): dev tokens are never served beside a real secret"
            )
        }
    }

    package static func onlineCores() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Reads `environment`, then `arguments` (without the program name): every declared
    /// variable and its flag (a bad value fails with the first bad variable, in declaration
    /// order, else the first bad argument), then `--echo`, `--help`/`-h` and `--version`.
    package static func parse(environment: [String: String], arguments: [String]) throws -> Config {
        let source = ConfigSource(
            environment: environment, arguments: arguments,
            valueFlags: Set(ConfigVariable.all.compactMap(\.flag)),
            switches: ["--echo", "--help", "-h", "--version"])
        var c = ConfigSource.$current.withValue(source) { Config() }
        try source.throwFirstProblem()
        c.underSystemd = environment["INVOCATION_ID"] != nil
        c.echo = source.switchesGiven.contains("--echo")
        c.showHelp = !source.switchesGiven.isDisjoint(with: ["--help", "-h"])
        c.showVersion = source.switchesGiven.contains("--version")
        if c.echo {
            c.maxMessageBytes = max(c.maxMessageBytes, 32 << 20)
            c.maxOutboundBytes = max(c.maxOutboundBytes, 64 << 20)
        }
        try c.crossCheck()
        return c
    }

    /// `presenced --help`: commands, flags, and every declared variable with its default (`ConfigVariable.all`).
    package static var help: String {
        var text = """
            presenced — realtime presence and fan-out daemon (WebSocket, io_uring/epoll)

            usage: presenced [--port N] [--bind ADDR] [--io uring|epoll|auto] [--threads N] [--echo]
                   presenced check-config [flags]   validate the environment and flags, print a summary (exit 0, or 78)
                   presenced token --user ID [--ttl S] [--role R] [--channel C]...
                   presenced dead-letters list | retry [ID]
                   presenced --help | --version

              --port N        listen port (env PORT, default 8082)
              --bind ADDR     listen address (env BIND, default 127.0.0.1)
              --io KIND       event backend: uring, epoll, or auto = io_uring with epoll fallback (env IO_BACKEND)
              --threads N     event-loop threads, one per core by default (env THREADS)
              --echo          serve a plain WebSocket echo at / with no token: the RFC 6455 conformance target

            environment (flags override it; docs/operations.md, "Configuration"):

            """
        let width = ConfigVariable.all.map(\.name.count).max() ?? 0
        for variable in ConfigVariable.all {
            let padding = String(repeating: " ", count: width - variable.name.count)
            text += "  \(variable.name)\(padding)  \(variable.meaning) [default: \(variable.defaultValue)]\n"
        }
        text += """

            Durations accept 500ms, 30s, 2m, 1h or plain seconds. A bad value fails the start with one line
            on stderr naming the variable, exit code 78 (EX_CONFIG).
            """
        return text
    }

    // MARK: Value parsers

    package static func port(_ v: String, _ name: String) throws -> UInt16 {
        guard let p = UInt16(v) else { throw ConfigError(variable: name, problem: "\(shown(v)) is not a port number (0–65535)") }
        return p
    }

    package static func address(_ v: String, _ name: String) throws -> String {
        var storage = sockaddr_storage()
        guard (try? Sockets.fillAddress(v, port: 0, into: &storage)) != nil else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not an IPv4 or IPv6 address")
        }
        return v
    }

    package static func ioChoice(_ v: String, _ name: String) throws -> IOChoice {
        guard let choice = IOChoice(rawValue: v.lowercased()) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not one of uring, epoll, auto")
        }
        return choice
    }

    package static func logLevel(_ v: String, _ name: String) throws -> Log.Level {
        guard let level = Log.Level(name: v) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not one of debug, info, warn, error")
        }
        return level
    }

    package static func devTokens(_ v: String, _ name: String) throws -> DevTokens {
        guard let choice = DevTokens(rawValue: v.lowercased()) else { throw ConfigError(variable: name, problem: "must be auto, 1 or 0") }
        return choice
    }

    /// A `redis://` or `rediss://` URL (kept as given: the password stays in it).
    package static func redisURL(_ v: String, _ name: String) throws -> String {
        do {
            _ = try RedisEndpoint.parse(v)
        } catch {
            throw ConfigError(variable: name, problem: error.message)
        }
        return v
    }

    package static func nonEmpty(_ v: String, _ name: String) throws -> String {
        guard !v.isEmpty else { throw ConfigError(variable: name, problem: "must not be empty") }
        return v
    }

    /// The first of a colon list of directories (systemd's STATE_DIRECTORY may name several).
    package static func firstDirectory(_ v: String, _ name: String) throws -> String {
        guard let first = v.split(separator: ":", omittingEmptySubsequences: false).first, !first.isEmpty else {
            throw ConfigError(variable: name, problem: "\(shown(v)) does not start with a directory")
        }
        return String(first)
    }

    package static func integer(_ v: String, _ name: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(v), range.contains(n) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// `0` or `1`.
    package static func flag(_ v: String, _ name: String) throws -> Bool {
        switch v {
        case "1": return true
        case "0", "": return false
        default: throw ConfigError(variable: name, problem: "\(shown(v)) is not 0 or 1")
        }
    }

    /// A cookie name (an HTTP token).
    package static func cookieName(_ v: String, _ name: String) throws -> String {
        guard !v.isEmpty, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains($0) }) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not a cookie name")
        }
        return v
    }

    /// A comma list of IP addresses or CIDR prefixes (`10.0.0.0/8`, `::1`).
    package static func addressPrefixes(_ v: String, _ name: String) throws -> [String] {
        let entries = v.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        for entry in entries where AddressPrefix(entry) == nil {
            throw ConfigError(variable: name, problem: "\(shown(entry)) is not an IP address or CIDR prefix")
        }
        return entries
    }

    package static func secret(_ v: String, _ name: String) throws -> String {
        guard v.utf8.count >= 32 else { throw ConfigError(variable: name, problem: "must be at least 32 bytes") }
        return v
    }

    /// A bearer token compared against `Authorization` headers: at least 16 bytes of visible
    /// ASCII (no spaces: it travels as `Bearer <token>`). The value is never quoted in the error.
    package static func adminToken(_ v: String, _ name: String) throws -> String {
        guard v.utf8.count >= 16 else { throw ConfigError(variable: name, problem: "must be at least 16 bytes") }
        guard v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigError(variable: name, problem: "must be visible ASCII without spaces (it is sent as a bearer token)")
        }
        return v
    }

    package static func httpURL(_ v: String, _ name: String) throws -> String {
        guard OutboundURL(v) != nil else {
            throw ConfigError(variable: name, problem: "must be an http:// or https:// URL without user info, query or fragment")
        }
        return v.hasSuffix("/") ? String(v.dropLast()) : v
    }

    /// `500ms`, `30s`, `2m`, `1h` or plain seconds, in milliseconds, within `minimum...maximum`.
    package static func duration(_ v: String, _ name: String, minimum: Int64, maximum: Int64) throws -> Int64 {
        let bad = ConfigError(variable: name, problem: "\(shown(v)) is not a duration like 500ms, 30s, 2m or plain seconds")
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var number = Substring(v), factor: Int64 = 1000
        for (suffix, unit) in units where v.hasSuffix(suffix) {
            number = v.dropLast(suffix.count)
            factor = unit
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(number) else { throw bad }
        let product = n.multipliedReportingOverflow(by: factor)
        guard !product.overflow, product.partialValue <= maximum else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is more than \(maximum) ms")
        }
        guard product.partialValue >= minimum else { throw ConfigError(variable: name, problem: "must be at least \(minimum) ms") }
        return product.partialValue
    }

    /// Milliseconds as `check-config` and `--help` show them: whole seconds as `30s`, else `250ms`.
    package static func millis(_ m: Int64) -> String { m % 1000 == 0 ? "\(m / 1000)s" : "\(m)ms" }

    /// A comma list of origins: `*`, `scheme://host[:port]`, or `scheme://*.domain[:port]`
    /// (any subdomain with that scheme). Spaces around entries are ignored; at least one entry.
    package static func origins(_ v: String, _ name: String) throws -> [String] {
        let entries = v.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        guard !entries.isEmpty else { throw ConfigError(variable: name, problem: "lists no origin (use * to allow every origin)") }
        for entry in entries where !isOriginPattern(entry) {
            throw ConfigError(
                variable: name, problem: "\(shown(entry)) is not an origin like https://casa.example.org, https://*.example.org or *")
        }
        return entries
    }

    /// `*`, or `scheme://host[:port]` with an optional `*.` before the host and an optional
    /// trailing `/`, and nothing else (no path, user info, query or fragment).
    package static func isOriginPattern(_ entry: String) -> Bool {
        if entry == "*" { return true }
        let parts = entry.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        // "scheme:", "", "authority" (a trailing "/" leaves an empty fourth part in the authority split).
        guard parts.count == 3, parts[0].hasSuffix(":"), parts[1].isEmpty else { return false }
        let scheme = parts[0].dropLast()
        var authority = parts[2]
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard let first = scheme.first, isASCIILetter(first), scheme.allSatisfy(isSchemeCharacter) else { return false }
        if authority.hasPrefix("*.") { authority = authority.dropFirst(2) }
        var host = authority
        if let colon = authority.lastIndex(of: ":"), !authority.hasPrefix("[") || authority[..<colon].hasSuffix("]") {
            let port = authority[authority.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(isASCIIDigit), let p = Int(port), (1...65535).contains(p) else { return false }
            host = authority[..<colon]
        }
        guard !host.isEmpty else { return false }
        if host.hasPrefix("[") {
            return host.count > 2 && host.hasSuffix("]")
                && host.dropFirst().dropLast().allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        }
        return host.allSatisfy(isHostCharacter) && !host.hasPrefix(".") && !host.hasSuffix(".") && !host.contains("..")
    }

    private static func isASCIILetter(_ c: Character) -> Bool { c.isASCII && c.isLetter }
    private static func isASCIIDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
    private static func isSchemeCharacter(_ c: Character) -> Bool {
        isASCIILetter(c) || isASCIIDigit(c) || c == "+" || c == "-" || c == "."
    }
    private static func isHostCharacter(_ c: Character) -> Bool {
        isASCIILetter(c) || isASCIIDigit(c) || c == "-" || c == "."
    }

    /// A value sent as an HTTP header: visible ASCII and spaces only (no line breaks to inject headers).
    package static func headerValue(_ v: String, _ name: String) throws -> String {
        guard v.utf8.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }) else {
            throw ConfigError(variable: name, problem: "must be printable ASCII (it is sent in an HTTP header)")
        }
        return v
    }

    /// A path that names a readable file (not a directory; `/dev/null` is fine).
    package static func readableFile(_ path: String, _ name: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError(variable: name, problem: "\(shown(path)): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw ConfigError(variable: name, problem: "\(shown(path)) is a directory") }
        guard access(path, R_OK) == 0 else { throw ConfigError(variable: name, problem: "\(shown(path)) is not readable") }
        return path
    }

    /// A value quoted for an error line: control characters escaped, at most 64 characters.
    /// Never used for secrets.
    package static func shown(_ v: String) -> String {
        var out = "\""
        for (i, scalar) in v.unicodeScalars.enumerated() {
            if i == 64 {
                out += "…"
                break
            }
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else if scalar == "\"" || scalar == "\\" {
                out += "\\" + String(scalar)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension Substring {
    package func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
