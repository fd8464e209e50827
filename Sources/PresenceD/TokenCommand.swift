import PresenceLoop
import PresenceRealtime

/// `presenced token`: mints one ephemeral token from the command line
/// (docs/protocol.md, "Getting a token").
///
/// `presenced token --user ID [--ttl S] [--role R] [--channel C]… [--name N] [--session S]`,
/// options as `--opt value` or `--opt=value`. Reads `WS_TOKEN_SECRET` (at least 32 bytes) and
/// `WS_TOKEN_AUDIENCE` (default `presenced`) from `environment`; prints the token alone on one
/// line and exits 0. Exit codes follow sysexits: 64 (EX_USAGE) for bad or missing arguments,
/// 78 (EX_CONFIG) for a missing, short or empty secret or an empty audience, each with one line
/// on stderr that never contains the secret or a token.
enum TokenCommand {
    /// EX_USAGE.
    static let usageError: Int32 = 64
    /// EX_CONFIG.
    static let configError: Int32 = 78

    /// The `--help` text.
    static let usage = """
        usage: presenced token --user ID [--ttl SECONDS] [--role admin|member|child] [--channel ID]... [--name NAME] [--session SID]
          prints a signed ephemeral token for /ws (HS256, WS_TOKEN_SECRET, aud WS_TOKEN_AUDIENCE)
          --ttl  lifetime, 1-300 seconds (plain seconds, `30s` or `2m`; default 60)
        """

    /// Runs the command; `arguments` are those after the `token` word (a leading `token` is skipped).
    /// `output` and `errorOutput` each receive whole lines without the newline.
    static func run(
        arguments: [String], environment: [String: String], output: (String) -> Void,
        errorOutput: (String) -> Void
    ) -> Int32 {
        var args = arguments[...]
        if args.first == "token" { args = args.dropFirst() }
        var user: String?, ttl: Int64 = 60, role: String?, name: String?, session: String?, channels: [String]?

        func fail(_ message: String) -> Int32 {
            errorOutput("presenced token: \(message) (see presenced token --help)")
            return usageError
        }
        while let arg = args.popFirst() {
            if arg == "--help" || arg == "-h" {
                output(usage)
                return 0
            }
            guard arg.hasPrefix("--") else { return fail("unexpected argument") }
            // Only the option name is ever echoed: a mistyped option may be followed by a secret.
            var option = arg, value: String?
            if let eq = arg.firstIndex(of: "=") {
                option = String(arg[..<eq])
                value = String(arg[arg.index(after: eq)...])
            }
            guard ["--user", "--ttl", "--role", "--channel", "--name", "--session"].contains(option) else {
                return fail("unknown option \(option.prefix(40))")
            }
            if value == nil { value = args.popFirst() }
            guard let value else { return fail("\(option) needs a value") }
            switch option {
            case "--user":
                guard !value.isEmpty else { return fail("--user must not be empty") }
                user = value
            case "--ttl":
                guard let seconds = parseTTL(value), (1...TokenMinter.maxTTL).contains(seconds) else {
                    return fail("--ttl must be 1-\(TokenMinter.maxTTL) seconds")
                }
                ttl = seconds
            case "--role":
                guard TokenRole(claim: value) != nil else { return fail("--role must be admin, member or child") }
                role = value
            case "--channel":
                guard TokenVerifier.isValidChannelID(value) else {
                    return fail("--channel must be 1-128 bytes of A-Z a-z 0-9 _ . : -")
                }
                channels = (channels ?? []) + [value]
            case "--name":
                name = value
            default:
                session = value
            }
        }
        guard let user else { return fail("--user is required") }

        guard let secret = environment["WS_TOKEN_SECRET"], !secret.isEmpty else {
            errorOutput("presenced token: WS_TOKEN_SECRET is not set")
            return configError
        }
        guard secret.utf8.count >= 32 else {
            errorOutput("presenced token: WS_TOKEN_SECRET must be at least 32 bytes")
            return configError
        }
        let audience = environment["WS_TOKEN_AUDIENCE"] ?? "presenced"
        guard !audience.isEmpty else {
            errorOutput("presenced token: WS_TOKEN_AUDIENCE must not be empty")
            return configError
        }
        let minted = TokenMinter(secret: secret, audience: audience)
            .mint(userID: user, ttl: ttl, role: role, name: name, sessionID: session, channels: channels, now: UnixTime.now())
        output(minted.token)
        return 0
    }

    /// Seconds from `60`, `60s` or `2m`.
    private static func parseTTL(_ text: String) -> Int64? {
        if text.hasSuffix("m") { return Int64(text.dropLast()).flatMap { $0 <= 5 ? $0 * 60 : nil } }
        if text.hasSuffix("s") { return Int64(text.dropLast()) }
        return Int64(text)
    }
}
