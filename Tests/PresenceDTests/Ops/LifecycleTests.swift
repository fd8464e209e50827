import Foundation
import Glibc
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
final class NotifySocketStandIn {
    let path: String
    private let fd: Int32

    init() throws {
        path = NSTemporaryDirectory() + "presenced-notify-" + RequestID.make()
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw SystemError(call: "bind \(path)", errno: errno) }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram within `timeoutMillis`, or nil.
    func next(timeoutMillis: Int) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeoutMillis)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    /// Every datagram that arrives within `millis`.
    func collect(forMillis millis: Int64) -> [String] {
        var all: [String] = []
        let end = EventLoop.monotonicMillis() + millis
        while true {
            let left = end - EventLoop.monotonicMillis()
            guard left > 0 else { return all }
            if let message = next(timeoutMillis: Int(left)) { all.append(message) }
        }
    }

    /// Waits (up to `timeoutMillis`) for a datagram containing `line`; the ones before it are dropped.
    func await(_ line: String, timeoutMillis: Int64 = 5_000) -> String? {
        let end = EventLoop.monotonicMillis() + timeoutMillis
        while EventLoop.monotonicMillis() < end {
            if let message = next(timeoutMillis: 100), message.split(separator: "\n").contains(Substring(line)) { return message }
        }
        return nil
    }
}

/// presenced as systemd runs it, as a real process: sd_notify datagrams, the watchdog gated on
/// every loop's liveness, socket activation, the SIGTERM drain, SIGHUP secret rotation.
final class LifecycleTests: XCTestCase {
    private let secretA = "lifecycle-secret-A-0123456789abcdefghijkl"
    private let secretB = "lifecycle-secret-B-0123456789abcdefghijkl"

    private func token(_ secret: String, _ user: String) -> String {
        TokenMinter(secret: secret, audience: "presenced").mint(userID: user, ttl: 60, now: UnixTime.now()).token
    }

    /// The HTTP status of an upgrade with `token`.
    private func upgradeStatus(port: UInt16, token: String) throws -> Int {
        let socket = try TestSocket(port: port)
        try socket.write(ClientHandshake(host: "127.0.0.1:\(port)", path: "/ws?token=" + token).requestBytes())
        return try socket.readHTTPResponse().0.status
    }

    private func status(port: UInt16, path: String) throws -> Int {
        let socket = try TestSocket(port: port)
        try socket.write("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        return try socket.readHTTPResponse().0.status
    }

    func testReadyWatchdogAndStoppingReachTheNotifySocket() throws {
        let notify = try NotifySocketStandIn()
        let daemon = try DaemonProcess(environment: [
            "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "600000",
            "WS_TOKEN_SECRET": secretA,
        ])
        let ready = notify.await("READY=1")
        XCTAssertNotNil(ready)
        XCTAssertTrue(ready?.contains("MAINPID=\(daemon.pid)") == true, ready ?? "")
        let pings = notify.collect(forMillis: 1_500).filter { $0 == "WATCHDOG=1" }.count
        XCTAssertGreaterThanOrEqual(pings, 4, "a 600 ms watchdog is pinged every 200 ms")
        daemon.send(SIGTERM)
        XCTAssertNotNil(notify.await("STOPPING=1"))
        XCTAssertEqual(daemon.waitForExit(timeoutMillis: 5_000), 0)
    }

    /// One loop stops running (a test-only hook, in debug builds only, blocks it): the pings stop although the process
    /// and the other loop are fine, so systemd would restart it.
    func testAStalledLoopStopsTheWatchdogPings() throws {
        let notify = try NotifySocketStandIn()
        let daemon = try DaemonProcess(environment: [
            "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "600000", "THREADS": "2",
            "PRESENCED_TEST_STALL_LOOP": "1", "WS_TOKEN_SECRET": secretA,
        ])
        XCTAssertNotNil(notify.await("READY=1"))
        let pings = notify.collect(forMillis: 1_500).filter { $0 == "WATCHDOG=1" }.count
        XCTAssertLessThanOrEqual(pings, 1, "at most the round that was answered before the loop stalled")
        withExtendedLifetime(daemon) {}
    }

    /// A listening socket passed as descriptor 3 (LISTEN_FDS=1, LISTEN_PID) is served on both
    /// backends; PORT is ignored.
    func testSocketActivationServesThePassedSocket() throws {
        for backend in availableBackends {
            let listener = try Sockets.listen(address: "127.0.0.1", port: 0)
            defer { close(listener) }
            let notify = try NotifySocketStandIn()
            let daemon = try DaemonProcess(
                environment: [
                    "IO_BACKEND": backend.rawValue, "WS_TOKEN_SECRET": secretA,
                    "NOTIFY_SOCKET": notify.path,
                ], listener: listener)
            XCTAssertNotNil(notify.await("READY=1"), backend.rawValue)
            let alice = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token(secretA, "alice"))
            try alice.join("family", expecting: ["alice"])
            daemon.send(SIGTERM)
            XCTAssertEqual(daemon.waitForExit(timeoutMillis: 8_000), 0, backend.rawValue)
        }
    }

    /// SIGTERM: /readyz says 503 at once, every client gets a 1001 close, the closes are spread
    /// over DRAIN_WINDOW, and presenced exits 0 within the window plus 2 s.
    func testSIGTERMDrainsWith1001SpreadOverTheWindow() throws {
        let daemon = try DaemonProcess(environment: ["DRAIN_WINDOW": "2s", "WS_TOKEN_SECRET": secretA, "THREADS": "2"])
        var clients: [TestWebSocket] = []
        for i in 0..<20 {
            let client = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token(secretA, "u\(i)"), receiveTimeoutMillis: 6_000)
            try client.join("c\(i)", expecting: ["u\(i)"])
            clients.append(client)
        }
        let start = EventLoop.monotonicMillis()
        daemon.send(SIGTERM)
        pause(millis: 100)
        XCTAssertEqual(try status(port: daemon.port, path: "/readyz"), 503)
        var closes: [(millis: Int64, code: UInt16?)] = []
        for client in clients {
            while true {
                let frame = try client.receiveMessage()
                if case .close(let code) = frame {
                    closes.append((EventLoop.monotonicMillis() - start, code))
                    break
                }
                if case .eof = frame {
                    closes.append((EventLoop.monotonicMillis() - start, nil))
                    break
                }
            }
        }
        XCTAssertEqual(closes.map(\.code), Array(repeating: 1001, count: 20))
        let times = closes.map(\.millis).sorted()
        XCTAssertGreaterThanOrEqual(times.last! - times.first!, 1_000, "spread over the 2 s window: \(times)")
        let exit = daemon.waitForExit(timeoutMillis: 4_000 - (EventLoop.monotonicMillis() - start))
        XCTAssertEqual(exit, 0, "exit 0 within the window + 2 s")
    }

    /// SIGHUP with ENV_FILE: rotate to B keeping A as previous (both accepted, connections stay),
    /// then retire A (refused, and A's connections closed with 4401 so they come back with a B
    /// token); a bad file changes nothing.
    func testSIGHUPRotatesTheSecretWithoutDroppingConnections() throws {
        let file = NSTemporaryDirectory() + "presenced-env-" + RequestID.make()
        defer { unlink(file) }
        func write(_ text: String) throws { try text.write(toFile: file, atomically: true, encoding: .utf8) }
        try write("WS_TOKEN_SECRET=\(secretA)\n")
        let notify = try NotifySocketStandIn()
        let daemon = try DaemonProcess(environment: ["WS_TOKEN_SECRET": secretA, "ENV_FILE": file, "NOTIFY_SOCKET": notify.path])
        XCTAssertNotNil(notify.await("READY=1"))
        let old = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token(secretA, "old"))
        try old.join("family", expecting: ["old"])
        func reload() {
            daemon.send(SIGHUP)
            XCTAssertNotNil(notify.await("RELOADING=1"))
            XCTAssertNotNil(notify.await("READY=1"))
        }

        try write("# rotation, step 1\nWS_TOKEN_SECRET=\"\(secretB)\"\nexport WS_TOKEN_SECRET_PREVIOUS=\(secretA)\n")
        reload()
        XCTAssertEqual(try upgradeStatus(port: daemon.port, token: token(secretB, "b1")), 101)
        XCTAssertEqual(try upgradeStatus(port: daemon.port, token: token(secretA, "a1")), 101)
        try old.sendText(#"{"type":"ping"}"#)
        XCTAssertEqual(try old.nextJSON()["type"] as? String, "pong", "A is still accepted: its connection stays")
        let newer = try TestWebSocket(port: daemon.port, path: "/ws?token=" + token(secretB, "newer"))

        try write("WS_TOKEN_SECRET=\(secretB)\n")
        reload()
        XCTAssertEqual(try upgradeStatus(port: daemon.port, token: token(secretA, "a2")), 401, "the retired secret")
        try old.expectClose(4401)
        XCTAssertEqual(try upgradeStatus(port: daemon.port, token: token(secretB, "b2")), 101)

        try write("WS_TOKEN_SECRET=short\n")
        reload()
        XCTAssertEqual(try upgradeStatus(port: daemon.port, token: token(secretB, "b3")), 101, "a bad file changes nothing")

        try newer.sendText(#"{"type":"ping"}"#)
        XCTAssertEqual(try newer.nextJSON()["type"] as? String, "pong", "B's connection is still open")
    }
}
