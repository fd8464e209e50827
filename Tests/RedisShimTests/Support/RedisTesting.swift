import RedisShim
import RedisTestSupport
import XCTest

/// Shared steps of the tests that talk to a real redis-server through ``PollHost``.
extension PollHost {
    /// A started connection to `url` (default: the server's), asserted ready within 5 s.
    func connect(
        _ url: String, options: RedisOptions = RedisOptions(),
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> RedisConnection {
        let connection = RedisConnection(endpoint: try RedisEndpoint.parse(url), host: self, options: options)
        connection.start()
        XCTAssertTrue(run(until: { connection.isReady }, timeoutMillis: 5000), "not ready: \(url)", file: file, line: line)
        return connection
    }

    /// Sends one command and turns the loop until its completion runs (nil after `timeoutMillis`).
    func call(_ connection: RedisConnection, _ args: String..., timeoutMillis: Int64 = 5000) -> Result<RedisValue, RedisError>? {
        var result: Result<RedisValue, RedisError>?
        connection.send(RedisCommand(args)) { result = $0 }
        run(until: { result != nil }, timeoutMillis: timeoutMillis)
        return result
    }
}

extension RedisServerProcess {
    /// Subscribers of `channel` as `PUBSUB NUMSUB` (or `SHARDNUMSUB`) reports them.
    func subscribers(_ channel: String, sharded: Bool = false) -> Int {
        let output = redisCLI("PUBSUB", sharded ? "SHARDNUMSUB" : "NUMSUB", channel)
        return Int(output.split(separator: "\n").last ?? "") ?? -1
    }
}

/// `.success(.bulk(text))`.
func bulk(_ text: String) -> Result<RedisValue, RedisError>? { .success(.bulk(Array(text.utf8))) }
