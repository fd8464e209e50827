import RedisShim
import RedisTestSupport
import XCTest

/// RedisConnection against a real redis-server over loopback, driven by PollHost.
final class RedisConnectionTests: XCTestCase {
    func testSetGetRoundTripAndHandshakeName() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url())
        XCTAssertEqual(c.state, .ready)
        XCTAssertEqual(host.call(c, "SET", "greeting", "hello"), .success(.simple("OK")))
        XCTAssertEqual(host.call(c, "GET", "greeting"), bulk("hello"))
        XCTAssertEqual(host.call(c, "GET", "missing"), .success(.null))
        XCTAssertEqual(host.call(c, "CLIENT", "GETNAME"), bulk("presenced"))
        XCTAssertEqual(server.redisCLI("GET", "greeting"), "hello")
        XCTAssertEqual(c.stats.replies, 5)  // CLIENT SETNAME + 4
        XCTAssertEqual(c.stats.rttCount, 5)
        XCTAssertEqual(c.stats.rttBuckets.reduce(0, +), 5)
        XCTAssertEqual(c.pendingCount, 0)
    }

    func testTenThousandPipelinedIncrsRepliesInOrder() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url())
        var values: [Int64] = []
        var failures: [RedisError] = []
        for _ in 0..<10_000 {
            c.send(RedisCommand("INCR", "counter")) { result in
                switch result {
                case .success(let v): values.append(v.int ?? -1)
                case .failure(let e): failures.append(e)
                }
            }
        }
        XCTAssertEqual(c.pendingCount, 10_000, "all in flight before any reply is read")
        XCTAssertTrue(host.run(until: { values.count + failures.count == 10_000 }, timeoutMillis: 10_000))
        XCTAssertEqual(failures, [])
        XCTAssertEqual(values, Array(1...10_000))
        XCTAssertEqual(server.redisCLI("GET", "counter"), "10000")
        XCTAssertEqual(c.pendingCount, 0)
    }

    func testErrorReplyFailsOnlyItsCommand() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url())
        var results: [Result<RedisValue, RedisError>] = []
        for args in [["SET", "k", "v"], ["INCR", "k"], ["GET", "k"], ["NOSUCHCOMMAND"]] {
            c.send(RedisCommand(args)) { results.append($0) }
        }
        XCTAssertTrue(host.run(until: { results.count == 4 }))
        XCTAssertEqual(results[0], .success(.simple("OK")))
        XCTAssertEqual(results[1], .failure(.server("ERR value is not an integer or out of range")))
        XCTAssertEqual(results[2], bulk("v"))
        guard case .failure(.server(let message)) = results[3] else { return XCTFail("\(results[3])") }
        XCTAssertTrue(message.hasPrefix("ERR unknown command"), message)
        XCTAssertEqual(c.stats.errorReplies, 2)
        XCTAssertTrue(c.isReady)

        // Error replies inside an array stay values.
        XCTAssertEqual(host.call(c, "MULTI"), .success(.simple("OK")))
        XCTAssertEqual(host.call(c, "SET", "s", "x"), .success(.simple("QUEUED")))
        XCTAssertEqual(host.call(c, "LPUSH", "s", "y"), .success(.simple("QUEUED")))
        guard case .success(.array(let exec))? = host.call(c, "EXEC"), exec.count == 2 else { return XCTFail("EXEC") }
        XCTAssertEqual(exec[0], .simple("OK"))
        guard case .error(let wrongType) = exec[1] else { return XCTFail("\(exec[1])") }
        XCTAssertTrue(wrongType.hasPrefix("WRONGTYPE"), wrongType)
    }

    func testFailsFastWhenNotReadyAndRefusesPushCommands() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = RedisConnection(endpoint: try RedisEndpoint.parse(server.url()), host: host)
        var early: Result<RedisValue, RedisError>?
        c.send(RedisCommand("PING")) { early = $0 }
        XCTAssertEqual(early, .failure(.notConnected), "completed synchronously before start")
        c.start()
        XCTAssertEqual(c.state, .connecting)
        var connecting: Result<RedisValue, RedisError>?
        c.send(RedisCommand("PING")) { connecting = $0 }
        XCTAssertEqual(connecting, .failure(.notConnected))
        XCTAssertTrue(host.run(until: { c.isReady }))

        for name in ["SUBSCRIBE", "ssubscribe", "MONITOR", "HELLO"] {
            var refused: Result<RedisValue, RedisError>?
            c.send(RedisCommand(name, "3")) { refused = $0 }
            guard case .failure(.protocolError)? = refused else { return XCTFail("\(name): \(String(describing: refused))") }
        }
        var empty: Result<RedisValue, RedisError>?
        c.send(RedisCommand([String]())) { empty = $0 }
        XCTAssertEqual(empty, .failure(.protocolError("empty command")))
        XCTAssertEqual(host.call(c, "PING"), .success(.simple("PONG")), "still in step after the refusals")
        XCTAssertEqual(c.stats.rejected, 7)
    }

    func testMaxPendingRejectsTheExcess() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url(), options: RedisOptions(maxPending: 3))
        var results: [Result<RedisValue, RedisError>] = []
        for _ in 0..<5 { c.send(RedisCommand("PING")) { results.append($0) } }
        XCTAssertEqual(results, [.failure(.tooManyPending), .failure(.tooManyPending)])
        XCTAssertTrue(host.run(until: { results.count == 5 }))
        XCTAssertEqual(Array(results[2...]), Array(repeating: .success(.simple("PONG")), count: 3))
    }

    func testSelectIsolatesDatabases() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let db0 = try host.connect(server.url())
        let db3 = try host.connect(server.url(database: 3))
        let db5 = try host.connect(server.url() + "?db=5")
        XCTAssertEqual(host.call(db3, "SET", "k", "three"), .success(.simple("OK")))
        XCTAssertEqual(host.call(db0, "GET", "k"), .success(.null))
        XCTAssertEqual(host.call(db5, "GET", "k"), .success(.null))
        XCTAssertEqual(host.call(db3, "GET", "k"), bulk("three"))
        XCTAssertEqual(server.redisCLI(database: 3, "GET", "k"), "three")
        XCTAssertEqual(server.redisCLI("EXISTS", "k"), "0")

        // A database the server does not have: every attempt fails with the server's error.
        let bad = RedisConnection(
            endpoint: try RedisEndpoint.parse(server.url(database: 99)), host: host,
            options: RedisOptions(backoffBaseMillis: 10, backoffCapMillis: 20))
        var downs: [RedisError] = []
        bad.onDown = { downs.append($0) }
        bad.start()
        XCTAssertTrue(host.run(until: { downs.count >= 2 }))
        XCTAssertFalse(bad.isReady)
        guard case .server(let message) = downs[0] else { return XCTFail("\(downs)") }
        XCTAssertTrue(message.contains("out of range"), message)
        bad.shutdown()
    }

    func testCommandTimeoutFailsPendingThenReconnects() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url(), options: RedisOptions(commandTimeoutMillis: 300))
        var downs: [RedisError] = []
        var readies = 0
        c.onDown = { downs.append($0) }
        c.onReady = { readies += 1 }
        XCTAssertEqual(server.redisCLI("CLIENT", "PAUSE", "1200", "ALL"), "OK")
        var first: Result<RedisValue, RedisError>?
        var second: Result<RedisValue, RedisError>?
        let sent = host.nowMillis
        c.send(RedisCommand("SET", "late", "1")) { first = $0 }
        c.send(RedisCommand("GET", "late")) { second = $0 }
        XCTAssertTrue(host.run(until: { first != nil && second != nil }, timeoutMillis: 3000))
        let waited = host.nowMillis - sent
        XCTAssertEqual(first, .failure(.timeout))
        XCTAssertEqual(second, .failure(.timeout))
        XCTAssertGreaterThanOrEqual(waited, 300)
        XCTAssertLessThan(waited, 1000, "timed out by the client, not answered after the pause")
        XCTAssertEqual(downs, [.timeout])
        XCTAssertFalse(c.isReady)
        XCTAssertEqual(c.stats.timeouts, 1)
        XCTAssertEqual(c.stats.failedPending, 2)

        XCTAssertTrue(host.run(until: { c.isReady }, timeoutMillis: 5000), "back after the pause")
        XCTAssertEqual(readies, 1)
        XCTAssertEqual(c.stats.reconnects, 1)
        XCTAssertEqual(host.call(c, "SET", "k", "after"), .success(.simple("OK")))
        XCTAssertEqual(host.call(c, "GET", "k"), bulk("after"))
    }

    func testHealthCheckDetectsAStalledServerWithoutUserCommands() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url(), options: RedisOptions(commandTimeoutMillis: 300, healthCheckIntervalMillis: 100))
        let sentBefore = c.stats.commandsSent
        host.run(forMillis: 350)
        XCTAssertGreaterThanOrEqual(c.stats.commandsSent - sentBefore, 2, "PINGs while idle")
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        XCTAssertEqual(server.redisCLI("CLIENT", "PAUSE", "1200", "ALL"), "OK")
        XCTAssertTrue(host.run(until: { !downs.isEmpty }, timeoutMillis: 1000))
        XCTAssertEqual(downs, [.timeout])
        XCTAssertTrue(host.run(until: { c.isReady }, timeoutMillis: 5000))
    }

    func testServerRestartFailsPendingAndReconnects() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url(), options: RedisOptions(commandTimeoutMillis: 10_000))
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        var results: [Result<RedisValue, RedisError>] = []
        c.send(RedisCommand("BLPOP", "never", "0")) { results.append($0) }  // blocks on the server
        for _ in 0..<5 { c.send(RedisCommand("INCR", "n")) { results.append($0) } }
        host.run(forMillis: 100)
        XCTAssertEqual(results.count, 0)
        XCTAssertEqual(c.pendingCount, 6)

        try server.restart()
        XCTAssertTrue(host.run(until: { results.count == 6 }, timeoutMillis: 3000))
        for result in results {
            guard case .failure(.connectionLost) = result else { return XCTFail("\(result)") }
        }
        guard case .connectionLost? = downs.first else { return XCTFail("\(downs)") }
        XCTAssertTrue(host.run(until: { c.isReady }, timeoutMillis: 5000), "reconnected within a few seconds")
        XCTAssertEqual(host.call(c, "INCR", "n"), .success(.integer(1)), "a fresh server")
        XCTAssertEqual(c.stats.reconnects, 1)
        XCTAssertEqual(c.stats.failedPending, 6)
    }

    func testKeepsRetryingWhileTheServerIsDown() throws {
        let server = try RedisServerProcess()
        server.kill()
        let host = PollHost()
        let c = RedisConnection(
            endpoint: try RedisEndpoint.parse(server.url()), host: host,
            options: RedisOptions(backoffBaseMillis: 20, backoffCapMillis: 100))
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        c.start()
        host.run(forMillis: 400)
        XCTAssertFalse(c.isReady)
        XCTAssertGreaterThanOrEqual(c.stats.connectAttempts, 3)
        XCTAssertEqual(UInt64(downs.count), c.stats.disconnects)
        guard case .connectionLost? = downs.first else { return XCTFail("\(downs)") }

        try server.start()
        XCTAssertTrue(host.run(until: { c.isReady }, timeoutMillis: 3000))
        XCTAssertEqual(host.call(c, "PING"), .success(.simple("PONG")))
        XCTAssertEqual(c.stats.reconnects, 0, "first ready is not a reconnect")
    }

    func testShutdownFailsPendingAndNeverReconnects() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url())
        var downs: [RedisError] = []
        c.onDown = { downs.append($0) }
        var result: Result<RedisValue, RedisError>?
        c.send(RedisCommand("BLPOP", "never", "0")) { result = $0 }
        host.run(forMillis: 50)
        let opened = host.opened
        c.shutdown()
        XCTAssertEqual(result, .failure(.notConnected))
        XCTAssertEqual(c.state, .closed)
        host.run(forMillis: 300)
        XCTAssertEqual(host.opened, opened, "no reconnect")
        XCTAssertEqual(downs, [])
        var after: Result<RedisValue, RedisError>?
        c.send(RedisCommand("PING")) { after = $0 }
        XCTAssertEqual(after, .failure(.notConnected))
        c.start()
        XCTAssertEqual(c.state, .closed)
        XCTAssertTrue(
            host.run(until: { server.redisCLI("CLIENT", "LIST").components(separatedBy: "\n").count == 1 }),
            "the server saw the connection close")
    }
}
