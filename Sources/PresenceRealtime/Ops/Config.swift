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
package struct Config: Sendable {
    package enum IOChoice: String, Sendable { case auto, uring, epoll }

    package var port: UInt16 = 8082
    package var bind = "127.0.0.1"
    package var io = IOChoice.auto
    package var threads = Config.onlineCores()
    /// Serve a plain WebSocket echo at `/` (conformance target) instead of the realtime protocol.
    package var echo = false
    package var redisURL: String?
    package var tokenSecret: String?
    var tokenSecretPrevious: String?
    package var tokenAudience = "presenced"
    var allowedOrigins = ["https://casa.devarno.cloud", "http://localhost:3000"]
    package var chatServiceURL: String?
    package var chatServiceToken: String?
    var authServiceURL: String?
    var presenceTTLMillis: Int64 = 30_000
    var presenceGraceMillis: Int64 = 2_000
    var pingIntervalMillis: Int64 = 25_000
    var handshakeTimeoutMillis: Int64 = 10_000
    /// Deadline of one outbound call (better-auth, chat-service): connect, TLS, request, response.
    var outboundTimeoutMillis: Int64 = 10_000
    /// How long a closing connection may take to deliver what is queued and see the peer's EOF.
    var closeTimeoutMillis: Int64 = 2_000
    /// How long a Redis command may wait for its reply before the connection counts as broken.
    var redisTimeoutMillis: Int64 = 2_000
    var maxMessageBytes = 65_536
    /// Per-connection bytes queued for sending before the connection is closed as a slow consumer (4008).
    var maxOutboundBytes = 1 << 20
    package var stateDirectory = "./state"
    /// Bounds of each loop's forward queue (FORWARD_QUEUE_MAX entries, FORWARD_QUEUE_MAX_BYTES):
    /// past them chat messages are refused with `unavailable`, never dropped.
    package var forwardQueueMaxEntries = 100_000
    package var forwardQueueMaxBytes = 64 << 20
    /// Redis mode: a forward-stream entry its instance has not touched for this long (it
    /// crashed) is taken over by another instance; also the reader lease (FORWARD_CLAIM_IDLE).
    package var forwardClaimIdleMillis: Int64 = 15_000
    /// A chat message chat-service answered 5xx this many times becomes a dead letter so its
    /// channel moves on (FORWARD_MAX_ATTEMPTS,
    /// docs/operations.md, "Forward queue and dead letters"); timeouts, connection errors, 408 and
    /// 429 do not count.
    package var forwardMaxAttempts = 50
    package var logLevel = Log.Level.info
    /// SIGTERM closes every client with 1001 spread over this window (DRAIN_WINDOW), so their
    /// reconnects do not stampede the other instances.
    var drainWindowMillis: Int64 = 5_000
    /// A file of `KEY=VALUE` lines (systemd's EnvironmentFile) re-read on SIGHUP for the token
    /// secrets and ALLOWED_ORIGINS (ENV_FILE).
    var environmentFile: String?
    /// SSL_CERT_FILE: a CA bundle OpenSSL reads itself (checked here so a typo fails the start).
    var certificateFile: String?
    var messageRate = 20
    var maxConnections = 100_000
    /// Open connections one client address may hold across all loops; above it new connections
    /// are closed at accept (MAX_CONNECTIONS_PER_IP, 0 = no cap).
    package var maxConnectionsPerIP = 0
    /// CONSOLE_DEV_TOKENS: whether `POST /api/v1/dev-token` exists (the console's "Try it").
    var consoleDevTokens = DevTokens.auto
    /// CONSOLE_ADMIN_TOKEN: bearer token of `GET /api/v1/admin/stats` (nil: the route does not exist).
    var consoleAdminToken: String?
    /// CHANNEL_AUTH_URL: asked before a join (and before `GET /api/v1/presence`) of a channel the
    /// token's `channels` claim does not list (docs/operations.md, "Channel access"); nil: not
    /// asked.
    package var channelAuthURL: String?
    /// CHANNEL_AUTH_TOKEN: bearer token sent to CHANNEL_AUTH_URL.
    var channelAuthToken: String?
    /// CHANNEL_AUTH_CACHE: how long an answer is reused per (user, channel); refusals at most 5 s.
    var channelAuthCacheMillis: Int64 = 60_000
    /// CHANNELS_OPEN=1: any verified user may join any channel (a single-family install).
    package var channelsOpen = false
    /// SERVER_API_TOKEN: bearer token of the server API (docs/operations.md, "Server API"); nil: no
    /// server API.
    var serverAPIToken: String?
    /// MAX_CONNECTION_AGE: older connections are closed with 4401 (0 = never).
    var maxConnectionAgeMillis: Int64 = 0
    /// MAX_CONNECTIONS_PER_USER: connections per token `sub` on this instance (0 = no cap).
    var maxConnectionsPerUser = 32
    /// AUTH_SESSION_COOKIE: the better-auth session cookie; `POST /api/v1/ws-token` asks
    /// better-auth only when it is present (also under its `__Secure-` name).
    var authSessionCookie = "better-auth.session_token"
    /// WS_TOKEN_RATE: `POST /api/v1/ws-token` requests per second per client address (burst ten
    /// times that); 0 = no limit.
    var wsTokenRate = 2
    /// AUTH_MAX_IN_FLIGHT: better-auth calls in flight at once on this instance; above it 503.
    var authMaxInFlight = 64
    /// TRUSTED_PROXIES: addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names
    /// the client (for per-address pacing of `POST /api/v1/ws-token`).
    var trustedProxies: [String] = []
    /// HISTORY_SIZE: chat messages kept per channel for recovery
    /// (docs/operations.md, "Delivery: recovery and nonces"); 0 = no history (frames then carry no
    /// offset or epoch).
    var historySize = 200
    /// HISTORY_TTL: a message older than this is no longer recoverable.
    var historyTTLMillis: Int64 = 600_000
    /// NONCE_WINDOW: how long a sender's nonce is remembered (a repeat is not sent again).
    var nonceWindowMillis: Int64 = 300_000
    /// Started by systemd (INVOCATION_ID is set): never a developer's machine.
    var underSystemd = false
    package var showHelp = false
    package var showVersion = false

    /// CONSOLE_DEV_TOKENS values (docs/operations.md, "Console"): the route exists only in dev mode
    /// (no WS_TOKEN_SECRET, a loopback BIND, not under systemd); `auto` also needs embedded mode,
    /// `1` allows it with REDIS_URL, `0` turns it off.
    enum DevTokens: String, Sendable { case auto, on = "1", off = "0" }

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
    /// CHANNEL_AUTH_URL (docs/operations.md, "Channel access"); otherwise such a join is allowed
    /// (CHANNELS_OPEN, or tokens minted by family-hub with the claim).
    var asksChannelAccess: Bool { channelAuthURL != nil }

    /// Whether a bind address only accepts local connections (dev mode is allowed there).
    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address == "[::1]"
    }

    /// The start-up rule for WS_TOKEN_SECRET (docs/operations.md, "Configuration"): unset is
    /// allowed only in dev mode (loopback BIND, not under systemd) and in echo mode; nil when the
    /// configuration may start.
    package var tokenSecretProblem: ConfigError? {
        guard tokenSecret == nil, !echo, !isDevMode else { return nil }
        return ConfigError(variable: "WS_TOKEN_SECRET", problem: "required (at least 32 bytes) unless bound to loopback in dev mode")
    }

    /// Rules between variables (docs/operations.md, "Channel access"), checked once every variable
    /// is read.
    func crossCheck() throws {
        if authServiceURL != nil && channelAuthURL == nil && !channelsOpen {
            throw ConfigError(variable: "CHANNEL_AUTH_URL",
                              problem: "required with AUTH_SERVICE_URL (its tokens carry no channels claim, so any signed-in user could join any family's channels); set CHANNELS_OPEN=1 for a single-family install")
        }
        if consoleDevTokens == .on && !echo && !isDevMode {
            throw ConfigError(variable: "CONSOLE_DEV_TOKENS",
                              problem: "1 needs dev mode (no WS_TOKEN_SECRET, a loopback BIND, not under systemd): dev tokens are never served beside a real secret")
        }
    }

    static func onlineCores() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Reads `environment`, then `arguments` (without the program name).
    package static func parse(environment: [String: String], arguments: [String]) throws -> Config {
        var c = Config()
        c.underSystemd = environment["INVOCATION_ID"] != nil
        let env = environment
        if let v = env["PORT"] { c.port = try port(v, "PORT") }
        if let v = env["BIND"] { c.bind = try address(v, "BIND") }
        if let v = env["IO_BACKEND"] { c.io = try ioChoice(v, "IO_BACKEND") }
        if let v = env["THREADS"] { c.threads = try integer(v, "THREADS", 1...1024) }
        if let v = env["REDIS_URL"], !v.isEmpty {
            do {
                _ = try RedisEndpoint.parse(v)
            } catch {
                throw ConfigError(variable: "REDIS_URL", problem: error.message)
            }
            c.redisURL = v
        }
        // Set but empty is a mistake (an unfilled template line), not dev mode: too short.
        if let v = env["WS_TOKEN_SECRET"] { c.tokenSecret = try secret(v, "WS_TOKEN_SECRET") }
        if let v = env["WS_TOKEN_SECRET_PREVIOUS"], !v.isEmpty { c.tokenSecretPrevious = try secret(v, "WS_TOKEN_SECRET_PREVIOUS") }
        if let v = env["WS_TOKEN_AUDIENCE"] {
            guard !v.isEmpty else { throw ConfigError(variable: "WS_TOKEN_AUDIENCE", problem: "must not be empty") }
            c.tokenAudience = v
        }
        if let v = env["ALLOWED_ORIGINS"] { c.allowedOrigins = try origins(v, "ALLOWED_ORIGINS") }
        if let v = env["CHAT_SERVICE_URL"], !v.isEmpty { c.chatServiceURL = try httpURL(v, "CHAT_SERVICE_URL") }
        if let v = env["CHAT_SERVICE_TOKEN"], !v.isEmpty { c.chatServiceToken = try headerValue(v, "CHAT_SERVICE_TOKEN") }
        if let v = env["FORWARD_QUEUE_MAX"] { c.forwardQueueMaxEntries = try integer(v, "FORWARD_QUEUE_MAX", 1...100_000_000) }
        if let v = env["FORWARD_QUEUE_MAX_BYTES"] { c.forwardQueueMaxBytes = try integer(v, "FORWARD_QUEUE_MAX_BYTES", 4096...(1 << 40)) }
        if let v = env["FORWARD_MAX_ATTEMPTS"] { c.forwardMaxAttempts = try integer(v, "FORWARD_MAX_ATTEMPTS", 1...1_000_000) }
        if let v = env["FORWARD_CLAIM_IDLE"] { c.forwardClaimIdleMillis = try duration(v, "FORWARD_CLAIM_IDLE", minimum: 300) }
        if let v = env["AUTH_SERVICE_URL"], !v.isEmpty { c.authServiceURL = try httpURL(v, "AUTH_SERVICE_URL") }
        if let v = env["PRESENCE_TTL"] { c.presenceTTLMillis = try duration(v, "PRESENCE_TTL", minimum: 1000, maximum: 86_400_000) }
        if let v = env["PRESENCE_GRACE"] { c.presenceGraceMillis = try duration(v, "PRESENCE_GRACE", minimum: 0, maximum: 3_600_000) }
        if let v = env["PING_INTERVAL"] { c.pingIntervalMillis = try duration(v, "PING_INTERVAL", minimum: 100, maximum: 3_600_000) }
        if let v = env["MAX_MESSAGE_BYTES"] { c.maxMessageBytes = try integer(v, "MAX_MESSAGE_BYTES", 125...(1 << 30)) }
        if let v = env["MAX_OUTBOUND_BYTES"] { c.maxOutboundBytes = try integer(v, "MAX_OUTBOUND_BYTES", 4096...(1 << 30)) }
        if let v = env["STATE_DIRECTORY"], !v.isEmpty {
            // systemd may pass several directories separated by colons: the first is ours.
            guard let first = v.split(separator: ":", omittingEmptySubsequences: false).first, !first.isEmpty else {
                throw ConfigError(variable: "STATE_DIRECTORY", problem: "\(shown(v)) does not start with a directory")
            }
            c.stateDirectory = String(first)
        }
        if let v = env["LOG_LEVEL"] {
            guard let level = Log.Level(name: v) else {
                throw ConfigError(variable: "LOG_LEVEL", problem: "\(shown(v)) is not one of debug, info, warn, error")
            }
            c.logLevel = level
        }
        if let v = env["DRAIN_WINDOW"] { c.drainWindowMillis = try duration(v, "DRAIN_WINDOW", minimum: 0, maximum: 600_000) }
        if let v = env["ENV_FILE"], !v.isEmpty { c.environmentFile = try readableFile(v, "ENV_FILE") }
        if let v = env["SSL_CERT_FILE"], !v.isEmpty { c.certificateFile = try readableFile(v, "SSL_CERT_FILE") }
        if let v = env["MESSAGE_RATE"] { c.messageRate = try integer(v, "MESSAGE_RATE", 0...1_000_000) }
        if let v = env["MAX_CONNECTIONS"] { c.maxConnections = try integer(v, "MAX_CONNECTIONS", 1...100_000_000) }
        if let v = env["MAX_CONNECTIONS_PER_IP"] { c.maxConnectionsPerIP = try integer(v, "MAX_CONNECTIONS_PER_IP", 0...100_000_000) }
        if let v = env["CONSOLE_DEV_TOKENS"] {
            guard let choice = DevTokens(rawValue: v.lowercased()) else {
                throw ConfigError(variable: "CONSOLE_DEV_TOKENS", problem: "must be auto, 1 or 0")
            }
            c.consoleDevTokens = choice
        }
        if let v = env["CONSOLE_ADMIN_TOKEN"], !v.isEmpty { c.consoleAdminToken = try adminToken(v, "CONSOLE_ADMIN_TOKEN") }
        if let v = env["CHANNEL_AUTH_URL"], !v.isEmpty { c.channelAuthURL = try httpURL(v, "CHANNEL_AUTH_URL") }
        if let v = env["CHANNEL_AUTH_TOKEN"], !v.isEmpty { c.channelAuthToken = try headerValue(v, "CHANNEL_AUTH_TOKEN") }
        if let v = env["CHANNEL_AUTH_CACHE"] { c.channelAuthCacheMillis = try duration(v, "CHANNEL_AUTH_CACHE", minimum: 0, maximum: 86_400_000) }
        if let v = env["CHANNELS_OPEN"] { c.channelsOpen = try flag(v, "CHANNELS_OPEN") }
        if let v = env["SERVER_API_TOKEN"], !v.isEmpty { c.serverAPIToken = try adminToken(v, "SERVER_API_TOKEN") }
        if let v = env["MAX_CONNECTION_AGE"] { c.maxConnectionAgeMillis = try duration(v, "MAX_CONNECTION_AGE", minimum: 0, maximum: 30 * 86_400_000) }
        if c.maxConnectionAgeMillis > 0 && c.maxConnectionAgeMillis < 1_000 {
            throw ConfigError(variable: "MAX_CONNECTION_AGE", problem: "must be 0 (off) or at least 1s")
        }
        if let v = env["MAX_CONNECTIONS_PER_USER"] { c.maxConnectionsPerUser = try integer(v, "MAX_CONNECTIONS_PER_USER", 0...1_000_000) }
        if let v = env["AUTH_SESSION_COOKIE"] { c.authSessionCookie = try cookieName(v, "AUTH_SESSION_COOKIE") }
        if let v = env["WS_TOKEN_RATE"] { c.wsTokenRate = try integer(v, "WS_TOKEN_RATE", 0...100_000) }
        if let v = env["AUTH_MAX_IN_FLIGHT"] { c.authMaxInFlight = try integer(v, "AUTH_MAX_IN_FLIGHT", 1...100_000) }
        if let v = env["TRUSTED_PROXIES"] { c.trustedProxies = try addressPrefixes(v, "TRUSTED_PROXIES") }
        if let v = env["HISTORY_SIZE"] { c.historySize = try integer(v, "HISTORY_SIZE", 0...100_000) }
        if let v = env["HISTORY_TTL"] { c.historyTTLMillis = try duration(v, "HISTORY_TTL", minimum: 1_000, maximum: 7 * 86_400_000) }
        if let v = env["NONCE_WINDOW"] { c.nonceWindowMillis = try duration(v, "NONCE_WINDOW", minimum: 1_000, maximum: 86_400_000) }

        var i = 0
        func value(_ flag: String) throws -> String {
            if let eq = arguments[i].firstIndex(of: "=") { return String(arguments[i][arguments[i].index(after: eq)...]) }
            i += 1
            guard i < arguments.count else { throw ConfigError(variable: flag, problem: "needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            let arg = arguments[i]
            let name = arg.split(separator: "=", maxSplits: 1).first.map(String.init) ?? arg
            switch name {
            case "--port": c.port = try port(try value("--port"), "--port")
            case "--bind": c.bind = try address(try value("--bind"), "--bind")
            case "--io": c.io = try ioChoice(try value("--io"), "--io")
            case "--threads": c.threads = try integer(try value("--threads"), "--threads", 1...1024)
            case "--echo": c.echo = true
            case "--help", "-h": c.showHelp = true
            case "--version": c.showVersion = true
            default: throw ConfigError(variable: arg, problem: "unknown option (see presenced --help)")
            }
            i += 1
        }
        if c.echo { c.maxMessageBytes = max(c.maxMessageBytes, 32 << 20); c.maxOutboundBytes = max(c.maxOutboundBytes, 64 << 20) }
        try c.crossCheck()
        return c
    }

    /// `presenced --help`: commands, flags, and every variable with its default (`ConfigVariable.all`).
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

    static func port(_ v: String, _ name: String) throws -> UInt16 {
        guard let p = UInt16(v) else { throw ConfigError(variable: name, problem: "\(shown(v)) is not a port number (0–65535)") }
        return p
    }

    static func address(_ v: String, _ name: String) throws -> String {
        var storage = sockaddr_storage()
        guard (try? Sockets.fillAddress(v, port: 0, into: &storage)) != nil else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not an IPv4 or IPv6 address")
        }
        return v
    }

    static func ioChoice(_ v: String, _ name: String) throws -> IOChoice {
        guard let choice = IOChoice(rawValue: v.lowercased()) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not one of uring, epoll, auto")
        }
        return choice
    }

    static func integer(_ v: String, _ name: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(v), range.contains(n) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// `0` or `1`.
    static func flag(_ v: String, _ name: String) throws -> Bool {
        switch v {
        case "1": return true
        case "0", "": return false
        default: throw ConfigError(variable: name, problem: "\(shown(v)) is not 0 or 1")
        }
    }

    /// A cookie name (an HTTP token).
    static func cookieName(_ v: String, _ name: String) throws -> String {
        guard !v.isEmpty, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains($0) }) else {
            throw ConfigError(variable: name, problem: "\(shown(v)) is not a cookie name")
        }
        return v
    }

    /// A comma list of IP addresses or CIDR prefixes (`10.0.0.0/8`, `::1`).
    static func addressPrefixes(_ v: String, _ name: String) throws -> [String] {
        let entries = v.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        for entry in entries where AddressPrefix(entry) == nil {
            throw ConfigError(variable: name, problem: "\(shown(entry)) is not an IP address or CIDR prefix")
        }
        return entries
    }

    static func secret(_ v: String, _ name: String) throws -> String {
        guard v.utf8.count >= 32 else { throw ConfigError(variable: name, problem: "must be at least 32 bytes") }
        return v
    }

    /// A bearer token compared against `Authorization` headers: at least 16 bytes of visible
    /// ASCII (no spaces: it travels as `Bearer <token>`). The value is never quoted in the error.
    static func adminToken(_ v: String, _ name: String) throws -> String {
        guard v.utf8.count >= 16 else { throw ConfigError(variable: name, problem: "must be at least 16 bytes") }
        guard v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigError(variable: name, problem: "must be visible ASCII without spaces (it is sent as a bearer token)")
        }
        return v
    }

    static func httpURL(_ v: String, _ name: String) throws -> String {
        guard OutboundURL(v) != nil else {
            throw ConfigError(variable: name, problem: "must be an http:// or https:// URL without user info, query or fragment")
        }
        return v.hasSuffix("/") ? String(v.dropLast()) : v
    }

    /// `500ms`, `30s`, `2m`, `1h` or plain seconds, in milliseconds, within `minimum...maximum`.
    static func duration(_ v: String, _ name: String, minimum: Int64, maximum: Int64 = 86_400_000) throws -> Int64 {
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

    /// A comma list of origins: `*`, `scheme://host[:port]`, or `scheme://*.domain[:port]`
    /// (any subdomain with that scheme). Spaces around entries are ignored; at least one entry.
    static func origins(_ v: String, _ name: String) throws -> [String] {
        let entries = v.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        guard !entries.isEmpty else { throw ConfigError(variable: name, problem: "lists no origin (use * to allow every origin)") }
        for entry in entries where !isOriginPattern(entry) {
            throw ConfigError(variable: name, problem: "\(shown(entry)) is not an origin like https://casa.example.org, https://*.example.org or *")
        }
        return entries
    }

    /// `*`, or `scheme://host[:port]` with an optional `*.` before the host and an optional
    /// trailing `/`, and nothing else (no path, user info, query or fragment).
    static func isOriginPattern(_ entry: String) -> Bool {
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
    static func headerValue(_ v: String, _ name: String) throws -> String {
        guard v.utf8.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }) else {
            throw ConfigError(variable: name, problem: "must be printable ASCII (it is sent in an HTTP header)")
        }
        return v
    }

    /// A path that names a readable file (not a directory; `/dev/null` is fine).
    static func readableFile(_ path: String, _ name: String) throws -> String {
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
            if i == 64 { out += "…"; break }
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
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
