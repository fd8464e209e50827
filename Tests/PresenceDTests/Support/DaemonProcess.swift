import Foundation
import Glibc
import RedisTestSupport
import XCTest

@testable import PresenceD
@testable import PresenceLoop

/// The built `presenced` binary run as a child process (for what an in-process server cannot
/// show, such as SIGKILL). Killed in deinit.
final class DaemonProcess {
    let pid: pid_t
    let port: UInt16

    /// The `presenced` built with this test bundle (`swift build --build-tests`), next to it in the
    /// same scratch directory — so a sanitizer run (Benchmarks/sanitizers.sh) starts sanitized daemons.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("presenced").path
    }

    /// Starts presenced and waits until it answers. With `listener` (a listening socket) it is
    /// socket-activated the way systemd does it: the socket as descriptor 3, `LISTEN_FDS=1` and
    /// `LISTEN_PID` set to the child's pid (by a `sh` that execs presenced). `shellLimits` are
    /// `ulimit` commands for that shell (fault injection). `stdout`, when given, receives its log lines.
    init(environment: [String: String], listener: Int32? = nil, stdout: Int32 = -1, shellLimits: String? = nil) throws {
        if let listener {
            port = Sockets.localPort(listener)
        } else {
            let probe = try Sockets.listen(address: "127.0.0.1", port: 0)
            port = Sockets.localPort(probe)
            close(probe)
        }
        var env = environment
        env["PORT"] = String(port)
        env["BIND"] = "127.0.0.1"
        env["LOG_LEVEL"] = env["LOG_LEVEL"] ?? "warn"
        env["PATH"] = "/usr/bin:/bin"
        for name in DaemonProcess.sanitizerOptions { env[name] = env[name] ?? ProcessInfo.processInfo.environment[name] }
        var command = [Self.binary]
        if listener != nil || shellLimits != nil {
            // A shell that execs presenced: same pid (LISTEN_PID), with `ulimit`s applied first.
            var script = #"exec "$0""#
            if listener != nil {
                env["LISTEN_FDS"] = "1"
                env["PORT"] = "1"  // must be ignored: the passed socket is served
                script = "LISTEN_PID=$$ " + script
            }
            if let shellLimits { script = shellLimits + "; " + script }
            command = ["/bin/sh", "-c", script, Self.binary]
        }
        // No other inherited descriptors: the child must not keep the test's sockets open.
        let child = try RedisServerProcess.spawn(
            command, environment: env.map { "\($0.key)=\($0.value)" }, stdout: stdout,
            passing: listener)
        pid = child
        // Up when it answers /healthz.
        let end = EventLoop.monotonicMillis() + 10_000
        while EventLoop.monotonicMillis() < end {
            if let socket = try? TestSocket(port: port, receiveTimeoutMillis: 1000),
                (try? socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) != nil,
                let (head, _) = try? socket.readHTTPResponse(), head.status == 200
            {
                return
            }
            pause(millis: 50)
        }
        kill(pid, SIGKILL)
        throw SystemError(call: "presenced did not start", errno: ETIMEDOUT)
    }

    /// `/readyz`'s status now.
    func readyStatus() throws -> Int {
        let socket = try TestSocket(port: port, receiveTimeoutMillis: 2000)
        try socket.write("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        return try socket.readHTTPResponse().head.status
    }

    /// Waits until `/readyz` says 200 (in Redis mode: every loop's connection and the subscriber
    /// are up), as a load balancer would before sending clients.
    @discardableResult
    func waitUntilReady(timeoutMillis: Int64 = 10_000) throws -> DaemonProcess {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while (try? readyStatus()) != 200 {
            guard EventLoop.monotonicMillis() < end else { throw SystemError(call: "wait for /readyz 200", errno: ETIMEDOUT) }
            pause(millis: 20)
        }
        return self
    }

    /// Sanitizer settings a sanitized test run (Benchmarks/sanitizers.sh) hands on to its daemons.
    static let sanitizerOptions = ["ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"]

    /// The repository this test bundle was built from.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs the binary to completion (a subcommand, `--help`, a start that fails) with exactly
    /// `environment`; its exit status, stdout and stderr.
    static func run(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var environment = environment
        for name in sanitizerOptions { environment[name] = environment[name] ?? ProcessInfo.processInfo.environment[name] }
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Sends `signal` to presenced.
    func send(_ signal: Int32) { kill(pid, signal) }

    /// Its exit status once it has exited within `timeoutMillis` (nil: still running, or killed
    /// by a signal).
    func waitForExit(timeoutMillis: Int64) -> Int32? {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        var status: Int32 = 0
        while EventLoop.monotonicMillis() < end {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { return (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil }
            pause(millis: 10)
        }
        return nil
    }

    /// SIGKILL: no drain, no cleanup — what a crash looks like to Redis and the other instances.
    func crash() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    deinit {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
