import Foundation
import Glibc
import WSCore
import XCTest
@testable import PresenceD

/// `OutboundHTTP.perform` against the in-process stand-in server: framing, limits, deadlines,
/// request encoding.
final class OutboundHTTPTests: StandInServerTestCase {
    private func serve(_ reply: StandInHTTPServer.Reply) throws -> StandInHTTPServer {
        try startServer { _ in reply }
    }

    private func serve(_ wire: String) throws -> StandInHTTPServer {
        try serve(.raw(Array(wire.utf8)))
    }

    private func get(_ server: StandInHTTPServer, method: String = "GET", path: String = "/x", headers: HTTPHeaders = [:],
                     body: [UInt8] = [], timeout: Int64 = 5000) -> Result<OutboundResponse, OutboundError> {
        OutboundHTTP.perform(method: method, url: OutboundURL(server.baseURL)!, path: path, headers: headers,
                             body: body, timeoutMillis: timeout, caFile: nil)
    }

    func testContentLengthBody() throws {
        let server = try serve("HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhelloEXTRA")
        let response = try get(server).get()
        XCTAssertEqual(response.status, 201)
        XCTAssertEqual(response.headers["x-a"], "1")
        XCTAssertEqual(response.body, Array("hello".utf8))
    }

    func testBodyUntilClose() throws {
        let server = try serve("HTTP/1.0 200 OK\r\n\r\nall of it")
        XCTAssertEqual(try get(server).get().body, Array("all of it".utf8))
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let server = try serve("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\n")
        XCTAssertEqual(String(decoding: try get(server).get().body, as: UTF8.self), "Wikipedia in\r\n\r\nchunks.")
    }

    func testChunkedBodyDrippedByteByByte() throws {
        let server = try serve(.drip(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n".utf8), everyMillis: 1))
        XCTAssertEqual(try get(server).get().body, Array("abcd".utf8))
    }

    func testTruncatedBodiesAreProtocolErrors() throws {
        for wire in ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                     "HTTP/1.1 200 OK\r\nContent-Le"] {
            guard case .failure(.protocolError) = get(try serve(wire)) else { return XCTFail(wire) }
        }
    }

    func testMalformedFramingIsRefused() throws {
        for wire in ["HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                     "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                     "HTTP/1.1 99 Bad\r\n\r\n",
                     "SSH-2.0-OpenSSH\r\n\r\n"] {
            guard case .failure(.protocolError) = get(try serve(wire)) else { return XCTFail(wire) }
        }
    }

    func testBodyLargerThanOneMebibyteIsRefused() throws {
        let big = String(repeating: "x", count: OutboundHTTP.maxBodyBytes + 1)
        guard case .failure(.protocolError(let m1)) = get(try serve("HTTP/1.1 200 OK\r\nContent-Length: \(big.count)\r\n\r\n" + big)) else {
            return XCTFail("Content-Length over the cap")
        }
        XCTAssertTrue(m1.contains("larger"), m1)
        guard case .failure(.protocolError) = get(try serve("HTTP/1.0 200 OK\r\n\r\n" + big)) else {
            return XCTFail("read-until-close over the cap")
        }
        guard case .failure(.protocolError) = get(try serve("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n" + big)) else {
            return XCTFail("chunk over the cap")
        }
        let exact = String(repeating: "y", count: OutboundHTTP.maxBodyBytes)
        XCTAssertEqual(try get(try serve("HTTP/1.1 200 OK\r\nContent-Length: \(exact.count)\r\n\r\n" + exact)).get().body.count,
                       OutboundHTTP.maxBodyBytes)
    }

    func testInterimResponsesAreSkipped() throws {
        let server = try serve("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let response = try get(server).get()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, Array("ok".utf8))
    }

    func testNoBodyFor204AndHead() throws {
        XCTAssertEqual(try get(try serve("HTTP/1.1 204 No Content\r\n\r\n")).get().body, [])
        let head = try get(try serve("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), method: "HEAD").get()
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, [])
    }

    func testRequestEncoding() throws {
        let server = try serve("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        var headers: HTTPHeaders = ["Content-Type": "application/json", "X-Evil": "a\r\nInjected: yes", "Host": "spoofed", "Bad Name": "x"]
        headers.add("Connection", "keep-alive")
        _ = try get(server, method: "POST", path: "/api/v1/messages?x=1", headers: headers, body: Array(#"{"a":1}"#.utf8)).get()
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.requestLine, "POST /api/v1/messages?x=1 HTTP/1.1")
        XCTAssertEqual(request.values("Host"), ["127.0.0.1:\(server.port)"])
        XCTAssertEqual(request.values("Connection"), ["close"])
        XCTAssertEqual(request.header("Content-Length"), "7")
        XCTAssertEqual(request.header("Content-Type"), "application/json")
        XCTAssertEqual(request.header("X-Evil"), "a  Injected: yes")
        XCTAssertNil(request.header("Injected"))
        XCTAssertNil(request.header("Bad Name"))
        XCTAssertEqual(request.body, Array(#"{"a":1}"#.utf8))

        _ = try get(server, method: "POST", path: "").get()
        XCTAssertEqual(server.requests.last?.requestLine, "POST / HTTP/1.1")
        XCTAssertEqual(server.requests.last?.header("Content-Length"), "0")
    }

    func testInvalidRequestsAreRefusedBeforeConnecting() {
        let url = OutboundURL("http://127.0.0.1:1")!
        for (method, path) in [("GET", "no-slash"), ("GET", "/a b"), ("G T", "/"), ("", "/"), ("GET", "/\r\n")] {
            let result = OutboundHTTP.perform(method: method, url: url, path: path, headers: [:], body: [], timeoutMillis: 1000, caFile: nil)
            guard case .failure(.protocolError) = result else { return XCTFail("\(method) \(path)") }
        }
    }

    func testSilentServerTimesOut() throws {
        let server = try serve(.silent)
        let start = Date()
        guard case .failure(.timeout) = get(server, timeout: 300) else { return XCTFail("expected a timeout") }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.28)
        XCTAssertLessThan(elapsed, 1.0)
    }

    func testZeroTimeoutTimesOutAtOnce() throws {
        let server = try serve("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        guard case .failure(.timeout) = get(server, timeout: 0) else { return XCTFail("expected a timeout") }
    }

    func testConnectRefused() throws {
        let probe = try StandInHTTPServer { _ in .silent }
        let port = probe.port
        probe.stop()
        let result = OutboundHTTP.perform(method: "GET", url: OutboundURL("http://127.0.0.1:\(port)")!, path: "/",
                                          headers: [:], body: [], timeoutMillis: 2000, caFile: nil)
        guard case .failure(.connect(let message)) = result else { return XCTFail("\(result)") }
        XCTAssertTrue(message.contains("refused"), message)
    }

    func testResolvesHostNames() throws {
        let server = try serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let result = OutboundHTTP.perform(method: "GET", url: OutboundURL("http://localhost:\(server.port)")!, path: "/",
                                          headers: [:], body: [], timeoutMillis: 5000, caFile: nil)
        XCTAssertEqual(try result.get().body, Array("ok".utf8))
        XCTAssertEqual(server.requests.first?.header("Host"), "localhost:\(server.port)")
    }

    func testUnresolvableHostFails() {
        let start = Date()
        let result = OutboundHTTP.perform(method: "GET", url: OutboundURL("http://no-such-host.invalid")!, path: "/",
                                          headers: [:], body: [], timeoutMillis: 1500, caFile: nil)
        switch result {
        case .failure(.connect), .failure(.timeout): break
        default: XCTFail("\(result)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.5, "a slow resolver is bounded by the deadline")
    }

    func testMissingCAFileIsATLSError() throws {
        let server = try serve(.silent)
        let result = OutboundHTTP.perform(method: "GET", url: OutboundURL("https://127.0.0.1:\(server.port)")!, path: "/",
                                          headers: [:], body: [], timeoutMillis: 2000, caFile: "/nonexistent/ca.pem")
        guard case .failure(.tls(let message)) = result else { return XCTFail("\(result)") }
        XCTAssertTrue(message.contains("CA file"), message)
    }

    func testTLSHandshakeAgainstPlainServerFails() throws {
        let server = try startServer(answerWithoutReading: true) { _ in .raw(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)) }
        let result = OutboundHTTP.perform(method: "GET", url: OutboundURL("https://127.0.0.1:\(server.port)")!, path: "/",
                                          headers: [:], body: [], timeoutMillis: 2000, caFile: nil)
        guard case .failure(.tls) = result else { return XCTFail("\(result)") }
    }

    func testTLSSendsSNIForNamesOnly() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let issued = try pki.issue("server", subjectAltName: "DNS:localhost,IP:127.0.0.1")
        let server = try PythonTLSServer(certificate: issued.certificate, key: issued.key, body: "{}")
        defer { server.stop() }
        for (host, sni) in [("localhost", "localhost"), ("127.0.0.1", "none")] {
            let result = OutboundHTTP.perform(method: "GET", url: OutboundURL("https://\(host):\(server.port)")!, path: "/",
                                              headers: [:], body: [], timeoutMillis: 5000, caFile: pki.caFile)
            let response = try result.get()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.body, Array("{}".utf8))
            XCTAssertEqual(response.headers["X-SNI"], sni, host)
        }
    }

    // MARK: - Chunked decoder
}
