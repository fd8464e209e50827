import CSystem
import Glibc
import PresenceLoop
import PresenceOutbound
import PresenceRealtime

/// presenced's entry point: configuration, backend choice, loop threads, signals.
enum PresenceDMain {
    static func run() -> Int32 {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let environment = Environment.current()
        if arguments.first == "token" {
            return TokenCommand.run(arguments: Array(arguments.dropFirst()), environment: environment,
                                    output: { print($0) }, errorOutput: { FileOutput.stderr($0) })
        }
        if arguments.first == "check-config" {
            return CheckConfigCommand.run(arguments: Array(arguments.dropFirst()), environment: environment,
                                          output: { print($0) }, errorOutput: { FileOutput.stderr($0) })
        }
        if arguments.first == "dead-letters" {
            return DeadLettersCommand.run(arguments: Array(arguments.dropFirst()), environment: environment,
                                          output: { print($0) }, errorOutput: { FileOutput.stderr($0) })
        }
        let config: Config
        do {
            config = try Config.parse(environment: environment, arguments: arguments)
        } catch {
            FileOutput.stderr("\(error)")
            return 78
        }
        if config.showHelp { print(Config.help); return 0 }
        if config.showVersion { print("presenced \(BuildInfo.version)"); return 0 }
        Log.minimum = config.logLevel

        signal(SIGPIPE, SIG_IGN)
        // A file size limit reached (RLIMIT_FSIZE) must fail the write (EFBIG: the forward queue
        // refuses the message), not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let fileLimit = Sockets.raiseFileLimit()
        var backend: IOBackendKind
        switch config.io {
        case .epoll: backend = .epoll
        case .uring:
            if let reason = UringBackend.probe() {
                FileOutput.stderr("presenced: io_uring is unavailable here (\(reason)); start with --io=epoll or --io=auto")
                return 1
            }
            backend = .uring
        case .auto:
            if let reason = UringBackend.probe() {
                Log.warn("io_uring unavailable, using epoll", ["reason": reason])
                backend = .epoll
            } else {
                backend = .uring
            }
        }

        // The token secret: configured, or a random one in dev mode (loopback, not under systemd).
        var devSecret = false
        let secret: String
        if let configured = config.tokenSecret {
            secret = configured
        } else if config.echo || config.isDevMode {
            secret = RequestID.make() + RequestID.make()
            devSecret = !config.echo
        } else {
            FileOutput.stderr("presenced: invalid WS_TOKEN_SECRET: required (at least 32 bytes) unless bound to loopback in dev mode")
            return 78
        }
        let mode: ServerAssembly.Mode
        do {
            mode = config.echo ? .echo : .realtime(try DaemonAssembly.makeHub(config: config, secret: secret))
        } catch {
            FileOutput.stderr("presenced: cannot use STATE_DIRECTORY \(config.stateDirectory): \(error)")
            return 1
        }

        HeapUsage.mapLargeBlocks()
        let inherited: Int32?
        do {
            inherited = try SocketActivation.listener(environment: environment)
        } catch {
            FileOutput.stderr("presenced: cannot start: \(error)")
            return 1
        }
        func startLoops(_ backend: IOBackendKind) throws -> LoopGroup {
            let group = try inherited.map { try LoopGroup(threads: config.threads, backend: backend, inherited: $0) }
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
        var group: LoopGroup
        do {
            group = try startLoops(backend)
        } catch let error as LoopGroupError where config.io == .auto && backend == .uring {
            // The probe's small ring worked but a loop's full ring did not (RLIMIT_MEMLOCK, …).
            Log.warn("io_uring loops could not start, using epoll", ["reason": error.message])
            backend = .epoll
            do {
                group = try startLoops(.epoll)
            } catch {
                FileOutput.stderr("presenced: cannot start: \(error)")
                return 1
            }
        } catch {
            FileOutput.stderr("presenced: cannot start: \(error)")
            return 1
        }
        if !config.echo && config.redisURL == nil {
            Log.warn("REDIS_URL is not set: embedded single-instance mode (presence and fan-out in this process only)")
        }
        if !config.echo && config.chatServiceURL == nil {
            Log.info("CHAT_SERVICE_URL is not set: chat messages are not forwarded for storage")
        }
        if !config.echo && config.channelAuthURL != nil && config.channelsOpen {
            Log.warn("CHANNELS_OPEN=1 is ignored: CHANNEL_AUTH_URL decides every join", ["variable": "CHANNELS_OPEN"])
        }
        if !config.echo && config.devTokensEnabled {
            Log.warn("dev tokens are on: anyone who reaches this port can connect as any user",
                     ["variable": "CONSOLE_DEV_TOKENS", "endpoint": "POST /api/v1/dev-token"])
        }
        if devSecret {
            Log.warn("DEV MODE: WS_TOKEN_SECRET is not set; using a random secret for this run only")
            let dev = TokenMinter(secret: secret, audience: config.tokenAudience).mint(userID: "dev", ttl: 300, now: UnixTime.now())
            FileOutput.stderr("""
            presenced dev mode: a single-use token for user "dev", valid 300 s:
              ws://\(config.bind):\(group.port)/ws?token=\(dev.token)
            mint more with: WS_TOKEN_SECRET=<secret> presenced token --user NAME (set WS_TOKEN_SECRET to keep tokens valid across restarts)
            """)
        }
        Log.info("listening", ["address": inherited == nil ? config.bind : "passed socket (systemd)", "port": "\(group.port)",
                               "io": backend.rawValue, "threads": "\(config.threads)", "mode": config.echo ? "echo" : "realtime",
                               "fd_limit": "\(fileLimit)", "version": BuildInfo.version])

        var hub: RealtimeHub?
        if case .realtime(let realtime) = mode { hub = realtime }
        return ProcessSupervisor(config: config, environment: environment, arguments: arguments, group: group, hub: hub,
                                 secret: secret).run(signals: signals)
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
