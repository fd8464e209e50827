import Foundation
import Glibc
import WSCore

@testable import PresenceD
@testable import PresenceLoop

/// Headless Chromium driven over the DevTools protocol (no chromedriver): started with a private
/// profile directory and `--remote-debugging-port=0`, its port read from `DevToolsActivePort`.
/// `close()` kills it and removes the directory; deinit does too, so a failing test leaves nothing.
final class HeadlessChromium {
    /// Debian's `chromium`, or the binary named by `CHROMIUM`.
    static func find() -> String? {
        var candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        if let given = ProcessInfo.processInfo.environment["CHROMIUM"] { candidates.insert(given, at: 0) }
        return candidates.first { access($0, X_OK) == 0 }
    }

    let process = Process()
    let directory: String
    let port: UInt16
    private var closed = false

    init(binary: String, width: Int = 1280, height: Int = 800) throws {
        var template = Array((NSTemporaryDirectory() + "presenced-chromium-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError(call: "mkdtemp", errno: errno) }
        directory = String(cString: made)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--remote-debugging-port=0", "--user-data-dir=\(directory)",
            "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
            "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows", "--hide-scrollbars", "--mute-audio",
            "--window-size=\(width),\(height)", "about:blank",
        ]
        _ = FileManager.default.createFile(atPath: directory + "/chromium.log", contents: nil)
        let log = FileHandle(forWritingAtPath: directory + "/chromium.log")
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        // The port file appears once DevTools listens.
        let end = EventLoop.monotonicMillis() + 30_000
        var found: UInt16?
        while found == nil && EventLoop.monotonicMillis() < end && process.isRunning {
            if let text = try? String(contentsOfFile: directory + "/DevToolsActivePort", encoding: .utf8),
                let first = text.split(separator: "\n").first, let p = UInt16(first)
            {
                found = p
            } else {
                pause(millis: 50)
            }
        }
        guard let found else {
            let tail = (try? String(contentsOfFile: directory + "/chromium.log", encoding: .utf8))?.suffix(800) ?? ""
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
            throw SystemError(call: "chromium did not write DevToolsActivePort within 30 s; its log ends: \(tail)", errno: 0)
        }
        port = found
    }

    /// `GET|PUT /json/...` on the DevTools HTTP endpoint: the decoded JSON body.
    func http(_ method: String, _ target: String) throws -> Any {
        let socket = try TestSocket(port: port, receiveTimeoutMillis: 15_000)
        try socket.write("\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
        let (head, body) = try socket.readHTTPResponse()
        guard head.status == 200 else {
            throw SystemError(call: "DevTools \(method) \(target): HTTP \(head.status) \(String(decoding: body, as: UTF8.self))", errno: 0)
        }
        return (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) ?? String(decoding: body, as: UTF8.self)
    }

    /// A new tab showing `url`, connected over its DevTools WebSocket.
    func open(_ url: String) throws -> DevToolsPage {
        guard let target = try http("PUT", "/json/new?" + url) as? [String: Any], let id = target["id"] as? String,
            let debugger = target["webSocketDebuggerUrl"] as? String,
            let path = debugger.range(of: "/devtools/").map({ String(debugger[$0.lowerBound...]) })
        else { throw SystemError(call: "DevTools /json/new gave no target", errno: 0) }
        return try DevToolsPage(id: id, port: port, path: path)
    }

    /// Closes a tab (its page unloads: its WebSocket closes).
    func closeTarget(_ id: String) throws { _ = try http("GET", "/json/close/" + id) }

    /// Kills Chromium and removes its profile directory; safe to call twice.
    func close() {
        guard !closed else { return }
        closed = true
        if process.isRunning {
            process.terminate()
            let end = EventLoop.monotonicMillis() + 5_000
            while process.isRunning && EventLoop.monotonicMillis() < end { pause(millis: 20) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { close() }
}

/// One tab's DevTools session: commands by id (events in between are skipped), `Runtime.evaluate`.
final class DevToolsPage {
    let id: String
    private let socket: TestWebSocket
    private var nextID = 0

    init(id: String, port: UInt16, path: String) throws {
        self.id = id
        socket = try TestWebSocket(port: port, path: path, receiveTimeoutMillis: 30_000)
    }

    /// Sends a command and returns its `result` (throws on a protocol error or a closed socket).
    @discardableResult
    func call(_ method: String, _ params: [String: Any] = [:]) throws -> [String: Any] {
        nextID += 1
        let message: [String: Any] = ["id": nextID, "method": method, "params": params]
        try socket.sendText(String(decoding: try JSONSerialization.data(withJSONObject: message), as: UTF8.self))
        while true {
            guard case .text(let text) = try socket.receiveMessage() else {
                throw SystemError(call: "DevTools \(method): the connection ended", errno: 0)
            }
            guard let reply = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                reply["id"] as? Int == nextID
            else { continue }  // an event
            if let error = reply["error"] { throw SystemError(call: "DevTools \(method): \(error)", errno: 0) }
            return reply["result"] as? [String: Any] ?? [:]
        }
    }

    /// Evaluates a JavaScript expression in the page; its value (by value; promises awaited).
    func evaluate(_ expression: String) throws -> Any? {
        let result = try call("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] { throw SystemError(call: "page threw: \(exception)", errno: 0) }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Polls `expression` every 100 ms until it is `true`; fails with `what` after `timeoutMillis`.
    func waitFor(
        _ what: String, _ expression: String, timeoutMillis: Int64 = 15_000, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        var last: Any?
        while EventLoop.monotonicMillis() < end {
            last = try evaluate(expression)
            if last as? Bool == true { return }
            pause(millis: 100)
        }
        throw SystemError(
            call: "timed out after \(timeoutMillis) ms waiting until \(what) (last value: \(String(describing: last)))", errno: 0)
    }
}
