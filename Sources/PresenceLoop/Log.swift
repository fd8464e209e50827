import Glibc
import PresenceJSON

/// JSON-lines logging on stdout: one object per line with ts, level, msg, request_id (when the
/// line is about one request: an upgrade, a ws-token or presence call, a forward) and fields.
/// Each line goes out in one write(2), so lines from loop threads never interleave.
/// Callers never pass tokens, cookies or secrets; `LogRedaction` masks any that slip through.
package enum Log {
    package enum Level: Int, Comparable, Sendable {
        case debug, info, warn, error
        package static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        package var name: String { ["debug", "info", "warn", "error"][rawValue] }
        package init?(name: String) {
            switch name.lowercased() {
            case "debug": self = .debug
            case "info": self = .info
            case "warn", "warning": self = .warn
            case "error": self = .error
            default: return nil
            }
        }
    }

    /// Set once at start, before any loop thread runs.
    package nonisolated(unsafe) static var minimum: Level = .info
    /// Where lines go (stdout); tests point it elsewhere.
    nonisolated(unsafe) static var fileDescriptor: Int32 = 1

    package static func debug(_ msg: String, requestID: String? = nil, _ fields: KeyValuePairs<String, String> = [:]) {
        write(.debug, msg, requestID: requestID, fields)
    }
    package static func info(_ msg: String, requestID: String? = nil, _ fields: KeyValuePairs<String, String> = [:]) {
        write(.info, msg, requestID: requestID, fields)
    }
    package static func warn(_ msg: String, requestID: String? = nil, _ fields: KeyValuePairs<String, String> = [:]) {
        write(.warn, msg, requestID: requestID, fields)
    }
    package static func error(_ msg: String, requestID: String? = nil, _ fields: KeyValuePairs<String, String> = [:]) {
        write(.error, msg, requestID: requestID, fields)
    }

    package static func write(_ level: Level, _ msg: String, requestID: String? = nil, _ fields: KeyValuePairs<String, String>) {
        guard level >= minimum else { return }
        var bytes = Array(line(level, msg, requestID: requestID, fields, timestamp: Timestamp.iso8601Now()).utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                offset += n
            }
        }
    }

    /// Keys the line itself writes; a field with one of these names is left out.
    private static let reservedKeys: Set<String> = ["ts", "level", "msg", "request_id"]

    /// One line, newline included: `{"ts":…,"level":…,"msg":…,"request_id":…,"field":…}`.
    package static func line(
        _ level: Level, _ msg: String, requestID: String?, _ fields: KeyValuePairs<String, String>,
        timestamp: String
    ) -> String {
        var line = "{\"ts\":\"\(timestamp)\",\"level\":\"\(level.name)\",\"msg\":"
        line += JSONWriter.quoted(LogRedaction.clean(msg))
        // A `request_id` passed among the fields is the first-class one too (older callers).
        if let id = requestID ?? fields.first(where: { $0.key == "request_id" })?.value, !id.isEmpty {
            line += ",\"request_id\":"
            line += JSONWriter.quoted(LogRedaction.clean(id))
        }
        for (key, value) in fields where !reservedKeys.contains(key) {
            line += ","
            line += JSONWriter.quoted(key)
            line += ":"
            line += JSONWriter.quoted(LogRedaction.clean(value, key: key))
        }
        line += "}\n"
        return line
    }
}
