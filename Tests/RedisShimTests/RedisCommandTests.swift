import RedisShim
import XCTest

final class RedisCommandTests: XCTestCase {
    func testEncodesAsMultiBulk() {
        XCTAssertEqual(String(decoding: RedisCommand("SET", "key", "value").encoded, as: UTF8.self),
                       "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        XCTAssertEqual(String(decoding: RedisCommand("PING").encoded, as: UTF8.self), "*1\r\n$4\r\nPING\r\n")
    }

    func testEmptyAndUnicodeArguments() {
        XCTAssertEqual(String(decoding: RedisCommand("SET", "", "é").encoded, as: UTF8.self),
                       "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\né\r\n")
        XCTAssertEqual(String(decoding: RedisCommand("", "").encoded, as: UTF8.self), "*2\r\n$0\r\n\r\n$0\r\n\r\n")
    }

    func testBinaryArgumentsAreLengthPrefixedNotEscaped() {
        let payload: [UInt8] = [0, 13, 10, 42, 255]
        let command = RedisCommand(arguments: [Array("PUBLISH".utf8), Array("ch".utf8), payload])
        XCTAssertEqual(command.encoded, Array("*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\n".utf8) + payload + Array("\r\n".utf8))
        XCTAssertEqual(command.arguments, [Array("PUBLISH".utf8), Array("ch".utf8), payload])
        XCTAssertEqual(command.count, 3)
    }

    func testEncodeAppends() {
        var buffer = Array("+x".utf8)
        RedisCommand("GET", "a").encode(into: &buffer)
        RedisCommand("GET", "b").encode(into: &buffer)
        XCTAssertEqual(String(decoding: buffer, as: UTF8.self), "+x*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n")
    }

    func testNameIsTheUppercasedFirstArgument() {
        XCTAssertEqual(RedisCommand("evalsha", "abc", "0").name, "EVALSHA")
        XCTAssertEqual(RedisCommand(arguments: [Array("hSet".utf8), [1]]).name, "HSET")
        XCTAssertEqual(RedisCommand([String]()).name, "")
        XCTAssertEqual(RedisCommand([String]()).encoded, Array("*0\r\n".utf8))
    }

    func testManyArguments() {
        let args = ["SUBSCRIBE"] + (0..<1500).map { "channel-\($0)" }
        let encoded = String(decoding: RedisCommand(args).encoded, as: UTF8.self)
        var expected = "*\(args.count)\r\n"
        for a in args { expected += "$\(a.utf8.count)\r\n\(a)\r\n" }
        XCTAssertEqual(encoded, expected)
    }

    func testScriptSHA1MatchesRedis() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        XCTAssertEqual(RedisScript("return 1").sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        XCTAssertEqual(RedisScript("").sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }
}
