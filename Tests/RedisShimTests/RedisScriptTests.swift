import RedisShim
import RedisTestSupport
import XCTest

final class RedisScriptTests: XCTestCase {
    private func eval(
        _ host: PollHost, _ c: RedisConnection, _ script: RedisScript, keys: [String], args: [String]
    )
        -> Result<RedisValue, RedisError>?
    {
        var result: Result<RedisValue, RedisError>?
        c.evalScript(script, keys: keys, args: args) { result = $0 }
        host.run(until: { result != nil })
        return result
    }

    private func calls(_ server: RedisServerProcess, _ command: String) -> Int {
        // cmdstat_evalsha:calls=3,usec=…
        let stats = server.redisCLI("INFO", "commandstats")
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
            let field = line.split(separator: ",").first, let eq = field.lastIndex(of: "=")
        else { return 0 }
        return Int(field[field.index(after: eq)...]) ?? -1
    }

    func testEvalShaFallsBackToEvalOnNoScript() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url())
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        XCTAssertEqual(server.redisCLI("SCRIPT", "LOAD", script.source), script.sha1, "same digest as the server")
        XCTAssertEqual(server.redisCLI("SCRIPT", "FLUSH"), "OK")

        XCTAssertEqual(eval(host, c, script, keys: ["n"], args: ["5"]), .success(.integer(5)))  // NOSCRIPT → EVAL
        XCTAssertEqual(eval(host, c, script, keys: ["n"], args: ["2"]), .success(.integer(7)))  // cached: EVALSHA
        XCTAssertEqual(calls(server, "evalsha"), 2)
        XCTAssertEqual(calls(server, "eval"), 1)
        XCTAssertEqual(c.stats.scriptFallbacks, 1)

        XCTAssertEqual(server.redisCLI("SCRIPT", "FLUSH"), "OK")
        XCTAssertEqual(eval(host, c, script, keys: ["n"], args: ["3"]), .success(.integer(10)))
        XCTAssertEqual(calls(server, "evalsha"), 3)
        XCTAssertEqual(calls(server, "eval"), 2)
        XCTAssertEqual(c.stats.scriptFallbacks, 2)
        XCTAssertEqual(server.redisCLI("GET", "n"), "10")
    }

    func testScriptErrorsAreNotRetried() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let c = try host.connect(server.url())
        let script = RedisScript("return redis.error_reply('NOPE custom failure')")
        XCTAssertEqual(eval(host, c, script, keys: [], args: []), .failure(.server("NOPE custom failure")))
        XCTAssertEqual(eval(host, c, script, keys: [], args: []), .failure(.server("NOPE custom failure")))
        XCTAssertEqual(c.stats.scriptFallbacks, 1, "only the first call found no script")
        let multi = RedisScript("return {KEYS[1], ARGV[1], ARGV[2]}")
        XCTAssertEqual(
            eval(host, c, multi, keys: ["{c}:k"], args: ["a", "b"]),
            .success(.array([.bulk(Array("{c}:k".utf8)), .bulk(Array("a".utf8)), .bulk(Array("b".utf8))])))
    }
}
