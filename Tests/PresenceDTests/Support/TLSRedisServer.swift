import Foundation
import Glibc
@testable import PresenceD

/// A TLS-only `redis-server` (`--port 0 --tls-port P`) on a free loopback port, started through
/// `setpriv --pdeathsig KILL` so a crashed test run leaves nothing behind; `stop()` ends it.
final class TLSRedisServer {
    let port: UInt16
    private let process: Process

    init(certificate: String, key: String, caFile: String, directory: String, extra: [String]) throws {
        var lastError: Error = TestPKI.Failure(description: "no attempt")
        for _ in 0..<5 {
            let port = try Self.freePort()
            let process = Process()
            var arguments = ["redis-server", "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", certificate, "--tls-key-file", key, "--tls-ca-cert-file", caFile,
                             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", directory,
                             "--daemonize", "no"] + extra
            if access("/usr/bin/setpriv", X_OK) == 0 {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                arguments = ["--pdeathsig", "KILL", "--"] + arguments
            } else {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
                arguments.removeFirst()
            }
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            if Self.waitUntilListening(port: port, process: process) {
                self.port = port
                self.process = process
                return
            }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            lastError = TestPKI.Failure(description: "redis-server did not listen on \(port) (exit \(process.terminationStatus))")
        }
        throw lastError
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// True once a TCP connection to `port` succeeds (within 5 s, while the process lives).
    private static func waitUntilListening(port: UInt16, process: Process) -> Bool {
        let deadline = EventLoop.monotonicMillis() + 5000
        while EventLoop.monotonicMillis() < deadline && process.isRunning {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = loopback(port: port)
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if rc == 0 { return true }
            usleep(10_000)
        }
        return false
    }

    private static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestPKI.Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestPKI.Failure(description: "bind: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
