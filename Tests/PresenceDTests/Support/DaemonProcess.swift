import Glibc
import XCTest
import RedisTestSupport
@testable import PresenceD

/// The built `presenced` binary run as a child process (for what an in-process server cannot
/// show, such as SIGKILL). Killed in deinit.
final class DaemonProcess {
    let pid: pid_t
    let port: UInt16

    /// `.build/debug/presenced` (built by `swift build --build-tests`), found from this file's path.
    static var binary: String {
        var path = #filePath
        for _ in 0..<4 { path = String(path[..<path.lastIndex(of: "/")!]) } // …/Tests/PresenceDTests/Support/x → repo
        return path + "/.build/debug/presenced"
    }

    init(environment: [String: String]) throws {
        let probe = try Sockets.listen(address: "127.0.0.1", port: 0)
        port = Sockets.localPort(probe)
        close(probe)
        var env = environment
        env["PORT"] = String(port)
        env["BIND"] = "127.0.0.1"
        env["LOG_LEVEL"] = env["LOG_LEVEL"] ?? "warn"
        env["PATH"] = "/usr/bin:/bin"
        // No inherited descriptors: the child must not keep the test's sockets open.
        let child = try RedisServerProcess.spawn([Self.binary], environment: env.map { "\($0.key)=\($0.value)" })
        pid = child
        // Up when it answers /healthz.
        let end = EventLoop.monotonicMillis() + 10_000
        while EventLoop.monotonicMillis() < end {
            if let socket = try? TestSocket(port: port, receiveTimeoutMillis: 1000),
               (try? socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) != nil,
               let (head, _) = try? socket.readHTTPResponse(), head.status == 200 {
                return
            }
            pause(millis: 50)
        }
        kill(pid, SIGKILL)
        throw SystemError(call: "presenced did not start", errno: ETIMEDOUT)
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
