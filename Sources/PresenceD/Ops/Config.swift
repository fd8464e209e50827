import Glibc
import RedisShim

/// A configuration value that cannot be used: the start fails with one line naming it (exit 78).
struct ConfigError: Error, CustomStringConvertible {
    var variable: String
    var problem: String
    var description: String { "presenced: invalid \(variable): \(problem)" }
}

/// Everything presenced reads at start: environment first, command-line flags override
/// (CONTRACT §2). Parsing is pure so that tests can feed any environment.
struct Config: Sendable {
    enum IOChoice: String, Sendable { case auto, uring, epoll }

    var port: UInt16 = 8082
    var bind = "127.0.0.1"
    var io = IOChoice.auto
    var threads = Config.onlineCores()
    /// Serve a plain WebSocket echo at `/` (conformance target) instead of the realtime protocol.
    var echo = false
    var redisURL: String?
    var tokenSecret: String?
    var tokenSecretPrevious: String?
    var tokenAudience = "presenced"
    var allowedOrigins = ["https://casa.devarno.cloud", "http://localhost:3000"]
    var chatServiceURL: String?
    var chatServiceToken: String?
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
    var stateDirectory = "./state"
    /// Bounds of each loop's forward queue (FORWARD_QUEUE_MAX entries, FORWARD_QUEUE_MAX_BYTES):
    /// past them chat messages are refused with `unavailable`, never dropped.
    var forwardQueueMaxEntries = 100_000
    var forwardQueueMaxBytes = 64 << 20
    /// Redis mode: a forward-stream entry its instance has not touched for this long (it
    /// crashed) is taken over by another instance; also the reader lease (FORWARD_CLAIM_IDLE).
    var forwardClaimIdleMillis: Int64 = 15_000
    var logLevel = Log.Level.info
    /// SIGTERM closes every client with 1001 spread over this window (DRAIN_WINDOW), so their
    /// reconnects do not stampede the other instances.
    var drainWindowMillis: Int64 = 5_000
    /// A file of `KEY=VALUE` lines (systemd's EnvironmentFile) re-read on SIGHUP for the token
    /// secrets and ALLOWED_ORIGINS (ENV_FILE).
    var environmentFile: String?
    var messageRate = 20
    var maxConnections = 100_000
    var showHelp = false
    var showVersion = false

    /// Whether a bind address only accepts local connections (dev mode is allowed there).
    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address == "[::1]"
    }

    static func onlineCores() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Reads `environment`, then `arguments` (without the program name).
    static func parse(environment: [String: String], arguments: [String]) throws -> Config {
        var c = Config()
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
        if let v = env["WS_TOKEN_SECRET"], !v.isEmpty { c.tokenSecret = try secret(v, "WS_TOKEN_SECRET") }
        if let v = env["WS_TOKEN_SECRET_PREVIOUS"], !v.isEmpty { c.tokenSecretPrevious = try secret(v, "WS_TOKEN_SECRET_PREVIOUS") }
        if let v = env["WS_TOKEN_AUDIENCE"] {
            guard !v.isEmpty else { throw ConfigError(variable: "WS_TOKEN_AUDIENCE", problem: "must not be empty") }
            c.tokenAudience = v
        }
        if let v = env["ALLOWED_ORIGINS"] {
            c.allowedOrigins = v.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        }
        if let v = env["CHAT_SERVICE_URL"], !v.isEmpty { c.chatServiceURL = try httpURL(v, "CHAT_SERVICE_URL") }
        if let v = env["CHAT_SERVICE_TOKEN"], !v.isEmpty { c.chatServiceToken = v }
        if let v = env["FORWARD_QUEUE_MAX"] { c.forwardQueueMaxEntries = try integer(v, "FORWARD_QUEUE_MAX", 1...100_000_000) }
        if let v = env["FORWARD_QUEUE_MAX_BYTES"] { c.forwardQueueMaxBytes = try integer(v, "FORWARD_QUEUE_MAX_BYTES", 4096...(1 << 40)) }
        if let v = env["FORWARD_CLAIM_IDLE"] { c.forwardClaimIdleMillis = try duration(v, "FORWARD_CLAIM_IDLE", minimum: 300) }
        if let v = env["AUTH_SERVICE_URL"], !v.isEmpty { c.authServiceURL = try httpURL(v, "AUTH_SERVICE_URL") }
        if let v = env["PRESENCE_TTL"] { c.presenceTTLMillis = try duration(v, "PRESENCE_TTL", minimum: 1000) }
        if let v = env["PRESENCE_GRACE"] { c.presenceGraceMillis = try duration(v, "PRESENCE_GRACE", minimum: 0) }
        if let v = env["PING_INTERVAL"] { c.pingIntervalMillis = try duration(v, "PING_INTERVAL", minimum: 100) }
        if let v = env["MAX_MESSAGE_BYTES"] { c.maxMessageBytes = try integer(v, "MAX_MESSAGE_BYTES", 125...(1 << 30)) }
        if let v = env["MAX_OUTBOUND_BYTES"] { c.maxOutboundBytes = try integer(v, "MAX_OUTBOUND_BYTES", 4096...(1 << 30)) }
        if let v = env["STATE_DIRECTORY"], !v.isEmpty {
            // systemd may pass several directories separated by colons: the first is ours.
            c.stateDirectory = String(v.split(separator: ":").first ?? Substring(v))
        }
        if let v = env["LOG_LEVEL"] {
            guard let level = Log.Level(name: v) else {
                throw ConfigError(variable: "LOG_LEVEL", problem: "\"\(v)\" is not one of debug, info, warn, error")
            }
            c.logLevel = level
        }
        if let v = env["DRAIN_WINDOW"] { c.drainWindowMillis = try duration(v, "DRAIN_WINDOW", minimum: 0) }
        if let v = env["ENV_FILE"], !v.isEmpty { c.environmentFile = v }
        if let v = env["MESSAGE_RATE"] { c.messageRate = try integer(v, "MESSAGE_RATE", 0...1_000_000) }
        if let v = env["MAX_CONNECTIONS"] { c.maxConnections = try integer(v, "MAX_CONNECTIONS", 1...100_000_000) }

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
        return c
    }

    static let help = """
    presenced — realtime presence and fan-out daemon (WebSocket, io_uring/epoll)

    usage: presenced [--port N] [--bind ADDR] [--io uring|epoll|auto] [--threads N] [--echo]
           presenced token --user ID [--ttl S] [--role R] [--channel C]...
           presenced --help | --version

      --port N        listen port (env PORT, default 8082)
      --bind ADDR     listen address (env BIND, default 127.0.0.1)
      --io KIND       event backend: uring, epoll, or auto = io_uring with epoll fallback (env IO_BACKEND)
      --threads N     event-loop threads, one per core by default (env THREADS)
      --echo          serve a plain WebSocket echo at / with no token: the RFC 6455 conformance target

    environment (CONTRACT §2): PORT BIND REDIS_URL WS_TOKEN_SECRET WS_TOKEN_SECRET_PREVIOUS
      WS_TOKEN_AUDIENCE ALLOWED_ORIGINS CHAT_SERVICE_URL CHAT_SERVICE_TOKEN AUTH_SERVICE_URL
      PRESENCE_TTL PRESENCE_GRACE PING_INTERVAL MAX_MESSAGE_BYTES MAX_OUTBOUND_BYTES STATE_DIRECTORY
      LOG_LEVEL MESSAGE_RATE MAX_CONNECTIONS
    also: DRAIN_WINDOW (5s) spreads the 1001 closes of a SIGTERM drain; ENV_FILE names the file
      of KEY=VALUE lines re-read on SIGHUP (WS_TOKEN_SECRET, WS_TOKEN_SECRET_PREVIOUS, ALLOWED_ORIGINS)
    also: FORWARD_QUEUE_MAX (entries, 100000) and FORWARD_QUEUE_MAX_BYTES (67108864) per loop's
      forward queue (Redis mode: FORWARD_QUEUE_MAX bounds the shared stream); FORWARD_CLAIM_IDLE (15s):
      Redis mode, when a crashed instance's forwards are taken over; SSL_CERT_FILE (OpenSSL) for a private CA of rediss:// or https:// services
    Durations accept 500ms, 30s, 2m or plain seconds. A bad value fails the start with exit code 78.
    """

    // MARK: Value parsers

    static func port(_ v: String, _ name: String) throws -> UInt16 {
        guard let p = UInt16(v) else { throw ConfigError(variable: name, problem: "\"\(v)\" is not a port number (0–65535)") }
        return p
    }

    static func address(_ v: String, _ name: String) throws -> String {
        var storage = sockaddr_storage()
        guard (try? Sockets.fillAddress(v, port: 0, into: &storage)) != nil else {
            throw ConfigError(variable: name, problem: "\"\(v)\" is not an IPv4 or IPv6 address")
        }
        return v
    }

    static func ioChoice(_ v: String, _ name: String) throws -> IOChoice {
        guard let choice = IOChoice(rawValue: v.lowercased()) else {
            throw ConfigError(variable: name, problem: "\"\(v)\" is not one of uring, epoll, auto")
        }
        return choice
    }

    static func integer(_ v: String, _ name: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(v), range.contains(n) else {
            throw ConfigError(variable: name, problem: "\"\(v)\" is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    static func secret(_ v: String, _ name: String) throws -> String {
        guard v.utf8.count >= 32 else { throw ConfigError(variable: name, problem: "must be at least 32 bytes") }
        return v
    }

    static func httpURL(_ v: String, _ name: String) throws -> String {
        guard OutboundURL(v) != nil else {
            throw ConfigError(variable: name, problem: "must be an http:// or https:// URL without user info, query or fragment")
        }
        return v.hasSuffix("/") ? String(v.dropLast()) : v
    }

    /// `500ms`, `30s`, `2m`, `1h` or plain seconds, in milliseconds.
    static func duration(_ v: String, _ name: String, minimum: Int64) throws -> Int64 {
        let bad = ConfigError(variable: name, problem: "\"\(v)\" is not a duration like 500ms, 30s, 2m or plain seconds")
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var millis: Int64?
        for (suffix, factor) in units where v.hasSuffix(suffix) {
            let number = v.dropLast(suffix.count)
            if let n = Int64(number), n >= 0 { millis = n * factor }
            break
        }
        if millis == nil, let n = Int64(v), n >= 0 { millis = n * 1000 }
        guard let m = millis else { throw bad }
        guard m >= minimum else { throw ConfigError(variable: name, problem: "must be at least \(minimum) ms") }
        return m
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
