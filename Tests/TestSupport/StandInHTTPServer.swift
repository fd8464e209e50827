import Foundation
import Glibc
import XCTest

/// A tiny real HTTP/1.1 server for outbound-client tests: a blocking accept loop on 127.0.0.1
/// (port chosen by the kernel) in a background thread, one thread per connection. It records
/// every request it read and answers as the test's closure says, then closes the connection.
package final class StandInHTTPServer: @unchecked Sendable {
    /// One request as received.
    package struct Request: Sendable {
        package var requestLine: String
        var headers: [(name: String, value: String)]
        package var body: [UInt8]

        /// The first value of `name` (case-insensitive).
        package func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// Every value of `name`.
        package func values(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
    }

    /// How to answer a request.
    package enum Reply: Sendable {
        /// These bytes, then close.
        case raw([UInt8])
        /// These bytes one at a time, `everyMillis` apart, then close.
        case drip([UInt8], everyMillis: Int)
        /// Nothing at all; the connection stays open until `stop()`.
        case silent
    }

    private var listener: StandInListener!
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var held: [Int32] = []
    private var stopped = false
    private let respond: @Sendable (Request) -> Reply
    private let answerWithoutReading: Bool

    /// `answerWithoutReading`: reply as soon as a connection is accepted (to an empty request),
    /// for clients that speak something other than HTTP first (a TLS ClientHello).
    package init(answerWithoutReading: Bool = false, _ respond: @escaping @Sendable (Request) -> Reply) throws {
        self.respond = respond
        self.answerWithoutReading = answerWithoutReading
        listener = try StandInListener { [self] fd in
            Thread { [self] in serve(fd) }.start()
        }
    }

    /// The port it listens on (127.0.0.1).
    package var port: UInt16 { listener.port }

    /// `http://127.0.0.1:<port>`.
    package var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Every request read so far.
    package var requests: [Request] { lock.withLock { recorded } }

    /// Stops accepting and closes every connection still open.
    package func stop() {
        let toClose: [Int32] = lock.withLock {
            stopped = true
            defer { held = [] }
            return held
        }
        listener.stop()
        for fd in toClose {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
    }

    /// A complete response with Content-Length.
    package static func response(
        status: Int, reason: String = "Whatever", headers: [(String, String)] = [("Content-Type", "application/json")],
        body: String
    ) -> Reply {
        var text = "HTTP/1.1 \(status) \(reason)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        return .raw(Array(text.utf8))
    }

    private func serve(_ fd: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let read = answerWithoutReading ? Request(requestLine: "", headers: [], body: []) : readRequest(fd)
        guard let request = read else {
            close(fd)
            return
        }
        lock.withLock { recorded.append(request) }
        switch respond(request) {
        case .raw(let bytes):
            writeAll(fd, bytes)
            finish(fd)
        case .drip(let bytes, let every):
            for byte in bytes {
                writeAll(fd, [byte])
                usleep(UInt32(every * 1000))
            }
            finish(fd)
        case .silent:
            let keep = lock.withLock { () -> Bool in
                if stopped { return false }
                held.append(fd)
                return true
            }
            if !keep { close(fd) }
        }
    }

    /// Closes the way a careful server does: FIN first (the client sees the end at once), then
    /// whatever the client still sends is read and dropped for at most a second before `close`.
    /// Closing with unread bytes in the receive buffer sends a RST instead, which can destroy the
    /// answer before the client reads it ("Connection reset by peer", seen under load).
    private func finish(_ fd: Int32) {
        shutdown(fd, Int32(SHUT_WR))
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sink = [UInt8](repeating: 0, count: 4096)
        while sink.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, 4096, 0) }) > 0 {}
        close(fd)
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    private func readRequest(_ fd: Int32) -> Request? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var headEnd: Int?
        while headEnd == nil {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            guard n > 0 else { return nil }
            data.append(contentsOf: chunk[0..<n])
            if let range = data.firstRange(of: [13, 10, 13, 10]) { headEnd = range.upperBound }
        }
        let head = String(decoding: data[0..<(headEnd! - 4)], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst()
        let headers = lines.map { line -> (name: String, value: String) in
            let colon = line.firstIndex(of: ":") ?? line.endIndex
            let value = line[colon...].dropFirst().trimmingCharacters(in: .whitespaces)
            return (name: String(line[..<colon]), value: value)
        }
        var body = Array(data[headEnd!...])
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
        while body.count < length {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            guard n > 0 else { break }
            body.append(contentsOf: chunk[0..<n])
        }
        return Request(requestLine: requestLine, headers: headers, body: body)
    }
}

/// A test case that runs stand-in servers: SIGPIPE is ignored (a client may write to a connection a
/// server already closed), and every server made with `startServer` is stopped in `tearDown`.
open class StandInServerTestCase: XCTestCase {
    private var servers: [StandInHTTPServer] = []

    override open func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    override open func tearDown() {
        for server in servers { server.stop() }
        servers = []
        super.tearDown()
    }

    /// A new stand-in server (see `StandInHTTPServer.init`), stopped when the test ends.
    package func startServer(
        answerWithoutReading: Bool = false,
        _ respond: @escaping @Sendable (StandInHTTPServer.Request) -> StandInHTTPServer.Reply
    ) throws -> StandInHTTPServer {
        let server = try StandInHTTPServer(answerWithoutReading: answerWithoutReading, respond)
        servers.append(server)
        return server
    }
}

/// Python's `http.server` behind `ssl`, started with Foundation's Process, answering every GET
/// with a fixed JSON body, every POST with 201 (and the SNI name it was given, in `X-SNI`); and the throw-away PKI (made with the `openssl` CLI) it serves from.
package final class PythonTLSServer {
    package let port: UInt16
    private let process: Process

    /// A `Handler` class (Python source at the top level) answering GETs with `BODY` (200,
    /// `Connection: close`, the SNI name in `X-SNI`) and POSTs with 201.
    package static let fixedBodyHandler = """
        body = os.environ["BODY"].encode()
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.send_header("X-SNI", getattr(self.connection, "sni", None) or "none")
                self.end_headers()
                self.wfile.write(body)
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(201)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            def log_message(self, *args):
                pass
        """

    /// Serves `certificate`/`key` (PEM files) on 127.0.0.1, answering GETs with `body` (200).
    package convenience init(certificate: String, key: String, body: String) throws {
        try self.init(certificate: certificate, key: key, handler: Self.fixedBodyHandler, environment: ["BODY": body])
    }

    /// Serves `certificate`/`key` on 127.0.0.1 with `handler`: Python source defining a
    /// `Handler` class for `http.server` (`os`, `sys` and `http.server` are imported).
    package init(certificate: String, key: String, handler: String, environment: [String: String] = [:]) throws {
        let script =
            "import http.server, os, ssl, sys\n" + handler + """

                server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
                def remember_sni(sock, name, ctx):
                    sock.sni = name
                context.sni_callback = remember_sni
                server.socket = context.wrap_socket(server.socket, server_side=True)
                sys.stdout.write("%d\\n" % server.server_address[1])
                sys.stdout.flush()
                server.serve_forever()
                """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script]
        process.environment = environment.merging(["CERT": certificate, "KEY": key, "LANG": "C.UTF-8"]) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        var line = Data()
        let handle = out.fileHandleForReading
        while !line.contains(10) {
            let more = handle.availableData
            if more.isEmpty { break }
            line.append(more)
        }
        guard let port = UInt16(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw TestPKI.Failure(description: "python TLS server did not print its port")
        }
        self.port = port
    }

    package func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// A temporary CA and server certificates made with the `openssl` CLI.
package struct TestPKI {
    /// Why the PKI could not be made.
    package struct Failure: Error, CustomStringConvertible { package var description: String }

    package let directory: URL
    package var caFile: String { directory.appendingPathComponent("ca.pem").path }

    /// A new CA in a new temporary directory.
    package init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("presenced-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=presenced test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    /// A server certificate signed by the CA for `subjectAltName` (e.g. `DNS:localhost,IP:127.0.0.1`);
    /// the certificate and key paths.
    package func issue(_ name: String, subjectAltName: String) throws -> (certificate: String, key: String) {
        let ext = directory.appendingPathComponent("\(name).ext")
        try """
        subjectAltName=\(subjectAltName)
        basicConstraints=CA:FALSE
        keyUsage=critical,digitalSignature
        extendedKeyUsage=serverAuth
        """.write(to: ext, atomically: true, encoding: .utf8)
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name)",
        ])
        try openssl([
            "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "\(name).pem", "-days", "2", "-extfile", "\(name).ext",
        ])
        return (directory.appendingPathComponent("\(name).pem").path, directory.appendingPathComponent("\(name).key").path)
    }

    package func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "openssl \(arguments.first ?? "") failed: " + String(decoding: errors, as: UTF8.self))
        }
    }
}
