import CSystem
import Glibc

/// A command-line or set-up problem: printed as one line on stderr, exit code `exitCode`.
struct BenchError: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32 = 1
    var description: String { message }
    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
}

/// The four scenarios.
enum Scenario: String, CaseIterable, Sendable {
    case fanout, idle, connect, presence
}

/// Everything the command line says. Scenario-specific defaults are filled in by `parse`.
struct Options: Sendable {
    var scenario: Scenario = .fanout
    var url = "ws://127.0.0.1:8082/ws"
    var pid: Int32?
    var jwtSecret = ""
    var audience = "presenced"
    var origin: String?
    var threads = 1
    var connections = 0
    var channels = 0
    var concurrency = 256
    /// How many 127.0.0.x source addresses to spread over (0 = let the kernel pick).
    var sources = -1
    var userPrefix = "u"
    var channelPrefix = "c"
    var idOffset = 0
    var connectTimeout: Int64 = 10_000_000_000
    var json = false
    var quiet = false
    // fanout
    var publishers = 20
    var window = 0
    var rate = 0.0
    var duration: Int64 = 10_000_000_000
    var warmup: Int64 = 2_000_000_000
    var drain: Int64 = 5_000_000_000
    var contentBytes = 0
    // idle
    var settle: Int64 = 2_000_000_000
    var hold: Int64 = 10_000_000_000
    // presence
    var redisCLIPort: Int?
    var redisCLI = "redis-cli"

    static let usage = """
        usage: presence-bench <fanout|idle|connect|presence> [options]

        common:
          --url ws://HOST:PORT/PATH   server to load (default ws://127.0.0.1:8082/ws)
          --pid PID                   the server's pid: RSS and CPU from /proc/PID
          --jwt-secret S              HS256 secret (= server's WS_TOKEN_SECRET; default: $WS_TOKEN_SECRET)
          --audience A                token aud (default presenced)
          --origin O                  send this Origin header (default: none)
          --connections N             connections (fanout 2000, idle 19000, connect 5000, presence 1000)
          --channels C                channels (fanout 20, idle and connect N/10, presence 100)
          --threads T                 generator threads, each its own epoll loop (default 1)
          --concurrency K             handshakes in flight at once (default 256)
          --sources K                 spread client sockets over 127.0.0.1..K (default 254 for a loopback
                                      server, 0 = no bind)
          --user-prefix P             user ids are P<index> (default u)
          --channel-prefix P          channel ids are P<index> (default c)
          --id-offset K               first connection index (several bench processes: disjoint users)
          --connect-timeout D         per-connection limit for connect+upgrade+join (default 10s)
          --json                      one JSON object on stdout instead of the human report
          --quiet                     no progress lines on stderr
        fanout:
          --publishers P              publishing connections (default 20), spread over channels
          --window W                  closed loop: W own messages in flight per publisher
          --rate R                    fixed rate: R messages/s per publisher (default: --window 16)
          --duration D  --warmup D    measured period (10s) after warm-up (2s)
          --drain D                   longest wait for in-flight deliveries at the end (5s)
          --content-bytes B           pad each message's content to B bytes
        idle:
          --settle D                  wait after the last join before reading RSS (2s)
          --hold D                    idle period for the CPU reading (10s)
        presence:
          --duration D  --warmup D    churn period (10s) after warm-up (2s)
          --redis-cli-port PORT       Redis commands per operation from `redis-cli -p PORT info commandstats`
          --redis-cli PATH            redis-cli binary (default redis-cli)
        Durations: 10, 10s, 500ms, 2m.
        """

    /// Parses `arguments` (without the program name).
    static func parse(_ arguments: [String]) throws -> Options {
        var o = Options()
        if let secret = getenv("WS_TOKEN_SECRET") { o.jwtSecret = String(cString: secret) }
        guard let first = arguments.first else { throw BenchError(usage, exitCode: 2) }
        if first == "--help" || first == "-h" || first == "help" { throw BenchError(usage, exitCode: 0) }
        guard let scenario = Scenario(rawValue: first) else {
            throw BenchError("presence-bench: unknown scenario \"\(first)\" (fanout, idle, connect, presence; see --help)", exitCode: 2)
        }
        o.scenario = scenario
        var connections: Int?, channels: Int?, duration: Int64?
        var i = 1
        func value(_ flag: String) throws -> String {
            if let eq = arguments[i].firstIndex(of: "=") { return String(arguments[i][arguments[i].index(after: eq)...]) }
            i += 1
            guard i < arguments.count else { throw BenchError("presence-bench: \(flag) needs a value", exitCode: 2) }
            return arguments[i]
        }
        func int(_ flag: String, _ range: ClosedRange<Int>) throws -> Int {
            let text = try value(flag)
            guard let v = Int(text), range.contains(v) else {
                throw BenchError(
                    "presence-bench: \(flag) \(text): expected an integer in \(range.lowerBound)...\(range.upperBound)", exitCode: 2)
            }
            return v
        }
        func dur(_ flag: String) throws -> Int64 {
            let text = try value(flag)
            guard let v = DurationText.parse(text) else {
                throw BenchError("presence-bench: \(flag) \(text): expected a duration like 10, 10s, 500ms, 2m", exitCode: 2)
            }
            return v
        }
        while i < arguments.count {
            let arg = arguments[i]
            let flag = arg.split(separator: "=", maxSplits: 1).first.map(String.init) ?? arg
            switch flag {
            case "--url": o.url = try value(flag)
            case "--pid": o.pid = Int32(try int(flag, 1...Int(Int32.max)))
            case "--jwt-secret": o.jwtSecret = try value(flag)
            case "--audience": o.audience = try value(flag)
            case "--origin": o.origin = try value(flag)
            case "--threads": o.threads = try int(flag, 1...64)
            case "--connections": connections = try int(flag, 1...10_000_000)
            case "--channels": channels = try int(flag, 1...10_000_000)
            case "--concurrency": o.concurrency = try int(flag, 1...1_000_000)
            case "--sources": o.sources = try int(flag, 0...254)
            case "--no-spread": o.sources = 0
            case "--user-prefix": o.userPrefix = try value(flag)
            case "--channel-prefix": o.channelPrefix = try value(flag)
            case "--id-offset": o.idOffset = try int(flag, 0...1_000_000_000)
            case "--connect-timeout": o.connectTimeout = try dur(flag)
            case "--json": o.json = true
            case "--quiet": o.quiet = true
            case "--publishers": o.publishers = try int(flag, 1...1_000_000)
            case "--window": o.window = try int(flag, 1...100_000)
            case "--rate":
                let text = try value(flag)
                guard let r = Double(text), r >= 0.01, r <= 1_000_000 else {
                    throw BenchError(
                        "presence-bench: --rate \(text): expected messages per second per publisher (0.01 to 1000000)", exitCode: 2)
                }
                o.rate = r
            case "--duration": duration = try dur(flag)
            case "--warmup": o.warmup = try dur(flag)
            case "--drain": o.drain = try dur(flag)
            case "--content-bytes": o.contentBytes = try int(flag, 0...4000)
            case "--settle": o.settle = try dur(flag)
            case "--hold": o.hold = try dur(flag)
            case "--redis-cli-port": o.redisCLIPort = try int(flag, 1...65535)
            case "--redis-cli": o.redisCLI = try value(flag)
            case "--help", "-h": throw BenchError(usage, exitCode: 0)
            default: throw BenchError("presence-bench: unknown option \(arg) (see --help)", exitCode: 2)
            }
            i += 1
        }
        switch scenario {
        case .fanout:
            o.connections = connections ?? 2000
            o.channels = channels ?? 20
            if o.window > 0 && o.rate > 0 {
                throw BenchError("presence-bench: give either --window (closed loop) or --rate (fixed rate), not both", exitCode: 2)
            }
            if o.window == 0 && o.rate == 0 { o.window = 16 }
            guard o.publishers <= o.connections else {
                throw BenchError("presence-bench: --publishers \(o.publishers) exceeds --connections \(o.connections)", exitCode: 2)
            }
        case .idle:
            o.connections = connections ?? 19000
            o.channels = channels ?? max(1, o.connections / 10)
        case .connect:
            o.connections = connections ?? 5000
            o.channels = channels ?? max(1, o.connections / 10)
        case .presence:
            o.connections = connections ?? 1000
            o.channels = channels ?? 100
            guard o.channels >= 2 else { throw BenchError("presence-bench: presence churn needs --channels >= 2", exitCode: 2) }
        }
        if let duration { o.duration = duration }
        guard o.duration >= 100_000_000 else { throw BenchError("presence-bench: --duration must be at least 100ms", exitCode: 2) }
        guard o.hold >= 100_000_000 else { throw BenchError("presence-bench: --hold must be at least 100ms", exitCode: 2) }
        guard !o.jwtSecret.isEmpty else {
            throw BenchError("presence-bench: --jwt-secret is required (the server's WS_TOKEN_SECRET)", exitCode: 2)
        }
        o.threads = min(o.threads, o.connections)
        return o
    }
}

/// Where to connect: an IPv4 address (the bench binds 127.0.0.x source addresses, so IPv4 only).
struct Target: Sendable {
    /// Host header value (`host:port`).
    var hostHeader: String
    /// The server's address in network byte order, and its port.
    var address: UInt32
    var port: UInt16
    /// Request path with any query, without the token.
    var path: String
    /// Printable `ip:port`.
    var display: String

    /// Parses `ws://host[:port][/path]`; `host` may be an IPv4 literal or a name (resolved once, IPv4).
    static func parse(_ url: String) throws -> Target {
        guard url.hasPrefix("ws://") else {
            if url.hasPrefix("wss://") {
                throw BenchError("presence-bench: wss:// is not supported; run against the plain ws:// port", exitCode: 2)
            }
            throw BenchError("presence-bench: --url \(url): expected ws://HOST:PORT/PATH", exitCode: 2)
        }
        let rest = url.dropFirst(5)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        if path.isEmpty { path = "/" }
        var host = String(authority), port: UInt16 = 80
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = UInt16(authority[authority.index(after: colon)...]), p > 0 else {
                throw BenchError("presence-bench: --url \(url): bad port", exitCode: 2)
            }
            port = p
        }
        guard !host.isEmpty else { throw BenchError("presence-bench: --url \(url): no host", exitCode: 2) }
        var addr = in_addr()
        if inet_pton(AF_INET, host, &addr) != 1 {
            var hints = addrinfo()
            hints.ai_family = AF_INET
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, nil, &hints, &result)
            guard rc == 0, let info = result, let sa = info.pointee.ai_addr else {
                throw BenchError("presence-bench: cannot resolve \(host) to an IPv4 address", exitCode: 1)
            }
            addr = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            freeaddrinfo(info)
        }
        var text = [CChar](repeating: 0, count: 32)
        inet_ntop(AF_INET, &addr, &text, 32)
        let ip = cText(text)
        return Target(
            hostHeader: port == 80 ? host : "\(host):\(port)", address: addr.s_addr, port: port,
            path: path, display: "\(ip):\(port)")
    }

    /// Whether the server is on 127.0.0.0/8.
    var isLoopback: Bool { UInt32(bigEndian: address) >> 24 == 127 }

    /// The sockaddr_in of the server.
    var sockaddr: sockaddr_in {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = address
        return sin
    }
}
