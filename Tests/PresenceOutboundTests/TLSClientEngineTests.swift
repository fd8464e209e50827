import Foundation
import Glibc
import RedisTestSupport
import TestSupport
import XCTest

@testable import PresenceOutbound

/// `TLSClientEngine` against real TLS servers (redis-server built with TLS) on loopback, driven
/// from a plain non-blocking TCP socket by a small pump: the engine only ever sees bytes.
/// Certificates come from `TestPKI` (the `openssl` CLI): a trusted CA, and a second CA that is
/// never trusted.
final class TLSClientEngineTests: XCTestCase {
    /// The trusted CA and its certificates, and an untrusted CA, made once for the whole class.
    private static let pki:
        (
            trusted: TestPKI, untrusted: TestPKI, localhost: (certificate: String, key: String),
            dnsOnly: (certificate: String, key: String),
            foreign: (certificate: String, key: String)
        )? = {
            guard let trusted = try? TestPKI(), let untrusted = try? TestPKI(),
                let localhost = try? trusted.issue("localhost", subjectAltName: "DNS:localhost,IP:127.0.0.1"),
                let dnsOnly = try? trusted.issue("dnsonly", subjectAltName: "DNS:localhost"),
                let foreign = try? untrusted.issue("foreign", subjectAltName: "DNS:localhost,IP:127.0.0.1")
            else { return nil }
            return (trusted, untrusted, localhost, dnsOnly, foreign)
        }()

    private var servers: [RedisServerProcess] = []

    override class func tearDown() {
        pki?.trusted.remove()
        pki?.untrusted.remove()
        super.tearDown()
    }

    override func tearDown() {
        for server in servers { server.stop() }
        servers = []
        super.tearDown()
    }

    private func trustedCA() throws -> String { try XCTUnwrap(Self.pki, "could not make the test PKI").trusted.caFile }

    /// A TLS-only redis-server serving `certificate` (default: the trusted `localhost` one).
    private func redis(
        _ certificate: (certificate: String, key: String)? = nil, caFile: String? = nil,
        extra: [String] = []
    ) throws -> UInt16 {
        let pki = try XCTUnwrap(Self.pki, "could not make the test PKI with the openssl CLI")
        let served = certificate ?? pki.localhost
        let server = try RedisServerProcess(
            extraArguments: extra,
            tls: .init(
                certificate: served.certificate, key: served.key,
                caFile: caFile ?? pki.trusted.caFile))
        servers.append(server)
        return server.port
    }

    private func connect(_ port: UInt16, serverName: String = "localhost", caFile: String? = nil) throws -> TLSPump {
        try TLSPump(port: port, engine: TLSClientEngine(serverName: serverName, caFile: caFile ?? trustedCA()))
    }

    /// A RESP command.
    private func command(_ args: [UInt8]...) -> [UInt8] {
        var out = Array("*\(args.count)\r\n".utf8)
        for arg in args {
            out += Array("$\(arg.count)\r\n".utf8) + arg + [13, 10]
        }
        return out
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func send(_ text: String, to engine: TLSClientEngine, output: inout [UInt8]) throws {
        try Array(text.utf8).withUnsafeBytes { try engine.send($0, output: &output) }
    }

    /// The `.tls` message `body` throws (fails the test when it succeeds or throws something else).
    private func tlsFailure(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected a TLS failure", file: file, line: line)
        } catch let OutboundError.tls(message) {
            return message
        } catch {
            XCTFail("expected a TLS failure, got \(error)", file: file, line: line)
        }
        return ""
    }

    // MARK: - Redis over TLS

    func testHandshakeAndPing() throws {
        let pump = try connect(try redis())
        XCTAssertFalse(pump.engine.isEstablished)
        try pump.handshake()
        XCTAssertTrue(pump.engine.isEstablished)
        XCTAssertEqual(pump.engine.protocolVersion, "TLSv1.3")
        // redis sends two TLS 1.3 session tickets once it has our Finished: post-handshake
        // records that must be consumed without yielding plaintext or failing.
        let atHandshake = pump.ciphertextBytes
        try pump.run(timeoutMillis: 2000) { pump.ciphertextBytes > atHandshake }
        XCTAssertEqual(pump.plaintext, [])
        try pump.send(bytes("PING\r\n"))
        try pump.run { pump.plaintext.count >= 7 }
        XCTAssertEqual(String(decoding: pump.plaintext, as: UTF8.self), "+PONG\r\n")
        XCTAssertFalse(pump.engine.peerClosed)
    }

    func testTLS12Handshake() throws {
        let pump = try connect(try redis(extra: ["--tls-protocols", "TLSv1.2"]))
        try pump.handshake()
        XCTAssertEqual(pump.engine.protocolVersion, "TLSv1.2")
        try pump.send(bytes("PING\r\n"))
        try pump.run { pump.plaintext.count >= 7 }
        XCTAssertEqual(String(decoding: pump.plaintext, as: UTF8.self), "+PONG\r\n")
    }

    func testLargeValueRoundTrip() throws {
        let pump = try connect(try redis())
        try pump.handshake()
        let value = (0..<100 * 1024).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 9) }
        try pump.send(command(bytes("SET"), bytes("big"), value) + command(bytes("GET"), bytes("big")))
        let expected = bytes("+OK\r\n$\(value.count)\r\n") + value + [13, 10]
        try pump.run { pump.plaintext.count >= expected.count }
        XCTAssertEqual(pump.plaintext.count, expected.count)
        XCTAssertTrue(pump.plaintext == expected, "the value came back altered")
        XCTAssertGreaterThan(pump.ciphertextBytes, 100 * 1024 + 7 * 17, "100 KiB needs at least seven records")
    }

    func testCommandsSentBeforeTheHandshakeAreAnsweredInOrder() throws {
        let pump = try connect(try redis())
        try pump.engine.start(output: &pump.output)
        let clientHello = pump.output.count
        XCTAssertGreaterThan(clientHello, 0)
        for text in ["PING\r\n", "SET n 1\r\n", "INCR n\r\n", "GET n\r\n", "ECHO done\r\n"] {
            try send(text, to: pump.engine, output: &pump.output)
        }
        XCTAssertEqual(pump.output.count, clientHello, "nothing but the ClientHello goes out before the handshake")
        XCTAssertFalse(pump.engine.isEstablished)
        let expected = "+PONG\r\n+OK\r\n:2\r\n$1\r\n2\r\n$4\r\ndone\r\n"
        try pump.run { pump.plaintext.count >= expected.utf8.count }
        XCTAssertEqual(String(decoding: pump.plaintext, as: UTF8.self), expected)
    }

    func testByteAtATimeFeeding() throws {
        let pump = try connect(try redis())
        pump.byteAtATime = true
        try pump.handshake()
        let value = (0..<40 * 1024).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try pump.send(bytes("PING\r\n") + command(bytes("SET"), bytes("k"), value) + command(bytes("GET"), bytes("k")))
        let expected = bytes("+PONG\r\n+OK\r\n$\(value.count)\r\n") + value + [13, 10]
        try pump.run { pump.plaintext.count >= expected.count }
        XCTAssertTrue(pump.plaintext == expected, "the byte-at-a-time stream came back altered")
        XCTAssertEqual(pump.receiveCalls, pump.ciphertextBytes, "every byte went in on its own")
    }

    // MARK: - Verification

    func testCertificateFromAnUntrustedCAIsRefused() throws {
        let pki = try XCTUnwrap(Self.pki)
        let port = try redis(pki.foreign, caFile: pki.untrusted.caFile)
        for caFile in [try trustedCA(), nil] as [String?] {
            let pump = try TLSPump(port: port, engine: TLSClientEngine(serverName: "localhost", caFile: caFile))
            let message = tlsFailure { try pump.handshake() }
            XCTAssertTrue(message.contains("certificate verify failed"), message)
            XCTAssertFalse(pump.engine.isEstablished)
            // A dead engine keeps failing the same way.
            var output: [UInt8] = []
            XCTAssertEqual(
                tlsFailure { try send("PING", to: pump.engine, output: &output) },
                message)
            XCTAssertEqual(output, [])
        }
        // The same server is fine for a client that trusts its CA: the refusal above is the CA's.
        let pump = try connect(port, caFile: pki.untrusted.caFile)
        try pump.handshake()
        XCTAssertTrue(pump.engine.isEstablished)
    }

    func testWrongServerNameIsRefused() throws {
        let pump = try connect(try redis(), serverName: "example.com")
        let message = tlsFailure { try pump.handshake() }
        XCTAssertTrue(message.contains("certificate verify failed"), message)
        XCTAssertTrue(message.contains("hostname mismatch"), message)
    }

    func testIPLiteralMatchesTheIPSubjectAltName() throws {
        let pump = try connect(try redis(), serverName: "127.0.0.1")
        try pump.handshake()
        try pump.send(bytes("PING\r\n"))
        try pump.run { pump.plaintext.count >= 7 }
        XCTAssertEqual(String(decoding: pump.plaintext, as: UTF8.self), "+PONG\r\n")

        // A certificate without that IP in its subjectAltName does not match the literal.
        let pki = try XCTUnwrap(Self.pki)
        let other = try connect(try redis(pki.dnsOnly), serverName: "127.0.0.1")
        let message = tlsFailure { try other.handshake() }
        XCTAssertTrue(message.contains("certificate verify failed"), message)
        XCTAssertTrue(message.contains("IP address mismatch"), message)
    }

    // MARK: - Closing and failures

    func testPeerCloseNotifySetsPeerClosed() throws {
        let pump = try connect(try redis())
        try pump.handshake()
        try pump.send(bytes("QUIT\r\n"))
        try pump.run { pump.engine.peerClosed }
        XCTAssertEqual(String(decoding: pump.plaintext, as: UTF8.self), "+OK\r\n")
        XCTAssertTrue(pump.engine.peerClosed)
        // Our close_notify in answer, then no more sending.
        var output: [UInt8] = []
        pump.engine.close(output: &output)
        XCTAssertGreaterThan(output.count, 0)
        XCTAssertEqual(output.first, 0x17, "TLS 1.3 hides the alert in an application-data record")
        var again: [UInt8] = []
        pump.engine.close(output: &again)
        XCTAssertEqual(again, [], "one close_notify only")
        XCTAssertThrowsError(try send("PING", to: pump.engine, output: &again))
    }

    func testPeerAlertAfterTheHandshakeIsReported() throws {
        // A server that wants a client certificate: in TLS 1.3 the client finishes first, then
        // the server answers the missing certificate with an alert (and closes; nothing more is
        // sent from here, so the alert is never lost to a reset).
        let pump = try connect(try redis(extra: ["--tls-auth-clients", "yes"]))
        try pump.handshake()
        XCTAssertTrue(pump.engine.isEstablished)
        let message = tlsFailure { try pump.run { false } }
        XCTAssertTrue(message.contains("alert certificate required"), message)
        XCTAssertEqual(pump.plaintext, [])
    }

    func testGarbageFromThePeerIsAProtocolError() throws {
        let engine = try TLSClientEngine(serverName: "localhost", caFile: trustedCA())
        var output: [UInt8] = [], plaintext: [UInt8] = []
        try engine.start(output: &output)
        XCTAssertEqual(output.first, 0x16, "a handshake record")
        output = []
        let reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        let message = tlsFailure {
            try Array(reply.utf8).withUnsafeBytes { try engine.receive($0, plaintext: &plaintext, output: &output) }
        }
        XCTAssertTrue(message.hasPrefix("handshake: "), message)
        XCTAssertFalse(engine.isEstablished)
        XCTAssertEqual(plaintext, [])
    }

    func testCloseBeforeTheHandshakeSendsNothingAndDropsQueuedData() throws {
        let pump = try connect(try redis())
        try pump.engine.start(output: &pump.output)
        try send("PING\r\n", to: pump.engine, output: &pump.output)
        var closing: [UInt8] = []
        pump.engine.close(output: &closing)
        XCTAssertEqual(closing, [])
        XCTAssertThrowsError(try send("PING", to: pump.engine, output: &closing))
        // The handshake may still complete, but the PING queued before `close` never goes out.
        try pump.run { pump.engine.isEstablished }
        XCTAssertThrowsError(try pump.run(timeoutMillis: 300) { !pump.plaintext.isEmpty })
        XCTAssertEqual(pump.plaintext, [])
    }

    func testMissingCAFileIsATLSError() {
        let message = tlsFailure { _ = try TLSClientEngine(serverName: "localhost", caFile: "/nonexistent/ca.pem") }
        XCTAssertTrue(message.contains("CA file"), message)
    }
}

// MARK: - Pump

/// A loopback TCP connection that moves the engine's ciphertext: writes `output`, reads what the
/// server sends and feeds it to the engine (whole or one byte per call), collecting plaintext.
private final class TLSPump {
    struct Failure: Error, CustomStringConvertible { var description: String }

    let engine: TLSClientEngine
    let fd: Int32
    var output: [UInt8] = []
    var plaintext: [UInt8] = []
    var byteAtATime = false
    private(set) var receiveCalls = 0
    private(set) var ciphertextBytes = 0
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(port: UInt16, engine: TLSClientEngine) throws {
        self.engine = engine
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw Failure(description: "connect to \(port): errno \(errno)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { Glibc.close(fd) }

    /// Starts the handshake and pumps until it completes.
    func handshake(timeoutMillis: Int64 = 5000) throws {
        try engine.start(output: &output)
        try run(timeoutMillis: timeoutMillis) { self.engine.isEstablished }
    }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in try engine.send(raw, output: &output) }
    }

    /// Writes pending output, then reads and feeds until `done` (checked after each step); throws
    /// on timeout, on the server closing first, and whatever the engine throws.
    func run(timeoutMillis: Int64 = 5000, until done: () -> Bool) throws {
        let deadline = Self.nowMillis() + timeoutMillis
        while true {
            try flush(deadline: deadline)
            if done() { return }
            let wait = deadline - Self.nowMillis()
            guard wait > 0 else { throw Failure(description: "timed out (plaintext so far: \(plaintext.count) bytes)") }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(wait)) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw Failure(description: "the server closed the connection") }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw Failure(description: "recv: errno \(errno)")
            }
            ciphertextBytes += n
            try buffer.withUnsafeBytes { raw in
                if byteAtATime {
                    for i in 0..<n {
                        receiveCalls += 1
                        try engine.receive(
                            UnsafeRawBufferPointer(rebasing: raw[i..<(i + 1)]), plaintext: &plaintext,
                            output: &output)
                    }
                } else {
                    receiveCalls += 1
                    try engine.receive(UnsafeRawBufferPointer(rebasing: raw[0..<n]), plaintext: &plaintext, output: &output)
                }
            }
        }
    }

    private func flush(deadline: Int64) throws {
        var offset = 0
        defer { output.removeFirst(offset) }
        while offset < output.count {
            let n = output.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
                continue
            }
            guard n < 0, errno == EAGAIN || errno == EINTR else { throw Failure(description: "send: errno \(errno)") }
            let wait = deadline - Self.nowMillis()
            guard wait > 0 else { throw Failure(description: "timed out writing") }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, Int32(wait))
        }
    }

    static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
