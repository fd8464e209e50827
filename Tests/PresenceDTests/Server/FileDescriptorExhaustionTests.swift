import Glibc
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// presenced out of file descriptors (a low RLIMIT_NOFILE): accepting backs off instead of
/// spinning, the clients it has keep working, and it serves new ones once descriptors free up.
final class FileDescriptorExhaustionTests: XCTestCase {
    /// utime + stime of `pid` in clock ticks.
    private func cpuTicks(_ pid: pid_t) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    func testAcceptBacksOffWhenDescriptorsRunOut() throws {
        for backend in availableBackends {
            let daemon = try DaemonProcess(
                environment: [
                    "WS_TOKEN_SECRET": TestServer.secret, "THREADS": "1",
                    "IO_BACKEND": backend.rawValue,
                ], shellLimits: "ulimit -n 64")
            let token = {
                TokenMinter(secret: TestServer.secret, audience: "presenced").mint(userID: $0, ttl: 60, now: UnixTime.now()).token
            }
            let alice = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token("alice"))
            try alice.join("family", expecting: ["alice"])
            // More connections than descriptors: the kernel queues the rest in the backlog.
            var flood: [TestSocket] = []
            for _ in 0..<120 { flood.append(try TestSocket(port: daemon.port)) }
            pause(millis: 300)
            let before = cpuTicks(daemon.pid)
            pause(millis: 2_000)
            let used = cpuTicks(daemon.pid) - before
            XCTAssertLessThan(used, 40, "\(backend): \(used) ticks in 2 s: accept must back off, not spin")
            try alice.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try alice.nextJSON()["type"] as? String, "pong", "\(backend): existing clients keep working")
            flood.removeAll()
            var served = false
            let end = EventLoop.monotonicMillis() + 10_000
            while !served && EventLoop.monotonicMillis() < end {
                if let bob = try? TestWebSocket(port: daemon.port, path: "/ws?token=" + token("bob-\(EventLoop.monotonicMillis())")) {
                    try bob.sendText(#"{"type":"ping"}"#)
                    served = (try? bob.nextJSON()["type"] as? String) == "pong"
                } else {
                    pause(millis: 100)
                }
            }
            XCTAssertTrue(served, "\(backend): new clients are served once descriptors are free again")
        }
    }
}
