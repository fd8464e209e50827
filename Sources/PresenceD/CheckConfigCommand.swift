import Glibc
import PresenceRealtime

/// `presenced check-config [flags]`: parses the environment and flags exactly as a start would,
/// applies the start-up rules that need no listener (the token secret outside dev mode, a usable
/// STATE_DIRECTORY when messages are forwarded), and prints `config ok` and a summary of every
/// variable — secrets only as "set" or "unset", URLs without passwords — exit 0. A bad value gives
/// the one line a start would give, on stderr, and exit 78 (EX_CONFIG).
enum CheckConfigCommand {
    /// EX_CONFIG.
    static let configError: Int32 = 78

    static let usage = """
        usage: presenced check-config [--port N] [--bind ADDR] [--io KIND] [--threads N] [--echo]
          validates the environment (see presenced --help) and flags; prints "config ok" and a summary, exit 0,
          or one line naming the bad variable on stderr, exit 78
        """

    /// Runs the command; `arguments` are those after the `check-config` word (a leading one is
    /// skipped). `output` and `errorOutput` each receive whole lines without the newline.
    static func run(
        arguments: [String], environment: [String: String], output: (String) -> Void,
        errorOutput: (String) -> Void
    ) -> Int32 {
        var args = arguments
        if args.first == "check-config" { args.removeFirst() }
        if args.contains("--help") || args.contains("-h") {
            output(usage)
            return 0
        }
        let config: Config
        do {
            config = try Config.parse(environment: environment, arguments: args)
            if let problem = config.tokenSecretProblem { throw problem }
            if config.chatServiceURL != nil { try checkStateDirectory(config.stateDirectory) }
        } catch {
            errorOutput("\(error)")
            return configError
        }
        output("config ok")
        for line in summary(config, environment: environment) { output(line) }
        return 0
    }

    /// `  NAME  value` for every variable, then the mode presenced would start in.
    static func summary(_ config: Config, environment: [String: String]) -> [String] {
        let width = ConfigVariable.all.map(\.name.count).max() ?? 0
        var lines = ConfigVariable.all.map { variable in
            "  " + variable.name + String(repeating: " ", count: width - variable.name.count) + "  " + variable.shown(config)
        }
        var mode = config.echo ? "echo (conformance target)" : (config.redisURL == nil ? "embedded single instance" : "Redis")
        if config.isDevMode { mode += ", dev mode (random WS_TOKEN_SECRET for each run)" }
        lines.append("  mode: \(mode)")
        return lines
    }

    /// The forward queue's directory: an existing writable directory, or one that `mkdir -p` can
    /// make under its nearest existing ancestor (nothing is created here).
    static func checkStateDirectory(_ path: String) throws {
        var info = stat()
        var existing = path
        while stat(existing, &info) != 0 {
            guard errno == ENOENT else {
                throw ConfigError(variable: "STATE_DIRECTORY", problem: "\(Config.shown(path)): \(String(cString: strerror(errno)))")
            }
            var trimmed = Substring(existing)
            while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
            guard let slash = trimmed.lastIndex(of: "/") else {
                existing = "."
                continue
            }
            existing = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw ConfigError(variable: "STATE_DIRECTORY", problem: "\(Config.shown(existing)) is not a directory")
        }
        guard access(existing, W_OK | X_OK) == 0 else {
            let what = existing == path ? "is not writable" : "cannot be created (\(Config.shown(existing)) is not writable)"
            throw ConfigError(variable: "STATE_DIRECTORY", problem: "\(Config.shown(path)) \(what)")
        }
    }
}
