import RedisShim
import XCTest

final class RedisCommandTests: XCTestCase {
    func testEncodesAsMultiBulk() {
        XCTAssertEqual(
            String(decoding: RedisCommand("SET", "key", "value").encoded, as: UTF8.self),
            "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        XCTAssertEqual(String(decoding: RedisCommand("PING").encoded, as: UTF8.self), "*1\r\n$4\r\nPING\r\n")
    }

    func testEmptyAndUnicodeArguments() {
        XCTAssertEqual(
            String(decoding: RedisCommand("SET", "", "é").encoded, as: UTF8.self),
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

    func testLengthsAtPowersOfTen() {
        for length in [9, 10, 99, 100, 999, 1000, 100_000] {
            let arg = [UInt8](repeating: UInt8(ascii: "x"), count: length)
            let encoded = RedisCommand(arguments: [arg]).encoded
            XCTAssertEqual(encoded, Array("*1\r\n$\(length)\r\n".utf8) + arg + Array("\r\n".utf8))
        }
    }

    func testBuiltArgumentsEncodeLikeTextArguments() {
        var command = RedisCommand("EVALSHA", "abc")
        command.append(joining: "presenced:{", "family-1", "}:log")
        command.append(0)
        command.append(-42)
        command.append(Int64.max)
        command.append(7, after: "epoch.")
        command.append(bytes: [0, 13, 10])
        let expected = RedisCommand(arguments: [
            Array("EVALSHA".utf8), Array("abc".utf8), Array("presenced:{family-1}:log".utf8),
            Array("0".utf8), Array("-42".utf8), Array(String(Int64.max).utf8),
            Array("epoch.7".utf8), [0, 13, 10],
        ])
        XCTAssertEqual(command, expected)
        XCTAssertEqual(command.encoded, expected.encoded)
        XCTAssertEqual(command.count, 8)
        XCTAssertEqual(command.arguments.last, [0, 13, 10])
    }

    func testReplacingTheScriptKeepsTheRest() {
        let script = RedisScript("return KEYS[1]")
        let bySHA = script.command(keys: ["k"], args: ["a", ""])
        XCTAssertEqual(bySHA.arguments.map { String(decoding: $0, as: UTF8.self) }, ["EVALSHA", script.sha1, "1", "k", "a", ""])
        XCTAssertEqual(script.bySource(bySHA), RedisCommand("EVAL", "return KEYS[1]", "1", "k", "a", ""))
    }

    func testNameIgnoresCase() {
        XCTAssertTrue(RedisCommand("subscribe", "c").hasName("SUBSCRIBE"))
        XCTAssertFalse(RedisCommand("subscriber").hasName("SUBSCRIBE"))
        XCTAssertFalse(RedisCommand([String]()).hasName(""))
    }

    func testScriptSHA1MatchesRedis() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        XCTAssertEqual(RedisScript("return 1").sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        XCTAssertEqual(RedisScript("").sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }
}
