import Foundation
import Glibc
import Synchronization
import TestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound

/// `LoopHTTPClient` on a real event loop (io_uring and epoll) against real servers on loopback:
/// a keep-alive stand-in written here (it records raw request bytes, which TCP connection each
/// request came on, and when the client closed it), `StandInHTTPServer` (one reply per
/// connection, then close), and Python's `ssl` for https with a `TestPKI` CA.
final class LoopHTTPClientTests: StandInServerTestCase {
    private typealias Outcome = LoopHarness.Outcome

    /// A trusted CA with a certificate for localhost/127.0.0.1 and one for another host, and a
    /// certificate from a CA that is never trusted: made once for the class.
    private static let pki:
        (
            trusted: TestPKI, untrusted: TestPKI, good: (certificate: String, key: String),
            otherHost: (certificate: String, key: String),
            foreign: (certificate: String, key: String)
        )? = {
            guard let trusted = try? TestPKI(), let untrusted = try? TestPKI(),
                let good = try? trusted.issue("good", subjectAltName: "DNS:localhost,IP:127.0.0.1"),
                let otherHost = try? trusted.issue("other", subjectAltName: "DNS:other.example,IP:10.9.8.7"),
                let foreign = try? untrusted.issue("foreign", subjectAltName: "DNS:localhost,IP:127.0.0.1")
            else { return nil }
            return (trusted, untrusted, good, otherHost, foreign)
        }()

    override class func tearDown() {
        pki?.trusted.remove()
        pki?.untrusted.remove()
        super.tearDown()
    }

    private var keepAliveServers: [KeepAliveServer] = []

    override func tearDown() {
        for server in keepAliveServers { server.stop() }
        keepAliveServers = []
        super.tearDown()
    }

    private func keepAliveServer(
        _ respond: @escaping @Sendable (KeepAliveServer.Request) -> KeepAliveServer.Action
    ) throws -> KeepAliveServer {
        let server = try KeepAliveServer(respond)
        keepAliveServers.append(server)
        return server
    }

    /// Runs `body` once per available backend with a fresh loop and client.
    private func eachBackend(
        caFile: String? = nil, maxConnections: Int = 8, timeoutMillis: Int64 = 5_000,
        idleTimeoutMillis: Int64 = 4_000, maxResponseBytes: Int = 1 << 20,
        _ body: (LoopHarness, String) throws -> Void
    ) throws {
        for backend in availableBackends {
            let harness = try LoopHarness(
                backend: backend, caFile: caFile, maxConnections: maxConnections,
                timeoutMillis: timeoutMillis, idleTimeoutMillis: idleTimeoutMillis,
                maxResponseBytes: maxResponseBytes)
            defer { harness.stop() }
            try body(harness, "\(backend)")
        }
    }

    private func response(
        _ outcome: Outcome, _ label: String, file: StaticString = #filePath, line: UInt = #line
    ) -> LoopHTTPClient.Response? {
        XCTAssertTrue(outcome.onLoopThread, "\(label): done runs on the loop's thread", file: file, line: line)
        XCTAssertFalse(outcome.insideSend, "\(label): done never runs inside send", file: file, line: line)
        switch outcome.result {
        case .success(let response): return response
        case .failure(let failure):
            XCTFail("\(label): expected a response, got \(failure)", file: file, line: line)
            return nil
        }
    }

    private func failure(_ outcome: Outcome, _ label: String, file: StaticString = #filePath, line: UInt = #line) -> LoopHTTPClient.Failure?
    {
        XCTAssertTrue(outcome.onLoopThread, "\(label): done runs on the loop's thread", file: file, line: line)
        XCTAssertFalse(outcome.insideSend, "\(label): done never runs inside send", file: file, line: line)
        switch outcome.result {
        case .success(let response):
            XCTFail("\(label): expected a failure, got status \(response.status)", file: file, line: line)
            return nil
        case .failure(let failure): return failure
        }
    }

    private func text(_ response: LoopHTTPClient.Response?) -> String? {
        response.map { String(decoding: $0.body, as: UTF8.self) }
    }

    // MARK: - Requests and response framing

    func testGetSendsExactBytesAndReadsContentLengthBody() throws {
        let server = try keepAliveServer { _ in .reply(KeepAliveServer.ok("{\"ok\":true}", headers: [("X-Answer", "yes")])) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL + "/base/"))
            var headers: HTTPHeaders = ["Accept": "application/json", "X-Request-ID": "req-1"]
            headers.add("Connection", "close")  // ignored: the client manages the connection
            headers.add("X-Evil", "a\r\nInjected: 1")  // CR/LF become spaces
            let outcome = harness.send(url, path: "/items?x=1", headers: headers)
            let got = response(outcome, label)
            XCTAssertEqual(got?.status, 200, label)
            XCTAssertEqual(got?.headers["x-answer"], "yes", label)
            XCTAssertEqual(text(got), "{\"ok\":true}", label)
            let request = try XCTUnwrap(server.requests.last, label)
            XCTAssertEqual(
                String(decoding: request.raw, as: UTF8.self),
                "GET /base/items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nAccept: application/json\r\n"
                    + "X-Request-ID: req-1\r\nX-Evil: a  Injected: 1\r\n\r\n", label)
        }
    }

    func testPostSendsBodyWithContentLength() throws {
        let server = try keepAliveServer { request in
            .reply(KeepAliveServer.ok("got \(request.body.count)", status: "201 Created"))
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let body = Array(#"{"id":"m1","content":"héllo"}"#.utf8)
            var headers: HTTPHeaders = ["Content-Type": "application/json", "Idempotency-Key": "m1"]
            headers.add("Content-Length", "999")  // ignored: the client counts
            let got = response(harness.send(url, method: "POST", path: "/api/v1/messages", headers: headers, body: body), label)
            XCTAssertEqual(got?.status, 201, label)
            XCTAssertEqual(text(got), "got \(body.count)", label)
            let request = try XCTUnwrap(server.requests.last, label)
            XCTAssertEqual(
                request.raw,
                Array(
                    ("POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n"
                        + "Content-Type: application/json\r\nIdempotency-Key: m1\r\nContent-Length: \(body.count)\r\n\r\n").utf8) + body,
                label)
            // An empty POST still says Content-Length: 0.
            _ = response(harness.send(url, method: "POST", path: "/empty"), label)
            XCTAssertEqual(server.requests.last?.header("Content-Length"), "0", label)
        }
    }

    func testReservedAndInvalidFieldsAreDroppedAndAnEmptyPathIsTheRoot() throws {
        let server = try keepAliveServer { _ in .reply(KeepAliveServer.ok("")) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            var headers: HTTPHeaders = ["Content-Type": "application/json", "Host": "spoofed", "Bad Name": "x"]
            headers.add("Transfer-Encoding", "chunked")  // ignored: the body goes with Content-Length
            let body = Array(#"{"a":1}"#.utf8)
            XCTAssertNotNil(response(harness.send(url, method: "POST", path: "", headers: headers, body: body), label))
            let request = try XCTUnwrap(server.requests.last, label)
            XCTAssertEqual(
                String(decoding: request.raw, as: UTF8.self),
                "POST / HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 7\r\n\r\n{\"a\":1}", label)
        }
    }

    func testHostNamesAreResolvedAndSentAsTheHostField() throws {
        let server = try keepAliveServer { _ in .reply(KeepAliveServer.ok("ok")) }
        try eachBackend { harness, label in
            // localhost may resolve to ::1 first, where nothing listens: the next address is tried.
            let url = try XCTUnwrap(OutboundURL("http://localhost:\(server.port)"))
            XCTAssertEqual(text(response(harness.send(url, path: "/named"), label)), "ok", label)
            XCTAssertEqual(server.requests.last?.header("Host"), "localhost:\(server.port)", label)
        }
    }

    func testChunkedBodyInPiecesThenTheConnectionIsReused() throws {
        let payload = String(repeating: "0123456789abcdef", count: 300)  // 4800 bytes
        let server = try keepAliveServer { request in
            var pieces: [[UInt8]] = [Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)]
            let bytes = Array(payload.utf8)
            var offset = 0
            for size in [1, 15, 100, 4000, 684] {
                pieces.append(Array((String(size, radix: 16) + ";name=value\r\n").utf8) + bytes[offset..<(offset + size)] + [13, 10])
                offset += size
            }
            pieces.append(Array("0\r\nX-Trailer: t\r\n\r\n".utf8))
            return request.indexOnConnection == 0 ? .pieces(pieces, gapMillis: 10) : .reply(KeepAliveServer.ok("second"))
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.connectionsAccepted
            XCTAssertEqual(text(response(harness.send(url, path: "/chunked"), label)), payload, label)
            XCTAssertEqual(text(response(harness.send(url, path: "/next"), label)), "second", label)
            XCTAssertEqual(server.connectionsAccepted - before, 1, "\(label): one connection for both")
        }
    }

    func testBodyReadUntilCloseAndTheConnectionIsNotReused() throws {
        let body = String(repeating: "x", count: 20_000)
        let server = try startServer { _ in .raw(Array(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body).utf8)) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            XCTAssertEqual(text(response(harness.send(url, path: "/a"), label)), body, label)
            XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount }, 0, "\(label): nothing kept")
            XCTAssertEqual(text(response(harness.send(url, path: "/b"), label)), body, label)
        }
        XCTAssertEqual(server.requests.count, 2 * availableBackends.count)
    }

    func testInterimResponsesAreSkippedAndBodilessStatusesEndAtTheHead() throws {
        let server = try keepAliveServer { request in
            switch request.path {
            case "/continue":
                return .reply(
                    Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".utf8)
                        + KeepAliveServer.ok("final"))
            case "/nocontent": return .reply(Array("HTTP/1.1 204 No Content\r\n\r\n".utf8))
            default: return .reply(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".utf8))  // HEAD: no body follows
            }
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.connectionsAccepted
            let first = response(harness.send(url, path: "/continue"), label)
            XCTAssertEqual(first?.status, 200, label)
            XCTAssertEqual(text(first), "final", label)
            let second = response(harness.send(url, path: "/nocontent"), label)
            XCTAssertEqual(second?.status, 204, label)
            XCTAssertEqual(second?.body, [], label)
            let third = response(harness.send(url, method: "HEAD", path: "/head"), label)
            XCTAssertEqual(third?.headers["Content-Length"], "5", label)
            XCTAssertEqual(third?.body, [], label)
            XCTAssertEqual(server.connectionsAccepted - before, 1, "\(label): all three on one connection")
        }
    }

    func testOversizedAndMalformedResponsesAreProtocolErrors() throws {
        let server = try keepAliveServer { request in
            switch request.path {
            case "/length": return .reply(Array("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".utf8))
            case "/chunked":
                return .reply(
                    Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n".utf8)
                        + [UInt8](repeating: 65, count: 4096) + Array("\r\n0\r\n\r\n".utf8))
            case "/close": return .replyThenClose(Array("HTTP/1.1 200 OK\r\n\r\n".utf8) + [UInt8](repeating: 65, count: 5000))
            case "/gzip": return .reply(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".utf8))
            case "/short": return .replyThenClose(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8))
            default: return .reply(Array("HTTP/1.1 2000 What\r\n\r\n".utf8))
            }
        }
        try eachBackend(maxResponseBytes: 4000) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            for path in ["/length", "/chunked", "/close"] {
                XCTAssertEqual(
                    failure(harness.send(url, path: path), label),
                    .protocolError("response body larger than 4000 bytes"), "\(label) \(path)")
            }
            XCTAssertEqual(failure(harness.send(url, path: "/gzip"), label), .protocolError("unsupported transfer coding"), label)
            XCTAssertEqual(
                failure(harness.send(url, path: "/short"), label),
                .protocolError("connection closed after 3 of 10 body bytes"), label)
            guard case .protocolError(let message)? = failure(harness.send(url, path: "/garbage"), label) else {
                return XCTFail("\(label): a malformed head is a protocol error")
            }
            XCTAssertTrue(message.hasPrefix("malformed response head"), message)
            XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount }, 0, "\(label): broken connections are closed")
        }
    }

    func testChunkDataMayHoldCRLF() throws {
        let server = try startServer { _ in
            .raw(
                Array(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\n"
                        .utf8))
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            XCTAssertEqual(text(response(harness.send(url, path: "/wiki"), label)), "Wikipedia in\r\n\r\nchunks.", label)
        }
    }

    func testResponseArrivingOneByteAtATime() throws {
        let wire = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n".utf8)
        let server = try startServer { _ in .drip(wire, everyMillis: 1) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let got = response(harness.send(url, path: "/drip"), label)
            XCTAssertEqual(got?.status, 200, label)
            XCTAssertEqual(text(got), "abcd", label)
        }
    }

    func testTruncatedAndMalformedFramingAreProtocolErrors() throws {
        // Each answer is followed by a close (one reply per connection).
        let wires = [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  // chunk cut short
            "HTTP/1.1 200 OK\r\nContent-Le",  // head cut short
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            "HTTP/1.1 99 Bad\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ]
        let server = try startServer { request in
            let index = Int(request.requestLine.split(separator: " ").dropFirst().first?.dropFirst() ?? "") ?? 0
            return .raw(Array(wires[index].utf8))
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            for (index, wire) in wires.enumerated() {
                let got = failure(harness.send(url, path: "/\(index)"), "\(label) \(wire.debugDescription)")
                guard case .protocolError? = got else {
                    XCTFail("\(label) \(wire.debugDescription): expected .protocolError, got \(String(describing: got))")
                    continue
                }
            }
            XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount }, 0, "\(label): broken connections are closed")
        }
    }

    func testBodyOfExactlyTheLimitIsAccepted() throws {
        let body = String(repeating: "y", count: 4000)
        let server = try keepAliveServer { request in
            switch request.path {
            case "/length": return .reply(KeepAliveServer.ok(body))
            case "/chunked": return .reply(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfa0\r\n\(body)\r\n0\r\n\r\n".utf8))
            default: return .replyThenClose(Array("HTTP/1.1 200 OK\r\n\r\n\(body)".utf8))
            }
        }
        try eachBackend(maxResponseBytes: 4000) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            for path in ["/length", "/chunked", "/close"] {
                XCTAssertEqual(response(harness.send(url, path: path), "\(label) \(path)")?.body.count, 4000, "\(label) \(path)")
            }
            XCTAssertEqual(
                harness.onLoop { loop in LoopHTTPClient(loop: loop).maxResponseBytes }, 1 << 20,
                "\(label): 1 MiB unless told otherwise")
        }
    }

    // MARK: - Keep-alive

    func testSequentialRequestsShareOneConnection() throws {
        let server = try keepAliveServer { request in .reply(KeepAliveServer.ok("n=\(request.indexOnConnection)")) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.connectionsAccepted
            for i in 0..<3 {
                XCTAssertEqual(text(response(harness.send(url, path: "/r\(i)"), label)), "n=\(i)", label)
            }
            XCTAssertEqual(server.connectionsAccepted - before, 1, "\(label): one TCP connection")
            XCTAssertEqual(harness.onLoop { _ in harness.client.idleConnectionCount }, 1, label)
            // Another URL with the same origin shares the pool.
            let other = try XCTUnwrap(OutboundURL(server.baseURL + "/prefix"))
            XCTAssertEqual(text(response(harness.send(other, path: "/x"), label)), "n=3", label)
            XCTAssertEqual(server.requests.last?.path, "/prefix/x", label)
        }
    }

    func testConnectionCloseAndHTTP10ResponsesAreNotReused() throws {
        // The server keeps every connection open: only the client's rule decides.
        let server = try keepAliveServer { request in
            switch request.path {
            case "/close": return .reply(KeepAliveServer.ok("c", headers: [("Connection", "close")]))
            case "/old": return .reply(KeepAliveServer.ok("o", version: "1.0"))
            case "/extra": return .reply(KeepAliveServer.ok("e") + Array("HTTP/1.1 200 OK\r\n".utf8))
            default: return .reply(KeepAliveServer.ok("k"))
            }
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            for path in ["/close", "/old", "/extra"] {
                let before = server.connectionsAccepted
                let closedBefore = server.connectionsClosedByClient
                XCTAssertNotNil(response(harness.send(url, path: path), label))
                XCTAssertNotNil(response(harness.send(url, path: "/after"), label))
                XCTAssertEqual(server.connectionsAccepted - before, 2, "\(label) \(path): not reused")
                server.waitUntil("\(label) \(path): the client closed it") { server.connectionsClosedByClient > closedBefore }
                XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount }, 1, label)
                harness.onLoop { _ in harness.client.shutdown() }
                harness.renewClient()
            }
        }
    }

    func testIdleConnectionClosedByTheServerIsDropped() throws {
        let server = try keepAliveServer { _ in .replyThenCloseAfter(KeepAliveServer.ok("fine"), millis: 20) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.requests.count
            XCTAssertNotNil(response(harness.send(url, path: "/one"), label))
            harness.waitOnLoop("\(label): the closed connection leaves the pool") { harness.client.connectionCount == 0 }
            XCTAssertEqual(text(response(harness.send(url, path: "/two"), label)), "fine", label)
            XCTAssertEqual(server.requests.count - before, 2, "\(label): no retry was needed")
        }
    }

    func testIdleConnectionsCloseAfterTheIdleTimeout() throws {
        let server = try keepAliveServer { _ in .reply(KeepAliveServer.ok("fine")) }
        try eachBackend(idleTimeoutMillis: 100) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let closedBefore = server.connectionsClosedByClient
            XCTAssertNotNil(response(harness.send(url), label))
            XCTAssertEqual(harness.onLoop { _ in harness.client.idleConnectionCount }, 1, label)
            server.waitUntil("\(label): the client closes the idle connection") { server.connectionsClosedByClient > closedBefore }
            XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount }, 0, label)
        }
    }

    func testStaleReusedConnectionIsRetriedOnceOnAFreshOne() throws {
        // The second request on any connection finds it closed (as if the server's idle timeout
        // crossed the request); the first request on a connection is answered.
        let server = try keepAliveServer { request in
            request.indexOnConnection == 0 ? .reply(KeepAliveServer.ok("c\(request.connection)")) : .closeWithoutReply
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.requests.count, connectionsBefore = server.connectionsAccepted
            XCTAssertNotNil(response(harness.send(url, path: "/first"), label))
            let retried = response(harness.send(url, method: "POST", path: "/second", body: Array("payload".utf8)), label)
            XCTAssertEqual(text(retried), "c\(connectionsBefore + 2)", "\(label): answered on the second connection")
            let seen = server.requests[before...]
            XCTAssertEqual(seen.map(\.path), ["/first", "/second", "/second"], label)
            XCTAssertEqual(seen.map(\.body), [[], Array("payload".utf8), Array("payload".utf8)], label)
            XCTAssertEqual(server.connectionsAccepted - connectionsBefore, 2, label)
        }
    }

    func testRetryHappensOnlyOnceAndNeverForAFreshConnection() throws {
        let server = try keepAliveServer { request in
            request.connection == 1 && request.indexOnConnection == 0 ? .reply(KeepAliveServer.ok("only")) : .closeWithoutReply
        }
        for backend in availableBackends {
            server.resetConnectionNumbers()
            let harness = try LoopHarness(backend: backend)
            defer { harness.stop() }
            let label = "\(backend)"
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.requests.count
            XCTAssertNotNil(response(harness.send(url, path: "/ok"), label))
            // Reused connection breaks → one retry on a fresh connection, which breaks too → failure.
            XCTAssertEqual(failure(harness.send(url, path: "/a"), label), .connect("connection closed before a response"), label)
            XCTAssertEqual(server.requests.count - before, 3, "\(label): the request went out twice, not more")
            // A fresh connection that breaks is not retried.
            XCTAssertEqual(failure(harness.send(url, path: "/b"), label), .connect("connection closed before a response"), label)
            XCTAssertEqual(server.requests.count - before, 4, "\(label): the request went out once")
        }
    }

    func testPartialAnswerOnAReusedConnectionIsNotRetried() throws {
        let server = try keepAliveServer { request in
            request.indexOnConnection == 0
                ? .reply(KeepAliveServer.ok("one")) : .replyThenClose(Array("HTTP/1.1 200 OK\r\nContent-Le".utf8))
        }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.requests.count
            XCTAssertNotNil(response(harness.send(url, path: "/one"), label))
            XCTAssertEqual(
                failure(harness.send(url, path: "/two"), label),
                .protocolError("connection closed before the response was complete"), label)
            XCTAssertEqual(server.requests.count - before, 2, "\(label): not sent again")
        }
    }

    // MARK: - Pool limit and queueing

    func testRequestsQueueBeyondMaxConnectionsPerOrigin() throws {
        let server = try keepAliveServer { request in .replyAfter(KeepAliveServer.ok(request.path), millis: 60) }
        try eachBackend(maxConnections: 2) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let before = server.connectionsAccepted, requestsBefore = server.requests.count
            let start = EventLoop.monotonicMillis()
            let outcomes = harness.sendAll((0..<6).map { LoopHarness.Request(url: url, path: "/q\($0)") }) { client in
                XCTAssertEqual(client.connectionCount, 2, "\(label): two connections opened")
                XCTAssertEqual(client.queuedCount, 4, "\(label): four requests wait")
            }
            let elapsed = EventLoop.monotonicMillis() - start
            XCTAssertEqual(outcomes.map { text(response($0, label)) }, (0..<6).map { "/q\($0)" }, label)
            XCTAssertEqual(server.connectionsAccepted - before, 2, "\(label): at most two connections, reused for the queue")
            XCTAssertGreaterThanOrEqual(elapsed, 170, "\(label): three rounds of 60 ms")
            // The queue is served in order of arrival: /q0 and /q1 open the two connections, and
            // each connection then carries later requests only. (Completion order is not asserted:
            // it follows the stand-in's threads, which a loaded machine delays by more than 60 ms.)
            let sent = Array(server.requests.dropFirst(requestsBefore))
            let byConnection = Dictionary(grouping: sent, by: \.connection).values.map { onOne in
                onOne.sorted { $0.indexOnConnection < $1.indexOnConnection }.map { Int($0.path.dropFirst(2)) ?? -1 }
            }
            XCTAssertEqual(Set(byConnection.map { $0.first ?? -1 }), [0, 1], "\(label): \(byConnection)")
            for paths in byConnection { XCTAssertEqual(paths, paths.sorted(), "\(label): \(byConnection)") }
            XCTAssertEqual(byConnection.map(\.count).reduce(0, +), 6, label)
        }
    }

    // MARK: - Timeouts and failures

    func testSilentServerTimesOutAndTheConnectionIsNotReused() throws {
        let server = try keepAliveServer { request in
            request.path == "/silent" ? .silent : .reply(KeepAliveServer.ok("answered on \(request.connection)"))
        }
        try eachBackend(timeoutMillis: 300) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            // Warm one connection, so that the silent request goes on a reused one.
            XCTAssertNotNil(response(harness.send(url, path: "/warm"), label))
            let connectionsBefore = server.connectionsAccepted, closedBefore = server.connectionsClosedByClient
            let start = EventLoop.monotonicMillis()
            let outcome = harness.send(url, path: "/silent")
            let elapsed = EventLoop.monotonicMillis() - start
            XCTAssertEqual(failure(outcome, label), .timeout, label)
            XCTAssertGreaterThanOrEqual(elapsed, 280, label)
            XCTAssertLessThan(elapsed, 1000, "\(label): fires at the deadline")
            server.waitUntil("\(label): the timed-out connection is closed") { server.connectionsClosedByClient > closedBefore }
            XCTAssertEqual(
                text(response(harness.send(url, path: "/after"), label)), "answered on \(connectionsBefore + 1)",
                "\(label): a new connection")
        }
    }

    func testTimeoutCoversTimeSpentInTheQueue() throws {
        let server = try keepAliveServer { _ in .silent }
        try eachBackend(maxConnections: 1, timeoutMillis: 250) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let start = EventLoop.monotonicMillis()
            let outcomes = harness.sendAll([LoopHarness.Request(url: url, path: "/a"), LoopHarness.Request(url: url, path: "/b")])
            XCTAssertEqual(outcomes.map { failure($0, label) }, [.timeout, .timeout], label)
            XCTAssertLessThan(EventLoop.monotonicMillis() - start, 800, "\(label): the queued one did not wait for a connection")
            XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount + harness.client.queuedCount }, 0, label)
        }
    }

    func testZeroTimeoutTimesOutAtOnce() throws {
        let server = try keepAliveServer { _ in .reply(KeepAliveServer.ok("too late")) }
        try eachBackend(timeoutMillis: 0) { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            XCTAssertEqual(failure(harness.send(url), label), .timeout, label)
        }
    }

    func testUnresolvableHostFails() throws {
        try eachBackend(timeoutMillis: 1500) { harness, label in
            let url = try XCTUnwrap(OutboundURL("http://no-such-host.invalid"))
            let start = EventLoop.monotonicMillis()
            switch failure(harness.send(url), label) {
            case .connect(let message)?: XCTAssertTrue(message.contains("no-such-host.invalid"), message)
            case .timeout?: break  // a resolver without network may hang until the request's timeout
            case let other: XCTFail("\(label): expected .connect or .timeout, got \(String(describing: other))")
            }
            XCTAssertLessThan(EventLoop.monotonicMillis() - start, 2500, "\(label): bounded by the request's timeout")
        }
    }

    func testConnectionRefused() throws {
        let probe = try StandInHTTPServer { _ in .silent }
        let port = probe.port
        probe.stop()
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL("http://127.0.0.1:\(port)"))
            let start = EventLoop.monotonicMillis()
            guard case .connect(let message)? = failure(harness.send(url), label) else { return XCTFail("\(label): expected .connect") }
            XCTAssertTrue(message.contains("refused"), message)
            XCTAssertTrue(message.contains("127.0.0.1:\(port)"), message)
            XCTAssertLessThan(EventLoop.monotonicMillis() - start, 1000, label)
        }
    }

    func testInvalidRequestAndShutdown() throws {
        let server = try keepAliveServer { _ in .silent }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL(server.baseURL))
            let connectionsBefore = server.connectionsAccepted
            XCTAssertEqual(failure(harness.send(url, method: "GE T"), label), .protocolError("invalid request method"), label)
            XCTAssertEqual(failure(harness.send(url, method: ""), label), .protocolError("invalid request method"), label)
            XCTAssertEqual(failure(harness.send(url, path: "no-slash"), label), .protocolError("request path must start with /"), label)
            for path in ["/a b", "/\r\n"] {
                XCTAssertEqual(
                    failure(harness.send(url, path: path), label), .protocolError("invalid character in request target"),
                    "\(label) \(path.debugDescription)")
            }
            XCTAssertEqual(server.connectionsAccepted, connectionsBefore, "\(label): refused before connecting")
            XCTAssertEqual(harness.onLoop { _ in harness.client.connectionCount }, 0, label)
            // A request in flight and one queued behind it both end with .closed at shutdown.
            let outcomes = harness.sendAll(
                [LoopHarness.Request(url: url, path: "/a"), LoopHarness.Request(url: url, path: "/b")],
                thenOnLoop: { client in
                    _ = client.loop.schedule(after: 50) { client.shutdown() }
                })
            XCTAssertEqual(outcomes.map { $0.result.failureValue }, [.closed, .closed], label)
            XCTAssertEqual(failure(harness.send(url), label), .closed, "\(label): after shutdown")
        }
    }

    // MARK: - https

    func testHTTPSWithCAFileKeepsTheConnectionAlive() throws {
        let pki = try XCTUnwrap(Self.pki, "could not make the test PKI with the openssl CLI")
        let server = try PythonTLSServer(certificate: pki.good.certificate, key: pki.good.key, handler: KeepAliveTLS.handler)
        defer { server.stop() }
        try eachBackend(caFile: pki.trusted.caFile) { harness, label in
            for host in ["127.0.0.1", "localhost"] {
                let url = try XCTUnwrap(OutboundURL("https://\(host):\(server.port)/api"))
                let first = text(response(harness.send(url, path: "/one"), "\(label) \(host)"))
                let second = text(response(harness.send(url, method: "POST", path: "/two", body: Array("hi".utf8)), "\(label) \(host)"))
                // The server answers "<method> <path> <client port> <body>".
                let a = try XCTUnwrap(first?.split(separator: " ").map(String.init), label)
                let b = try XCTUnwrap(second?.split(separator: " ").map(String.init), label)
                XCTAssertEqual(a.prefix(2), ["GET", "/api/one"], label)
                XCTAssertEqual(b.first, "POST", label)
                XCTAssertEqual(b.dropFirst().first, "/api/two", label)
                XCTAssertEqual(b.last, "hi", label)
                XCTAssertEqual(a[2], b[2], "\(label) \(host): the same TLS connection (client port)")
                XCTAssertEqual(harness.onLoop { _ in harness.client.idleConnectionCount }, 1, label)
                harness.onLoop { _ in harness.client.shutdown() }
                harness.renewClient()
            }
        }
    }

    func testHTTPSRefusesACertificateForAnotherHost() throws {
        let pki = try XCTUnwrap(Self.pki, "could not make the test PKI with the openssl CLI")
        let server = try PythonTLSServer(certificate: pki.otherHost.certificate, key: pki.otherHost.key, handler: KeepAliveTLS.handler)
        defer { server.stop() }
        try eachBackend(caFile: pki.trusted.caFile) { harness, label in
            for host in ["127.0.0.1", "localhost"] {
                let url = try XCTUnwrap(OutboundURL("https://\(host):\(server.port)"))
                guard case .tls(let message)? = failure(harness.send(url), "\(label) \(host)") else {
                    return XCTFail("\(label) \(host): expected .tls")
                }
                XCTAssertTrue(message.contains("certificate verify failed"), message)
            }
        }
    }

    func testHTTPSRefusesAnUntrustedCA() throws {
        let pki = try XCTUnwrap(Self.pki, "could not make the test PKI with the openssl CLI")
        let server = try PythonTLSServer(certificate: pki.foreign.certificate, key: pki.foreign.key, handler: KeepAliveTLS.handler)
        defer { server.stop() }
        for caFile in [pki.trusted.caFile, nil] {
            try eachBackend(caFile: caFile) { harness, label in
                let url = try XCTUnwrap(OutboundURL("https://127.0.0.1:\(server.port)"))
                guard case .tls(let message)? = failure(harness.send(url), label) else {
                    return XCTFail("\(label) caFile \(caFile ?? "system"): expected .tls")
                }
                XCTAssertTrue(message.contains("certificate verify failed"), message)
            }
        }
    }

    func testHTTPSSendsSNIForNamesOnly() throws {
        let pki = try XCTUnwrap(Self.pki, "could not make the test PKI with the openssl CLI")
        let server = try PythonTLSServer(certificate: pki.good.certificate, key: pki.good.key, body: "{}")
        defer { server.stop() }
        try eachBackend(caFile: pki.trusted.caFile) { harness, label in
            for (host, sni) in [("localhost", "localhost"), ("127.0.0.1", "none")] {
                let url = try XCTUnwrap(OutboundURL("https://\(host):\(server.port)"))
                let got = response(harness.send(url, path: "/"), "\(label) \(host)")
                XCTAssertEqual(got?.status, 200, "\(label) \(host)")
                XCTAssertEqual(text(got), "{}", "\(label) \(host)")
                XCTAssertEqual(got?.headers["X-SNI"], sni, "\(label) \(host)")
            }
        }
    }

    func testHTTPSWithAMissingCAFileIsATLSFailure() throws {
        let server = try startServer { _ in .silent }
        try eachBackend(caFile: "/nonexistent/ca.pem") { harness, label in
            let url = try XCTUnwrap(OutboundURL("https://127.0.0.1:\(server.port)"))
            guard case .tls(let message)? = failure(harness.send(url), label) else { return XCTFail("\(label): expected .tls") }
            XCTAssertTrue(message.contains("CA file"), message)
        }
    }

    func testHTTPSAgainstAPlainHTTPServerIsATLSFailure() throws {
        let server = try startServer(answerWithoutReading: true) { _ in .raw(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)) }
        try eachBackend { harness, label in
            let url = try XCTUnwrap(OutboundURL("https://127.0.0.1:\(server.port)"))
            guard case .tls? = failure(harness.send(url), label) else { return XCTFail("\(label): expected .tls") }
        }
    }

    // MARK: - Body decoder (codec only)

    func testBodyDecoderAgreesOnEverySplitAndStopsAtTheBodyEnd() throws {
        let chunked = Array("5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nT: 1\r\n\r\nNEXT".utf8)
        let length = Array("hello, worldNEXT".utf8)
        for (framing, wire) in [(HTTPBodyDecoder.Framing.chunked, chunked), (.length(12), length)] {
            for split in 0...wire.count {
                var decoder = HTTPBodyDecoder(framing: framing, limit: 100)
                var consumed = 0
                for part in [wire[0..<split], wire[split...]] {
                    consumed += try part.withUnsafeBytes { try decoder.feed($0) }
                    if decoder.isComplete { break }
                }
                XCTAssertTrue(decoder.isComplete, "\(framing) split \(split)")
                XCTAssertEqual(String(decoding: decoder.body, as: UTF8.self), "hello, world", "\(framing) split \(split)")
                XCTAssertEqual(Array(wire[consumed...]), Array("NEXT".utf8), "\(framing) split \(split): stops at the end")
            }
        }
        XCTAssertEqual(
            try HTTPBodyDecoder.framing(
                status: 200, headers: ["Transfer-Encoding": "chunked", "Content-Length": "3"],
                isHeadRequest: false, limit: 10), .chunked)
        XCTAssertEqual(
            try HTTPBodyDecoder.framing(status: 200, headers: ["Content-Length": "3, 3"], isHeadRequest: false, limit: 10), .length(3))
        XCTAssertThrowsError(try HTTPBodyDecoder.framing(status: 200, headers: ["Content-Length": "3, 4"], isHeadRequest: false, limit: 10))
        XCTAssertEqual(try HTTPBodyDecoder.framing(status: 304, headers: ["Content-Length": "3"], isHeadRequest: false, limit: 10), .none)
        XCTAssertEqual(try HTTPBodyDecoder.framing(status: 200, headers: [:], isHeadRequest: false, limit: 10), .untilClose)
    }
}

private extension Result {
    var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}

// MARK: - A loop and a client

/// One loop (a `TestServer` with one thread) and a `LoopHTTPClient` on it, driven from the test
/// thread: every call hops onto the loop through its mailbox and waits for the answer.
private final class LoopHarness: @unchecked Sendable {
    /// What one `send` produced.
    struct Outcome {
        var result: Result<LoopHTTPClient.Response, LoopHTTPClient.Failure>
        var onLoopThread: Bool
        var insideSend: Bool
        /// The position of this completion among those of one `sendAll`.
        var order: Int
    }

    /// One request for `sendAll`.
    struct Request {
        var url: OutboundURL
        var method = "GET"
        var path = ""
        var headers = HTTPHeaders()
        var body: [UInt8] = []
    }

    let server: TestServer
    private let makeClient: (EventLoop) -> LoopHTTPClient
    /// Set and used on the loop's thread only.
    private(set) var client: LoopHTTPClient!

    init(
        backend: IOBackendKind, caFile: String? = nil, maxConnections: Int = 8, timeoutMillis: Int64 = 5_000,
        idleTimeoutMillis: Int64 = 4_000, maxResponseBytes: Int = 1 << 20
    ) throws {
        server = try TestServer(backend: backend, threads: 1)
        makeClient = { loop in
            LoopHTTPClient(
                loop: loop, caFile: caFile, maxConnectionsPerOrigin: maxConnections, timeoutMillis: timeoutMillis,
                idleTimeoutMillis: idleTimeoutMillis, maxResponseBytes: maxResponseBytes)
        }
        renewClient()
    }

    /// Replaces the client with a new one (after `shutdown`).
    func renewClient() {
        onLoop { loop in self.client = self.makeClient(loop) }
    }

    func stop() {
        onLoop { _ in self.client.shutdown() }
        server.stop()
    }

    /// Runs `body` on the loop's thread and returns its value.
    @discardableResult
    func onLoop<T>(_ body: @escaping (EventLoop) -> T) -> T {
        let box = Locked<T?>(nil)
        let semaphore = DispatchSemaphore(value: 0)
        let job = UnsafeSendable(body)
        server.group.broadcast { loop in
            let value = job.value(loop)
            box.update { $0 = value }
            semaphore.signal()
        }
        XCTAssertEqual(semaphore.wait(timeout: .now() + 10), .success, "the loop did not run the job")
        return box.update { $0 }!
    }

    /// Polls `condition` on the loop until it holds (at most 3 s).
    func waitOnLoop(_ what: String, _ condition: @escaping () -> Bool) {
        let end = EventLoop.monotonicMillis() + 3000
        while !onLoop({ _ in condition() }) {
            if EventLoop.monotonicMillis() > end { return XCTFail("timed out waiting for \(what)") }
            pause(millis: 5)
        }
    }

    /// One request, waited for.
    func send(
        _ url: OutboundURL, method: String = "GET", path: String = "", headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = []
    ) -> Outcome {
        sendAll([Request(url: url, method: method, path: path, headers: headers, body: body)])[0]
    }

    /// Sends every request in one loop turn (in order), then runs `thenOnLoop` on the loop, and
    /// waits for every `done`; outcomes are in request order.
    func sendAll(_ requests: [Request], thenOnLoop: @escaping (LoopHTTPClient) -> Void = { _ in }) -> [Outcome] {
        let run = SendRun(requests: requests, then: thenOnLoop)
        server.group.broadcast { loop in run.start(on: loop, client: self.client) }
        for _ in requests {
            if run.finished.wait(timeout: .now() + 15) != .success {
                XCTFail("a request never completed")
                break
            }
        }
        let all = run.outcomes.update { $0 }
        return requests.indices.map {
            all[$0] ?? Outcome(result: .failure(.protocolError("never completed")), onLoopThread: true, insideSend: false, order: -1)
        }
    }

    /// The state of one `sendAll`: the requests, and what their `done`s reported.
    private final class SendRun: @unchecked Sendable {
        let requests: [Request]
        let then: (LoopHTTPClient) -> Void
        let outcomes = Locked<[Int: Outcome]>([:])
        let finished = DispatchSemaphore(value: 0)
        /// Loop thread only.
        private var insideSend = false
        private var completions = 0

        init(requests: [Request], then: @escaping (LoopHTTPClient) -> Void) {
            self.requests = requests
            self.then = then
        }

        func start(on loop: EventLoop, client: LoopHTTPClient) {
            for (index, request) in requests.enumerated() {
                insideSend = true
                client.send(
                    method: request.method, url: request.url, path: request.path, headers: request.headers,
                    body: request.body
                ) { result in self.done(index, result, loop: loop) }
                insideSend = false
            }
            then(client)
        }

        private func done(_ index: Int, _ result: Result<LoopHTTPClient.Response, LoopHTTPClient.Failure>, loop: EventLoop) {
            let outcome = Outcome(result: result, onLoopThread: EventLoop.current === loop, insideSend: insideSend, order: completions)
            completions += 1
            let first = outcomes.update { $0.updateValue(outcome, forKey: index) == nil }
            XCTAssertTrue(first, "done ran twice")
            finished.signal()
        }
    }
}

/// A value shared between the test thread and the loop thread, behind a lock.
private final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func update<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}

// MARK: - Servers

/// A keep-alive HTTP/1.1 stand-in: a thread per connection reading request after request
/// (Content-Length bodies), answering each as the test says, and recording the raw request bytes,
/// which connection (numbered from 1 in accept order) and which request on it each one was, and
/// how many connections the client closed.
private final class KeepAliveServer: @unchecked Sendable {
    /// One request as received.
    struct Request: Sendable {
        var connection: Int
        var indexOnConnection: Int
        var raw: [UInt8]
        var requestLine: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        var path: String { requestLine.split(separator: " ").dropFirst().first.map(String.init) ?? "" }

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// How to answer one request.
    enum Action: Sendable {
        /// These bytes; the connection stays open for the next request.
        case reply([UInt8])
        /// These bytes after a pause.
        case replyAfter([UInt8], millis: Int)
        /// These pieces, written `gapMillis` apart.
        case pieces([[UInt8]], gapMillis: Int)
        /// These bytes, then close.
        case replyThenClose([UInt8])
        /// These bytes, then close after a pause.
        case replyThenCloseAfter([UInt8], millis: Int)
        /// Close without answering.
        case closeWithoutReply
        /// Answer nothing; keep reading (to see the client close).
        case silent
    }

    /// What the connection threads record, behind `state`'s lock.
    private struct State {
        var requests: [Request] = []
        var fds: Set<Int32> = []
        var accepted = 0
        var numbering = 0
        var closedByClient = 0
        var stopped = false
    }

    private var listener: StandInListener!
    private let state = Lock(State())
    private let respond: @Sendable (Request) -> Action

    init(_ respond: @escaping @Sendable (Request) -> Action) throws {
        self.respond = respond
        listener = try StandInListener { [self] fd in accepted(fd) }
    }

    /// The port it listens on (127.0.0.1).
    var port: UInt16 { listener.port }

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var requests: [Request] { state.withLock { $0.requests } }
    var connectionsAccepted: Int { state.withLock { $0.accepted } }
    var connectionsClosedByClient: Int { state.withLock { $0.closedByClient } }

    /// Connections accepted from now on are numbered from 1 again.
    func resetConnectionNumbers() { state.withLock { $0.numbering = 0 } }

    func waitUntil(_ what: String, _ condition: () -> Bool) {
        let end = EventLoop.monotonicMillis() + 3000
        while !condition() {
            if EventLoop.monotonicMillis() > end { return XCTFail("timed out waiting for \(what)") }
            pause(millis: 5)
        }
    }

    func stop() {
        listener.stop()
        // Under the lock: a connection's thread leaves `fds` before it closes the descriptor.
        state.withLock { s in
            s.stopped = true
            for fd in s.fds { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// A response with Content-Length.
    static func ok(_ body: String, status: String = "200 OK", version: String = "1.1", headers: [(String, String)] = []) -> [UInt8] {
        var text = "HTTP/\(version) \(status)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        return Array(text.utf8)
    }

    private func accepted(_ client: Int32) {
        let number: Int? = state.withLock { s in
            guard !s.stopped else { return nil }
            s.accepted += 1
            s.numbering += 1
            s.fds.insert(client)
            return s.numbering
        }
        guard let number else {
            close(client)
            return
        }
        Thread { [self] in serve(client, number: number) }.start()
    }

    private func serve(_ fd: Int32, number: Int) {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        var index = 0
        var closedByClient = false
        loop: while true {
            guard let request = readRequest(fd, &buffer, connection: number, index: index) else {
                closedByClient = true
                break
            }
            index += 1
            state.withLock { $0.requests.append(request) }
            switch respond(request) {
            case .reply(let bytes): writeAll(fd, bytes)
            case .replyAfter(let bytes, let millis):
                usleep(UInt32(millis * 1000))
                writeAll(fd, bytes)
            case .pieces(let pieces, let gap):
                for piece in pieces {
                    writeAll(fd, piece)
                    usleep(UInt32(gap * 1000))
                }
            case .replyThenClose(let bytes):
                writeAll(fd, bytes)
                break loop
            case .replyThenCloseAfter(let bytes, let millis):
                writeAll(fd, bytes)
                usleep(UInt32(millis * 1000))
                break loop
            case .closeWithoutReply:
                break loop
            case .silent:
                continue
            }
        }
        state.withLock { s in
            s.fds.remove(fd)
            if closedByClient { s.closedByClient += 1 }
        }
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

    /// The next request on the connection (nil at EOF or on an error), keeping extra bytes in `buffer`.
    private func readRequest(_ fd: Int32, _ buffer: inout [UInt8], connection: Int, index: Int) -> Request? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        func more() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            guard n > 0 else { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        var headEnd: Int?
        while headEnd == nil {
            if let range = buffer.firstRange(of: [13, 10, 13, 10]) {
                headEnd = range.upperBound
                break
            }
            guard more() else { return nil }
        }
        let head = String(decoding: buffer[0..<(headEnd! - 4)], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst()
        let headers = lines.map { line -> (name: String, value: String) in
            let colon = line.firstIndex(of: ":") ?? line.endIndex
            return (name: String(line[..<colon]), value: line[colon...].dropFirst().trimmingCharacters(in: .whitespaces))
        }
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
        while buffer.count < headEnd! + length {
            guard more() else { return nil }
        }
        let raw = Array(buffer[0..<(headEnd! + length)])
        buffer.removeFirst(headEnd! + length)
        return Request(
            connection: connection, indexOnConnection: index, raw: raw, requestLine: requestLine,
            headers: headers, body: Array(raw[headEnd!...]))
    }
}

/// A Python TLS stand-in (`PythonTLSServer`) keeping connections alive (HTTP/1.1,
/// Content-Length), answering GET and POST with `<method> <path> <client port> <body>` so a test
/// can tell which TCP connection carried a request.
private enum KeepAliveTLS {
    static let handler = """
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                out = ("%s %s %d %s" % (self.command, self.path, self.client_address[1], body.decode())).strip().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            do_GET = answer
            do_POST = answer
            def log_message(self, *args):
                pass
        """
}
