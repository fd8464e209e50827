#if canImport(Glibc)
import Glibc
#endif

/// A throwaway `redis-server` (from PATH) on a free loopback port, for tests: no persistence,
/// its own temporary directory, stopped (SIGTERM) on `deinit`. Started through
/// `setpriv --pdeathsig KILL` when available, so a crashed test run leaves no server behind (the
/// signal follows the thread that started it: create servers on a thread that outlives them,
/// e.g. the test thread).
public final class RedisServerProcess {
    /// The loopback port it listens on; kept across ``restart()``.
    public private(set) var port: UInt16
    /// `--requirepass` value, used by ``redisCLI(_:)`` too.
    public let password: String?
    /// Extra `redis-server` arguments (e.g. TLS options), appended to the defaults.
    public let extraArguments: [String]
    /// The temporary directory (working directory and log file `redis.log`).
    public let directory: String
    /// The server's process id, or 0 when not running.
    public private(set) var pid: pid_t = 0
    /// TLS-only mode: the certificate, key and CA files (`--port 0 --tls-port P`).
    public let tls: TLSFiles?

    /// PEM files for a TLS-only server.
    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String
        public var caFile: String
        public init(certificate: String, key: String, caFile: String) {
            self.certificate = certificate
            self.key = key
            self.caFile = caFile
        }
    }

    /// Starts a server and waits until it answers `PING` (TLS: until it accepts connections),
    /// up to `readyTimeoutMillis`.
    public init(extraArguments: [String] = [], password: String? = nil, tls: TLSFiles? = nil, readyTimeoutMillis: Int = 5000) throws {
        self.extraArguments = extraArguments
        self.password = password
        self.tls = tls
        var template = Array("/tmp/presenced-redis-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RedisServerError("mkdtemp failed: errno \(errno)")
        }
        directory = String(cString: dir)
        port = 0
        var lastError: Error = RedisServerError("no attempt")
        for _ in 0..<5 {
            port = try Self.freePort()
            do {
                try start(readyTimeoutMillis: readyTimeoutMillis)
                return
            } catch {
                lastError = error  // most likely the port was taken in between: try another
            }
        }
        throw lastError
    }

    deinit {
        stop()
        unlink(directory + "/redis.log")
        rmdir(directory)
    }

    /// `redis://[:password@]127.0.0.1:port[/db]`.
    public func url(database: Int = 0) -> String {
        var url = "redis://"
        if let password { url += ":" + Self.percentEncode(password) + "@" }
        url += "127.0.0.1:\(port)"
        if database != 0 { url += "/\(database)" }
        return url
    }

    /// True while the process is alive.
    public var isRunning: Bool {
        guard pid > 0 else { return false }
        return reap(options: WNOHANG) == false
    }

    /// Starts the server again on the same port (after ``stop()`` or ``kill()``).
    public func start(readyTimeoutMillis: Int = 5000) throws {
        guard pid == 0 else { return }
        var args = [
            "redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory, "--logfile", directory + "/redis.log", "--daemonize", "no",
        ]
        if let tls {
            args += [
                "--port", "0", "--tls-port", String(port), "--tls-cert-file", tls.certificate,
                "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.caFile, "--tls-auth-clients", "no",
            ]
        } else {
            args += ["--port", String(port)]
        }
        if let password { args += ["--requirepass", password] }
        args += extraArguments
        if access("/usr/bin/setpriv", X_OK) == 0 {
            args = ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] + args
        }
        pid = try Self.spawn(args, stdout: -1)
        let deadline = Self.nowMillis() + readyTimeoutMillis
        while Self.nowMillis() < deadline {
            if !isRunning {
                throw RedisServerError("redis-server exited at start (port \(port)); see \(directory)/redis.log")
            }
            if tls == nil ? Self.answersPing(port: port) : Self.accepts(port: port) { return }
            usleep(10_000)
        }
        kill()
        throw RedisServerError("redis-server did not answer PING on port \(port) within \(readyTimeoutMillis) ms")
    }

    /// SIGTERM and wait: a clean shutdown that closes every client connection.
    public func stop() { signalAndWait(SIGTERM) }

    /// SIGKILL and wait: the server vanishes without closing anything itself.
    public func kill() { signalAndWait(SIGKILL) }

    /// ``stop()`` then ``start(readyTimeoutMillis:)`` on the same port; the data is gone.
    public func restart() throws {
        stop()
        try start()
    }

    /// Runs `redis-cli -p PORT [-a PASSWORD] [-n DB] args…` and returns its output without
    /// the trailing newline (raw format: one line per array element).
    public func redisCLI(_ args: String...) -> String { redisCLI(database: 0, args) }

    /// ``redisCLI(_:)`` against database `database`.
    public func redisCLI(database: Int, _ args: String...) -> String { redisCLI(database: database, args) }

    /// ``redisCLI(_:)`` with an argument array.
    public func redisCLI(database: Int = 0, _ args: [String]) -> String {
        var argv = ["redis-cli", "-h", "127.0.0.1", "-p", String(port)]
        if let password { argv += ["-a", password, "--no-auth-warning"] }
        if database != 0 { argv += ["-n", String(database)] }
        argv += args
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return "pipe failed" }
        let child: pid_t
        do {
            child = try Self.spawn(argv, stdout: fds[1], closeInChild: fds[0])
        } catch {
            close(fds[0])
            close(fds[1])
            return "\(error)"
        }
        close(fds[1])
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n > 0 {
                output.append(contentsOf: buffer[0..<n])
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        while output.last == UInt8(ascii: "\n") { output.removeLast() }
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: - Process handling

    private func signalAndWait(_ signal: Int32) {
        guard pid > 0 else { return }
        Glibc.kill(pid, signal)
        _ = reap(options: 0)
        pid = 0
    }

    /// Waits for (or polls) the child; true when it has exited (and clears `pid`).
    private func reap(options: Int32) -> Bool {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, options)
            if r == pid {
                pid = 0
                return true
            }
            if r < 0 && errno == EINTR { continue }
            if r < 0 {
                pid = 0
                return true
            }
            return false
        }
    }

    /// posix_spawnp with stdin from /dev/null, stdout to `stdout` (or /dev/null when -1),
    /// stderr to /dev/null, `passing` (when given) as descriptor 3, every other descriptor
    /// closed; `environment` (`NAME=value`) replaces the test's when given. Also for other
    /// throwaway children of tests (a presenced daemon, socket activation).
    public static func spawn(
        _ args: [String], environment: [String]? = nil, stdout: Int32 = -1,
        closeInChild: Int32 = -1, passing: Int32? = nil
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if stdout >= 0 {
            posix_spawn_file_actions_adddup2(&actions, stdout, 1)
            posix_spawn_file_actions_addclose(&actions, stdout)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        if closeInChild >= 0 { posix_spawn_file_actions_addclose(&actions, closeInChild) }
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Nothing else: a long-lived child (a restarted server) holding the test's client sockets
        // would keep those connections open on the servers after the client closed them.
        if let passing { posix_spawn_file_actions_adddup2(&actions, passing, 3) }
        if let closeFrom = addCloseFrom { _ = closeFrom(&actions, passing == nil ? 3 : 4) }
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        var envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for p in envp ?? [] { free(p) } }
        let rc =
            envp == nil
            ? posix_spawnp(&pid, argv[0]!, &actions, nil, argv, environ)
            : posix_spawnp(&pid, argv[0]!, &actions, nil, argv, &envp!)
        guard rc == 0 else { throw RedisServerError("posix_spawnp \(args[0]) failed: \(String(cString: strerror(rc)))") }
        return pid
    }

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np` (declared only under _GNU_SOURCE).
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    // MARK: - Sockets

    /// A port the kernel just handed out on 127.0.0.1 (released again for redis-server).
    public static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisServerError("socket failed") }
        defer { close(fd) }
        var addr = loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw RedisServerError("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: addr.sin_port)
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return addr
    }

    /// Sends an inline PING and reads the first reply byte: `+PONG` or `-NOAUTH` both mean up.
    /// A TCP connection to `port` succeeds.
    private static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = loopback(port: port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    private static func answersPing(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = loopback(port: port)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return false }
        let ping = Array("PING\r\n".utf8)
        guard ping.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == ping.count else { return false }
        var reply: UInt8 = 0
        return recv(fd, &reply, 1, 0) == 1 && (reply == UInt8(ascii: "+") || reply == UInt8(ascii: "-"))
    }

    private static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    private static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2d || b == 0x2e || b == 0x5f {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "%" + String(b >> 4, radix: 16, uppercase: true) + String(b & 0xf, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
