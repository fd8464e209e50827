import Glibc
import PresenceLoop

/// systemd's `EnvironmentFile=` format, for the SIGHUP reload (ENV_FILE): `KEY=VALUE` lines;
/// `#` and `;` start comment lines; an optional `export ` prefix; values may be wrapped in
/// double quotes (with `\"`, `\\`, `\n` escapes) or single quotes; unquoted values are trimmed.
enum EnvironmentFile {
    /// A line that is not `KEY=VALUE` (its number; the text is never shown: it may hold a secret).
    struct Malformed: Error, CustomStringConvertible {
        var line: Int
        var description: String { "line \(line) is not KEY=VALUE" }
    }

    static func read(path: String) throws -> [String: String] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(call: "open \(path)", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "read \(path)", errno: errno)
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return try parse(String(decoding: bytes, as: UTF8.self))
    }

    static func parse(_ text: String) throws(Malformed) -> [String: String] {
        var result: [String: String] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw).trimmingSpaces()
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("export ") { line = Substring(line.dropFirst("export ".count)).trimmingSpaces() }
            guard let eq = line.firstIndex(of: "=") else { throw Malformed(line: number + 1) }
            let key = Substring(line[..<eq]).trimmingSpaces()
            guard !key.isEmpty,
                key.utf8.allSatisfy({
                    $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
                })
            else {
                throw Malformed(line: number + 1)
            }
            result[key] = try value(Substring(line[line.index(after: eq)...]).trimmingSpaces(), line: number + 1)
        }
        return result
    }

    private static func value(_ text: String, line: Int) throws(Malformed) -> String {
        guard let first = text.first, first == "\"" || first == "'" else { return text }
        guard text.count >= 2, text.last == first else { throw Malformed(line: line) }
        let inner = text.dropFirst().dropLast()
        if first == "'" { return String(inner) }
        var out = ""
        var escaped = false
        for c in inner {
            if escaped {
                out.append(c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
