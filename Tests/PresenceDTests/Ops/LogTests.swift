import Foundation
import Glibc
import RedisTestSupport
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// JSON-lines logs (docs/operations.md, "Logs"): one object per line with ts, level, msg and
/// request_id, and never a token, cookie, secret or password — checked on a real daemon's whole
/// output.
final class LogTests: XCTestCase {
    private func object(_ line: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    }

    // MARK: Line format

    func testLineCarriesRequestIDFirstClass() throws {
        let line = Log.line(
            .warn, "auth service call failed", requestID: "req-1", ["error": "refused", "loop": "0"],
            timestamp: "2026-01-02T03:04:05.678Z")
        XCTAssertEqual(
            line,
            #"{"ts":"2026-01-02T03:04:05.678Z","level":"warn","msg":"auth service call failed","request_id":"req-1","error":"refused","loop":"0"}"#
                + "\n")
        // A request_id passed among the fields (older callers) becomes the first-class one, once.
        let legacy = Log.line(.info, "m", requestID: nil, ["request_id": "req-2", "a": "b"], timestamp: "t")
        XCTAssertEqual(legacy, #"{"ts":"t","level":"info","msg":"m","request_id":"req-2","a":"b"}"# + "\n")
        // No request: no key. Reserved keys among the fields are left out (the object stays unambiguous).
        let plain = Log.line(.error, "m\n\"q\"", requestID: nil, ["ts": "x", "level": "y", "k": "v\u{1}"], timestamp: "t")
        let parsed = try object(String(plain.dropLast()))
        XCTAssertNil(parsed["request_id"])
        XCTAssertEqual(parsed["ts"] as? String, "t")
        XCTAssertEqual(parsed["level"] as? String, "error")
        XCTAssertEqual(parsed["msg"] as? String, "m\n\"q\"")
        XCTAssertEqual(parsed["k"] as? String, "v\u{1}")
        XCTAssertEqual(plain.filter { $0 == "\n" }.count, 1, "one line")
    }

    func testWriteHonoursTheLevelAndWritesWholeLines() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let (savedFD, savedLevel) = (Log.fileDescriptor, Log.minimum)
        Log.fileDescriptor = fds[1]
        Log.minimum = .info
        Log.debug("hidden")
        Log.info("shown", requestID: "r-9", ["n": "1"])
        Log.fileDescriptor = savedFD
        Log.minimum = savedLevel
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fds[0], &buffer, buffer.count)
        close(fds[0])
        let text = String(decoding: buffer[0..<max(0, n)], as: UTF8.self)
        XCTAssertEqual(text.split(separator: "\n").count, 1, text)
        let line = try object(String(text.dropLast()))
        XCTAssertEqual(line["msg"] as? String, "shown")
        XCTAssertEqual(line["request_id"] as? String, "r-9")
    }

    // MARK: Redaction

    func testSecretsThatSlipIntoALineAreMasked() {
        let jwt = TokenMinter(secret: String(repeating: "k", count: 40), audience: "presenced").mint(userID: "u", now: UnixTime.now()).token
        let cases: [(String, String)] = [
            ("redis://:hunter2@10.0.0.5:6379/2", "redis://[redacted]@10.0.0.5:6379/2"),
            ("connect rediss://ops:s3cr%40t@cache.internal:6380 failed", "connect rediss://[redacted]@cache.internal:6380 failed"),
            ("https://tok@example.org/x", "https://[redacted]@example.org/x"),
            ("redis://ops:***@h:1 and redis://:***@h:2", "redis://ops:***@h:1 and redis://:***@h:2"),
            ("GET /ws?token=abc.def.ghi&x=1", "GET /ws?token=[redacted]&x=1"),
            ("Authorization: Bearer abc123", "Authorization: Bearer [redacted]"),
            ("Cookie: better-auth.session_token=xyz; other=1", "Cookie: [redacted]"),
            ("token \(jwt) refused", "token [redacted] refused"),
        ]
        for (input, expected) in cases {
            XCTAssertEqual(LogRedaction.clean(input), expected, input)
        }
        for harmless in [
            "listening", "https://casa.devarno.cloud", "redis://10.0.0.5:6379", "token refused", "reason: expired",
            "forward queue: no longer the reader", "eyes only", "the keyJ",
        ] {
            XCTAssertEqual(LogRedaction.clean(harmless), harmless)
        }
        XCTAssertEqual(LogRedaction.clean("anything", key: "CHAT_SERVICE_TOKEN"), LogRedaction.mask)
        XCTAssertEqual(LogRedaction.clean("anything", key: "cookie"), LogRedaction.mask)
        XCTAssertEqual(LogRedaction.clean("anything", key: "Authorization"), LogRedaction.mask)
        XCTAssertEqual(LogRedaction.clean("2", key: "loop"), "2")
        let line = Log.line(.warn, "call failed", requestID: nil, ["url": "redis://:hunter2@h:1", "secret": "hunter2"], timestamp: "t")
        XCTAssertFalse(line.contains("hunter2"), line)
    }

    // MARK: A real daemon's output

    /// presenced as a process with LOG_LEVEL=debug, a known secret, a Redis URL with a password,
    /// a chat-service token and better-auth; tokens are used (valid, replayed, forged), a cookie
    /// goes to /api/v1/ws-token and a bearer token to the presence API. Neither the secret, nor
    /// any token, nor the cookie, nor a password appears anywhere in stdout or stderr; every
    /// stdout line is a JSON object with ts, level and msg, and request ids are first-class.
    func testDaemonOutputHoldsNoSecretAndIsJSONLines() throws {
        let secret = "log-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
        let previous = "log-test-previous-0123456789-abcdefghijklmnopqrstu"
        let redisPassword = "redis-pw-77d1e9"
        let chatToken = "chat-svc-token-5be21a"
        let cookieValue = "session-cookie-value-a8c3f0"
        // better-auth: one cookie is a session, another breaks the call (a logged failure).
        let betterAuth = try StandInHTTPServer { request in
            let cookie = request.header("cookie") ?? ""
            if cookie.contains("broken") { return StandInHTTPServer.response(status: 500, body: "boom " + cookie) }
            return StandInHTTPServer.response(status: 200, body: #"{"session":{"id":"s-1"},"user":{"id":"u-alice","name":"A"}}"#)
        }
        defer { betterAuth.stop() }
        let redis: RedisServerProcess? = access("/usr/bin/redis-server", X_OK) == 0 ? try RedisServerProcess(password: redisPassword) : nil
        let redisURL = redis?.url() ?? "redis://:\(redisPassword)@127.0.0.1:1"
        let directory = NSTemporaryDirectory() + "presenced-logs-" + RequestID.make()
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }

        let probe = try Sockets.listen(address: "127.0.0.1", port: 0)
        let port = Sockets.localPort(probe)
        close(probe)
        let stdoutPath = directory + ".out", stderrPath = directory + ".err"
        XCTAssertTrue(FileManager.default.createFile(atPath: stdoutPath, contents: nil))
        XCTAssertTrue(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        defer {
            _ = try? FileManager.default.removeItem(atPath: stdoutPath)
            _ = try? FileManager.default.removeItem(atPath: stderrPath)
        }
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        daemon.environment = [
            "PORT": "\(port)", "BIND": "127.0.0.1", "LOG_LEVEL": "debug", "THREADS": "2", "PATH": "/usr/bin:/bin",
            "WS_TOKEN_SECRET": secret, "WS_TOKEN_SECRET_PREVIOUS": previous, "REDIS_URL": redisURL,
            "AUTH_SERVICE_URL": betterAuth.baseURL, "CHANNELS_OPEN": "1", "CHAT_SERVICE_URL": "http://127.0.0.1:9",
            "CHAT_SERVICE_TOKEN": chatToken,
            "STATE_DIRECTORY": directory,
        ]
        for name in DaemonProcess.sanitizerOptions { daemon.environment?[name] = ProcessInfo.processInfo.environment[name] }
        daemon.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        daemon.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try daemon.run()
        defer {
            if daemon.isRunning {
                kill(daemon.processIdentifier, SIGKILL)
                daemon.waitUntilExit()
            }
        }
        try waitForHealth(port: port)

        let minter = TokenMinter(secret: secret, audience: "presenced")
        let valid = minter.mint(userID: "alice", ttl: 60, now: UnixTime.now()).token
        let forged = TokenMinter(secret: String(repeating: "z", count: 40), audience: "presenced").mint(
            userID: "mallory", now: UnixTime.now()
        ).token
        let bearer = minter.mint(userID: "bob", ttl: 60, now: UnixTime.now()).token
        XCTAssertEqual(try upgrade(port, token: valid, requestID: "req-log-ok"), 101)
        XCTAssertEqual(try upgrade(port, token: valid, requestID: "req-log-replayed"), 401)
        XCTAssertEqual(try upgrade(port, token: forged, requestID: "req-log-forged"), 401)
        let presence = try request(port, "GET /api/v1/presence?channel=room HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(bearer)\r\n\r\n")
        XCTAssertTrue([200, 503].contains(presence.status), "\(presence.status)")
        let issued = try request(
            port,
            "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nX-Request-ID: req-log-cookie\r\nCookie: better-auth.session_token=\(cookieValue)\r\nContent-Length: 2\r\n\r\n{}"
        )
        XCTAssertEqual(issued.status, 200, issued.body)
        let issuedToken = try XCTUnwrap((try object(issued.body))["token"] as? String)
        let failed = try request(
            port,
            "POST /api/v1/ws-token HTTP/1.1\r\nHost: x\r\nX-Request-ID: req-log-broken\r\nCookie: better-auth.session_token=broken-\(cookieValue)\r\nContent-Length: 2\r\n\r\n{}"
        )
        XCTAssertEqual(failed.status, 502, failed.body)

        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        let out = try String(contentsOfFile: stdoutPath, encoding: .utf8)
        let err = try String(contentsOfFile: stderrPath, encoding: .utf8)
        let all = out + err
        for (what, value) in [
            ("secret", secret), ("previous secret", previous), ("Redis password", redisPassword),
            ("chat-service token", chatToken), ("cookie", cookieValue), ("valid token", valid),
            ("forged token", forged), ("bearer token", bearer), ("issued token", issuedToken),
        ] {
            XCTAssertFalse(all.contains(value), "the \(what) appears in the output:\n\(all)")
        }
        // Their claims and signatures alone too (the header is the same in every token).
        for token in [valid, forged, bearer, issuedToken] {
            for part in token.split(separator: ".").dropFirst() {
                XCTAssertFalse(all.contains(part), "a token part appears in the output:\n\(all)")
            }
        }

        var requestIDs: Set<String> = []
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertGreaterThan(lines.count, 3, out)
        for line in lines {
            let json = try object(String(line))
            XCTAssertNotNil(json["ts"] as? String, String(line))
            XCTAssertNotNil(json["level"] as? String, String(line))
            XCTAssertNotNil(json["msg"] as? String, String(line))
            if let id = json["request_id"] as? String { requestIDs.insert(id) }
        }
        XCTAssertTrue(
            requestIDs.isSuperset(of: ["req-log-ok", "req-log-replayed", "req-log-forged", "req-log-broken"]), "\(requestIDs)\n\(out)")
        XCTAssertTrue(out.contains(#""msg":"token refused","request_id":"req-log-replayed","reason":"replayed""#), out)
        XCTAssertEqual(err, "", "nothing on stderr once started")
        // The paths that could leak were taken: a failed auth call and, with Redis, its URL.
        XCTAssertTrue(out.contains(#""msg":"auth service call failed","request_id":"req-log-broken""#), out)
        if redis != nil { XCTAssertTrue(out.contains(#""msg":"Redis reached","url":"redis://:***@127.0.0.1:"#), out) }
        withExtendedLifetime(redis) {}
    }

    // MARK: Helpers

    private func waitForHealth(port: UInt16) throws {
        let end = EventLoop.monotonicMillis() + 10_000
        while EventLoop.monotonicMillis() < end {
            if let reply = try? request(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), reply.status == 200 { return }
            pause(millis: 50)
        }
        throw SystemError(call: "presenced did not start", errno: ETIMEDOUT)
    }

    private func request(_ port: UInt16, _ text: String) throws -> (status: Int, body: String) {
        let socket = try TestSocket(port: port, receiveTimeoutMillis: 10_000)
        try socket.write(text)
        let (head, body) = try socket.readHTTPResponse()
        return (head.status, String(decoding: body, as: UTF8.self))
    }

    private func upgrade(_ port: UInt16, token: String, requestID: String) throws -> Int {
        try request(
            port,
            "GET /ws?token=\(token) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Request-ID: \(requestID)\r\n\r\n"
        ).status
    }
}
