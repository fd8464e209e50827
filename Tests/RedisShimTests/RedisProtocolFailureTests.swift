import RedisShim
import XCTest

/// Failures a healthy redis-server does not produce, from a bare TCP listener.
final class RedisProtocolFailureTests: XCTestCase {
    private func connection(_ listener: RawListener, _ host: PollHost, options: RedisOptions) throws -> RedisConnection {
        RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: Int(listener.port)), host: host, options: options)
    }

    func testGarbageFailsPendingWithProtocolErrorAndReconnects() throws {
        let listener = RawListener()
        let host = PollHost()
        let c = try connection(listener, host, options: RedisOptions(backoffBaseMillis: 10, backoffCapMillis: 20, clientName: nil))
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        c.start()
        XCTAssertTrue(host.run(until: { c.isReady }), "no handshake without password, db or name")
        let peer = listener.accept()
        var results: [Result<RedisValue, RedisError>] = []
        c.send(RedisCommand("GET", "a")) { results.append($0) }
        c.send(RedisCommand("GET", "b")) { results.append($0) }
        listener.write(peer, "$1\r\nA\r\n!bogus\r\n")
        XCTAssertTrue(host.run(until: { results.count == 2 }))
        XCTAssertEqual(results[0], .success(.bulk([65])))
        guard case .failure(.protocolError(let message)) = results[1] else { return XCTFail("\(results)") }
        XCTAssertTrue(message.contains("Protocol error"), message)
        guard case .protocolError? = downs.first else { return XCTFail("\(downs)") }
        XCTAssertTrue(host.run(until: { c.isReady }), "a new connection")
        XCTAssertEqual(c.stats.connectAttempts, 2)
    }

    func testUnsolicitedReplyBreaksTheConnection() throws {
        let listener = RawListener()
        let host = PollHost()
        let c = try connection(listener, host, options: RedisOptions(backoffBaseMillis: 10, backoffCapMillis: 20, clientName: nil))
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        c.start()
        XCTAssertTrue(host.run(until: { c.isReady }))
        listener.write(listener.accept(), "+OK\r\n")
        XCTAssertTrue(host.run(until: { !downs.isEmpty }))
        XCTAssertEqual(downs, [.protocolError("a reply arrived that no command was waiting for")])
        XCTAssertTrue(host.run(until: { c.isReady }))
        listener.write(listener.accept(), "-ERR max number of clients reached\r\n")
        XCTAssertTrue(host.run(until: { downs.count == 2 }))
        XCTAssertEqual(downs.last, .server("ERR max number of clients reached"))
    }

    func testSilentPeerTimesOutTheHandshake() throws {
        let listener = RawListener()
        let host = PollHost()
        let c = try connection(
            listener, host,
            options: RedisOptions(
                connectTimeoutMillis: 200, backoffBaseMillis: 10,
                backoffCapMillis: 20))
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        let started = host.nowMillis
        c.start()
        XCTAssertTrue(host.run(until: { !downs.isEmpty }, timeoutMillis: 2000))
        XCTAssertEqual(downs.first, .timeout)
        XCTAssertGreaterThanOrEqual(host.nowMillis - started, 200)
        XCTAssertFalse(c.isReady)
        XCTAssertEqual(c.stats.timeouts, 1)
        c.shutdown()
    }

    func testReentrantShutdownFromACompletion() throws {
        let listener = RawListener()
        let host = PollHost()
        let c = try connection(listener, host, options: RedisOptions(clientName: nil))
        c.start()
        XCTAssertTrue(host.run(until: { c.isReady }))
        let peer = listener.accept()
        var results: [Result<RedisValue, RedisError>] = []
        c.send(RedisCommand("PING")) {
            results.append($0)
            c.shutdown()
        }
        c.send(RedisCommand("PING")) { results.append($0) }
        c.send(RedisCommand("PING")) { results.append($0) }
        listener.write(peer, "+PONG\r\n+PONG\r\n+PONG\r\n")  // all three in one read
        XCTAssertTrue(host.run(until: { results.count == 3 }))
        host.run(forMillis: 50)
        XCTAssertEqual(results, [.success(.simple("PONG")), .failure(.notConnected), .failure(.notConnected)])
        XCTAssertEqual(c.state, .closed)
    }
}
