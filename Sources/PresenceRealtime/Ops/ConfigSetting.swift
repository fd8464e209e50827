import PresenceLoop
import RedisShim

extension Config {
    /// One environment variable, declared on the `Config` property that holds its value:
    ///
    ///     @Setting("PORT", flag: "--port", .port, help: "listen port (HTTP and WebSocket)")
    ///     var port: UInt16 = 8082
    ///
    /// The property's initial value is the variable's default. While `Config.parse` builds a
    /// configuration (``ConfigSource/current`` is bound) the initialiser takes the value from the
    /// environment, then from the flag; without a source it keeps the default. `--help`,
    /// `check-config` and docs/operations.md list the declarations through ``ConfigVariable/all``.
    /// Reading the property reads the wrapper's stored value: nothing is looked up.
    @propertyWrapper
    package struct Setting<Value: Sendable>: Sendable {
        package var wrappedValue: Value
        /// Everything declared but the value, shared by every copy of the configuration.
        package let declaration: SettingDeclaration<Value>

        /// `default` describes the default for `--help` when the value alone does not say it
        /// ("one per core", "unset = not forwarded"); otherwise the format shows the default value.
        package init(
            wrappedValue defaultValue: Value, _ name: String, flag: String? = nil, _ format: Format<Value>,
            default defaultText: String? = nil, help: String
        ) {
            declaration = SettingDeclaration(name: name, flag: flag, format: format, defaultText: defaultText, help: help)
            wrappedValue = ConfigSource.current?.value(of: declaration, default: defaultValue) ?? defaultValue
        }
    }

    /// What a ``Setting`` declares besides its value.
    package final class SettingDeclaration<Value: Sendable>: Sendable {
        /// The environment variable.
        let name: String
        /// The command-line flag that overrides it (`--port`), if any.
        let flag: String?
        let format: Format<Value>
        let defaultText: String?
        let help: String

        init(name: String, flag: String?, format: Format<Value>, defaultText: String?, help: String) {
            self.name = name
            self.flag = flag
            self.format = format
            self.defaultText = defaultText
            self.help = help
        }
    }

    /// How a variable's text becomes its value (with the range and the error line), and how
    /// `check-config` shows the value: secrets only as "set" or "unset".
    package struct Format<Value: Sendable>: Sendable {
        /// Parses a set value; a bad one throws a `ConfigError` naming `variable` (the variable or the flag).
        let parse: @Sendable (_ text: String, _ variable: String) throws -> Value
        /// The value as `check-config` prints it; `config` is the whole configuration it belongs to.
        let show: @Sendable (_ value: Value, _ config: Config) -> String
        /// Whether a set but empty variable counts as unset (an unfilled template line).
        var emptyIsUnset = false
    }
}

extension Config.Format where Value == Int {
    /// A whole number within `range`.
    package static func integer(_ range: ClosedRange<Int>) -> Self {
        Self(parse: { text, variable in try Config.integer(text, variable, range) }, show: { value, _ in "\(value)" })
    }
}

extension Config.Format where Value == Int64 {
    /// A duration (`500ms`, `30s`, `2m`, `1h` or plain seconds) in milliseconds within `range`;
    /// with `offOrAtLeast`, a value above 0 must also be at least that many milliseconds.
    package static func duration(_ range: ClosedRange<Int64>, offOrAtLeast floor: Int64? = nil) -> Self {
        Self(
            parse: { text, variable in
                let millis = try Config.duration(text, variable, minimum: range.lowerBound, maximum: range.upperBound)
                if let floor, millis > 0 && millis < floor {
                    throw ConfigError(variable: variable, problem: "must be 0 (off) or at least \(Config.millis(floor))")
                }
                return millis
            }, show: { value, _ in Config.millis(value) })
    }
}

extension Config.Format where Value == UInt16 {
    /// A port number (0 = any free port).
    package static var port: Self { Self(parse: Config.port, show: { value, _ in "\(value)" }) }
}

extension Config.Format where Value == Bool {
    /// `0` or `1` (empty: 0).
    package static var flag: Self { Self(parse: Config.flag, show: { value, _ in value ? "1" : "0" }) }
}

extension Config.Format where Value == String {
    /// Text checked by `parse`, shown as it is; `emptyIsUnset`: an empty variable keeps the default.
    package static func text(_ parse: @escaping @Sendable (String, String) throws -> String, emptyIsUnset: Bool = false) -> Self {
        Self(parse: parse, show: { value, _ in value }, emptyIsUnset: emptyIsUnset)
    }
}

extension Config.Format where Value == String? {
    /// Optional text checked by `parse` (empty = unset), shown as it is or as `unset`.
    package static func optional(_ parse: @escaping @Sendable (String, String) throws -> String, unset: String = "unset") -> Self {
        Self(parse: parse, show: { value, _ in value ?? unset }, emptyIsUnset: true)
    }

    /// A secret checked by `parse`, shown only as "set" or "unset"; `emptyIsUnset` false makes an
    /// empty variable a bad value.
    package static func secret(_ parse: @escaping @Sendable (String, String) throws -> String, emptyIsUnset: Bool = true) -> Self {
        Self(parse: parse, show: { value, _ in value == nil ? "unset" : "set" }, emptyIsUnset: emptyIsUnset)
    }

    /// A Redis URL (empty = unset), shown without its password.
    package static var redisURL: Self {
        Self(
            parse: Config.redisURL,
            show: { value, _ in
                // The password never shows: the endpoint's description masks it.
                value.map { url in (try? RedisEndpoint.parse(url)).map { "\($0)" } ?? "set" } ?? "unset"
            }, emptyIsUnset: true)
    }
}

extension Config.Format where Value == [String] {
    /// A comma list checked by `parse`, shown comma-joined (`none` when empty).
    package static func list(_ parse: @escaping @Sendable (String, String) throws -> [String], none: String = "") -> Self {
        Self(parse: parse, show: { value, _ in value.isEmpty ? none : value.joined(separator: ",") })
    }
}

extension Config.Format where Value == Config.IOChoice {
    /// `uring`, `epoll` or `auto`, any case.
    package static var ioChoice: Self { Self(parse: Config.ioChoice, show: { value, _ in value.rawValue }) }
}

extension Config.Format where Value == Log.Level {
    /// `debug`, `info`, `warn` or `error`.
    package static var logLevel: Self { Self(parse: Config.logLevel, show: { value, _ in value.name }) }
}

extension Config.Format where Value == Config.DevTokens {
    /// `auto`, `1` or `0`, shown with whether the route is served with the whole configuration.
    package static var devTokens: Self {
        Self(parse: Config.devTokens, show: { value, config in "\(value.rawValue) (\(config.devTokensEnabled ? "on" : "off"))" })
    }
}

/// The environment and command-line arguments one `Config.parse` reads, bound (``current``)
/// while that configuration is initialised: each ``Config/Setting`` takes its value here — the
/// environment variable, then each of its flag's values in argument order — and a bad value is
/// recorded here rather than thrown (a property wrapper's initialiser cannot throw).
///
/// `@unchecked Sendable`: it is bound for one synchronous initialisation on one thread (the
/// task-local binding is that thread's), and nothing else keeps it.
package final class ConfigSource: @unchecked Sendable {
    @TaskLocal package static var current: ConfigSource?

    private let environment: [String: String]
    /// Each value-taking flag's values with their argument positions, in argument order.
    private var flagValues: [String: [(position: Int, text: String)]] = [:]
    /// The flags without a value that were given (`--echo`).
    private(set) var switchesGiven: Set<String> = []
    /// The first bad variable, in declaration order.
    private var environmentProblem: (any Error)?
    /// The first bad argument, by position.
    private var argumentProblem: (position: Int, error: any Error)?

    /// Splits `arguments` into the values of `valueFlags` (`--port 1` or `--port=1`) and the
    /// `switches` given; scanning stops at an unknown option or a flag without its value.
    package init(environment: [String: String], arguments: [String], valueFlags: Set<String>, switches: Set<String>) {
        self.environment = environment
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if valueFlags.contains(name) {
                let position = i
                if let eq = argument.firstIndex(of: "=") {
                    flagValues[name, default: []].append((position, String(argument[argument.index(after: eq)...])))
                } else {
                    i += 1
                    guard i < arguments.count else {
                        argumentProblem = (position, ConfigError(variable: name, problem: "needs a value"))
                        return
                    }
                    flagValues[name, default: []].append((position, arguments[i]))
                }
            } else if switches.contains(name) {
                switchesGiven.insert(name)
            } else {
                argumentProblem = (i, ConfigError(variable: argument, problem: "unknown option (see presenced --help)"))
                return
            }
            i += 1
        }
    }

    /// The value of one declared variable: its default, replaced by the environment's value, then
    /// by each of its flag's values.
    package func value<Value>(of declaration: Config.SettingDeclaration<Value>, default defaultValue: Value) -> Value {
        var value = defaultValue
        if let text = environment[declaration.name], !(text.isEmpty && declaration.format.emptyIsUnset) {
            do {
                value = try declaration.format.parse(text, declaration.name)
            } catch {
                if environmentProblem == nil { environmentProblem = error }
            }
        }
        guard let flag = declaration.flag else { return value }
        for (position, text) in flagValues[flag] ?? [] {
            do {
                value = try declaration.format.parse(text, flag)
            } catch {
                if position < argumentProblem?.position ?? Int.max { argumentProblem = (position, error) }
                break
            }
        }
        return value
    }

    /// Throws what a start reports: the first bad variable, else the first bad argument.
    package func throwFirstProblem() throws {
        if let environmentProblem { throw environmentProblem }
        if let argumentProblem { throw argumentProblem.error }
    }
}

/// A ``Config/Setting`` seen without its value type, as the listings read it from a `Mirror`.
package protocol ListedSetting {
    /// The variable as listed, its default shown as `defaults` (a configuration of defaults) holds it.
    func variable(label: String, defaults: Config) -> ConfigVariable
    /// The value as `check-config` shows it.
    func shownValue(in config: Config) -> String
}

extension Config.Setting: ListedSetting {
    package func variable(label: String, defaults: Config) -> ConfigVariable {
        ConfigVariable(
            name: declaration.name, flag: declaration.flag,
            defaultValue: declaration.defaultText ?? declaration.format.show(wrappedValue, defaults),
            meaning: declaration.help, label: label)
    }

    package func shownValue(in config: Config) -> String { declaration.format.show(wrappedValue, config) }
}

/// One environment variable as `--help`, `check-config` and docs/operations.md list it, read
/// from its ``Config/Setting`` declaration; ``all`` keeps the declarations' order.
package struct ConfigVariable: Sendable {
    package let name: String
    /// The command-line flag that overrides it, if any.
    package let flag: String?
    /// The default as `--help` shows it.
    package let defaultValue: String
    package let meaning: String
    /// The name of the wrapper's storage in `Config` (`_port`), where ``shown(_:)`` reads the value.
    package let label: String

    /// The effective value in `config` as it may be printed (never a secret).
    package func shown(_ config: Config) -> String {
        // The label comes from a Mirror of the same type: the child is always there.
        (Mirror(reflecting: config).descendant(label) as! any ListedSetting).shownValue(in: config)
    }

    /// Every variable, in declaration order.
    package static let all: [ConfigVariable] = {
        let defaults = ConfigSource.$current.withValue(nil) { Config() }
        return Mirror(reflecting: defaults).children.compactMap { child in
            guard let label = child.label, let setting = child.value as? any ListedSetting else { return nil }
            return setting.variable(label: label, defaults: defaults)
        }
    }()

    /// The Markdown table of every variable in docs/operations.md, between ``tableStart`` and
    /// ``tableEnd`` (ConfigTests compares it and rewrites it with PRESENCED_UPDATE_DOCS=1).
    package static var markdownTable: String {
        var lines = ["| variable | default | meaning |", "|---|---|---|"]
        for variable in all {
            let names = "`\(variable.name)`" + (variable.flag.map { " (`\($0)`)" } ?? "")
            lines.append("| \(names) | \(markdownText(variable.defaultValue)) | \(markdownText(variable.meaning)) |")
        }
        return lines.joined(separator: "\n")
    }

    package static let tableStart =
        "<!-- configuration table: generated from the declarations in Sources/PresenceRealtime/Ops/Config.swift; PRESENCED_UPDATE_DOCS=1 swift test --filter ConfigTests rewrites it -->"
    package static let tableEnd = "<!-- end of the configuration table -->"

    /// `text` as literal Markdown table-cell text: the characters that would end the cell or
    /// start markup are escaped (`_` only at a word's edge: `io_uring` stays as it is).
    private static func markdownText(_ text: String) -> String {
        let characters = Array(text)
        func isWordCharacter(_ at: Int) -> Bool { characters.indices.contains(at) && (characters[at].isLetter || characters[at].isNumber) }
        var escaped = ""
        for (i, character) in characters.enumerated() {
            let inWord = isWordCharacter(i - 1) && isWordCharacter(i + 1)
            if "\\|*`<".contains(character) || (character == "_" && !inWord) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
