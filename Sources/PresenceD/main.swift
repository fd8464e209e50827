import CSystem
import Glibc
import PresenceLoop
import PresenceOutbound
import PresenceRealtime

/// presenced's entry point: subcommands, configuration, backend choice, loop threads, signals.
enum PresenceDMain {
    /// Why the daemon did not start: one stderr line and the exit code (1, or 78 for a bad configuration).
    struct StartFailure: Error {
        let line: String
        let status: Int32
    }

    static func run() -> Int32 {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let environment = Environment.current()
        if let status = runSubcommand(arguments, environment: environment) { return status }
        do throws(StartFailure) {
            let config = try configuration(environment: environment, arguments: arguments)
            if config.showHelp {
                print(Config.help)
                return 0
            }
            if config.showVersion {
                print("presenced \(BuildInfo.version)")
                return 0
            }
            Log.minimum = config.logLevel
            let signals = blockSignals()
            let fileLimit = Sockets.raiseFileLimit()
            let preferredBackend = try eventBackend(config.io)
            let secret = try tokenSecret(config)
            let mode = try serverMode(config, secret: secret)
            HeapUsage.mapLargeBlocks()
            let inherited = try inheritedListener(environment)
            let (group, backend) = try startLoops(config, mode: mode, backend: preferredBackend, inherited: inherited)
            logModeNotices(config)
            if config.isDevMode { announceDevMode(config, secret: secret, port: group.port) }
            Log.info(
                "listening",
                [
                    "address": inherited == nil ? config.bind : "passed socket (systemd)", "port": "\(group.port)",
                    "io": backend.rawValue, "threads": "\(config.threads)", "mode": config.echo ? "echo" : "realtime",
                    "fd_limit": "\(fileLimit)", "version": BuildInfo.version,
                ])
            var hub: RealtimeHub?
            if case .realtime(let realtime) = mode { hub = realtime }
            return ProcessSupervisor(
                config: config, environment: environment, arguments: arguments, group: group, hub: hub,
                secret: secret
            ).run(signals: signals)
        } catch {
            FileOutput.stderr(error.line)
            return error.status
        }
    }

    /// `token`, `check-config` and `dead-letters` (each gets the arguments after its word); nil
    /// for the daemon itself.
    private static func runSubcommand(_ arguments: [String], environment: [String: String]) -> Int32? {
        let rest = Array(arguments.dropFirst())
        let output: (String) -> Void = { print($0) }
        let errorOutput: (String) -> Void = { FileOutput.stderr($0) }
        switch arguments.first {
        case "token": return TokenCommand.run(arguments: rest, environment: environment, output: output, errorOutput: errorOutput)
        case "check-config":
            return CheckConfigCommand.run(arguments: rest, environment: environment, output: output, errorOutput: errorOutput)
        case "dead-letters":
            return DeadLettersCommand.run(arguments: rest, environment: environment, output: output, errorOutput: errorOutput)
        default: return nil
        }
    }

    /// The configuration, or its one error line with exit 78.
    private static func configuration(environment: [String: String], arguments: [String]) throws(StartFailure) -> Config {
        do {
            return try Config.parse(environment: environment, arguments: arguments)
        } catch {
            throw StartFailure(line: "\(error)", status: CheckConfigCommand.configError)
        }
    }

    /// Ignores SIGPIPE and SIGXFSZ, and blocks SIGTERM, SIGINT and SIGHUP in every thread to
    /// come (the supervisor waits for them): the blocked set.
    private static func blockSignals() -> sigset_t {
        signal(SIGPIPE, SIG_IGN)
        // A file size limit reached (RLIMIT_FSIZE) must fail the write (EFBIG: the forward queue
        // refuses the message), not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        return signals
    }

    /// IO_BACKEND: io_uring when asked for and available (exit 1 when asked for and not), epoll,
    /// or with `auto` io_uring when the kernel allows it.
    private static func eventBackend(_ choice: Config.IOChoice) throws(StartFailure) -> IOBackendKind {
        switch choice {
        case .epoll: return .epoll
        case .uring:
            if let reason = UringBackend.probe() {
                throw StartFailure(
                    line: "presenced: io_uring is unavailable here (\(reason)); start with --io=epoll or --io=auto", status: 1)
            }
            return .uring
        case .auto:
            guard let reason = UringBackend.probe() else { return .uring }
            Log.warn("io_uring unavailable, using epoll", ["reason": reason])
            return .epoll
        }
    }

    /// The token secret: configured, or a random one for this run in dev mode and echo mode;
    /// without one elsewhere, exit 78 (``Config/tokenSecretProblem``).
    private static func tokenSecret(_ config: Config) throws(StartFailure) -> String {
        if let problem = config.tokenSecretProblem { throw StartFailure(line: "\(problem)", status: CheckConfigCommand.configError) }
        return config.tokenSecret ?? RequestID.make() + RequestID.make()
    }

    /// What every loop serves: the echo target, or the realtime hub. The hub's only failure at
    /// start is the forward queue's state directory (made and locked here); anything else says
    /// its own text.
    private static func serverMode(_ config: Config, secret: String) throws(StartFailure) -> ServerAssembly.Mode {
        guard !config.echo else { return .echo }
        do {
            return .realtime(try DaemonAssembly.makeHub(config: config, secret: secret))
        } catch {
            guard case .io = error else { throw StartFailure(line: "presenced: cannot start: \(error)", status: 1) }
            throw StartFailure(line: "presenced: cannot use STATE_DIRECTORY \(config.stateDirectory): \(error)", status: 1)
        }
    }

    /// The listening socket systemd passed (socket activation), or nil to open our own.
    private static func inheritedListener(_ environment: [String: String]) throws(StartFailure) -> Int32? {
        do {
            return try SocketActivation.listener(environment: environment)
        } catch {
            throw StartFailure(line: "presenced: cannot start: \(error)", status: 1)
        }
    }

    /// Starts the loops on `backend`; with IO_BACKEND=auto, io_uring loops that cannot start
    /// (the probe's small ring worked, a loop's full ring did not: RLIMIT_MEMLOCK, …) are
    /// replaced by epoll loops. The running group and its backend.
    private static func startLoops(
        _ config: Config, mode: ServerAssembly.Mode, backend: IOBackendKind,
        inherited: Int32?
    ) throws(StartFailure) -> (LoopGroup, IOBackendKind) {
        func start(_ backend: IOBackendKind) throws -> LoopGroup {
            let group =
                try inherited.map { try LoopGroup(threads: config.threads, backend: backend, inherited: $0) }
                ?? LoopGroup(threads: config.threads, backend: backend, address: config.bind, port: config.port)
            do {
                try group.start(connectionsPerIP: .make(limit: config.maxConnectionsPerIP)) { loop in
                    ServerAssembly.make(config: config, mode: mode, loop: loop)
                }
            } catch {
                group.join()
                throw error
            }
            return group
        }
        do {
            return (try start(backend), backend)
        } catch let error as LoopGroupError where config.io == .auto && backend == .uring {
            Log.warn("io_uring loops could not start, using epoll", ["reason": error.message])
            do {
                return (try start(.epoll), .epoll)
            } catch {
                throw StartFailure(line: "presenced: cannot start: \(error)", status: 1)
            }
        } catch {
            throw StartFailure(line: "presenced: cannot start: \(error)", status: 1)
        }
    }

    /// One log line for each choice an operator should know about: embedded mode, no
    /// forwarding, CHANNELS_OPEN overridden, dev tokens served.
    private static func logModeNotices(_ config: Config) {
        guard !config.echo else { return }
        if config.redisURL == nil {
            Log.warn("REDIS_URL is not set: embedded single-instance mode (presence and fan-out in this process only)")
        }
        if config.chatServiceURL == nil {
            Log.info("CHAT_SERVICE_URL is not set: chat messages are not forwarded for storage")
        }
        if config.channelAuthURL != nil && config.channelsOpen {
            Log.warn("CHANNELS_OPEN=1 is ignored: CHANNEL_AUTH_URL decides every join", ["variable": "CHANNELS_OPEN"])
        }
        if config.devTokensEnabled {
            Log.warn(
                "dev tokens are on: anyone who reaches this port can connect as any user",
                ["variable": "CONSOLE_DEV_TOKENS", "endpoint": "POST /api/v1/dev-token"])
        }
    }

    /// Dev mode: a warning, and on stderr a ready-to-use token URL for user "dev" signed with this
    /// run's random secret.
    private static func announceDevMode(_ config: Config, secret: String, port: UInt16) {
        Log.warn("DEV MODE: WS_TOKEN_SECRET is not set; using a random secret for this run only")
        let dev = TokenMinter(secret: secret, audience: config.tokenAudience).mint(userID: "dev", ttl: 300, now: UnixTime.now())
        FileOutput.stderr(
            """
            presenced dev mode: a single-use token for user "dev", valid 300 s:
              ws://\(config.bind):\(port)/ws?token=\(dev.token)
            mint more with: WS_TOKEN_SECRET=<secret> presenced token --user NAME (set WS_TOKEN_SECRET to keep tokens valid across restarts)
            """)
    }
}

/// The process environment as a dictionary.
enum Environment {
    static func current() -> [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { result[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return result
    }
}

/// Plain lines on stderr (start-up failures: one line each).
enum FileOutput {
    static func stderr(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}

exit(PresenceDMain.run())
