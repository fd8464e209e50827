import RedisShim
import RedisTestSupport
import XCTest

final class RedisSubscriberTests: XCTestCase {
    private struct Message: Equatable {
        let channel: String
        let payload: [UInt8]
        init(_ channel: String, _ payload: [UInt8]) {
            self.channel = channel
            self.payload = payload
        }
        init(_ channel: String, _ text: String) { self.init(channel, Array(text.utf8)) }
    }

    /// Collects delivered messages.
    private final class Inbox {
        var messages: [Message] = []
    }

    private func subscriber(
        _ server: RedisServerProcess, _ host: PollHost, sharded: Bool = false,
        into inbox: Inbox
    ) throws -> RedisSubscriber {
        let sub = RedisSubscriber(
            endpoint: try RedisEndpoint.parse(server.url()), host: host,
            options: RedisOptions(backoffBaseMillis: 20, backoffCapMillis: 200), sharded: sharded)
        sub.onMessage = { inbox.messages.append(Message($0, $1)) }
        return sub
    }

    private func publish(
        _ host: PollHost, _ c: RedisConnection, _ channel: String, _ payload: [UInt8],
        sharded: Bool = false
    ) -> Result<RedisValue, RedisError>? {
        var result: Result<RedisValue, RedisError>?
        c.send(RedisCommand(arguments: [Array((sharded ? "SPUBLISH" : "PUBLISH").utf8), Array(channel.utf8), payload])) {
            result = $0
        }
        host.run(until: { result != nil })
        return result
    }

    func testMessagesArriveOnSubscribedChannels() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let publisher = try host.connect(server.url())
        let inbox = Inbox()
        let sub = try subscriber(server, host, into: inbox)
        sub.subscribe("news")
        sub.subscribe("news")  // idempotent
        sub.subscribe("sport")
        XCTAssertEqual(sub.channels, ["news", "sport"])
        sub.start()
        XCTAssertTrue(host.run(until: { server.subscribers("news") == 1 && server.subscribers("sport") == 1 }))
        XCTAssertEqual(server.redisCLI("PUBSUB", "CHANNELS").split(separator: "\n").sorted(), ["news", "sport"])

        let binary: [UInt8] = [0, 13, 10, 255, 42]
        XCTAssertEqual(publish(host, publisher, "news", Array("hello".utf8)), .success(.integer(1)))
        XCTAssertEqual(publish(host, publisher, "other", Array("nobody".utf8)), .success(.integer(0)))
        XCTAssertEqual(publish(host, publisher, "sport", binary), .success(.integer(1)))
        XCTAssertTrue(host.run(until: { inbox.messages.count == 2 }))
        XCTAssertEqual(inbox.messages, [Message("news", "hello"), Message("sport", binary)])

        // PING works in subscribed state (RESP2 answers ["pong", ""]).
        var pong: Result<RedisValue, RedisError>?
        sub.ping { pong = $0 }
        XCTAssertTrue(host.run(until: { pong != nil }))
        XCTAssertEqual(pong, .success(.array([.bulk(Array("pong".utf8)), .bulk([])])))
        XCTAssertEqual(sub.stats.errorReplies, 0)
        XCTAssertTrue(sub.isReady)
    }

    func testResubscribesEveryChannelAfterServerRestart() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let inbox = Inbox()
        let sub = try subscriber(server, host, into: inbox)
        var readies = 0
        var downs: [RedisError] = []
        sub.onReady = { readies += 1 }
        sub.onDown = { downs.append($0) }
        let many = (0..<2500).map { "room-\($0)" }
        sub.subscribe(contentsOf: many)
        sub.subscribe("presence")
        sub.start()
        XCTAssertTrue(host.run(until: { readies == 1 && server.subscribers("presence") == 1 }))
        XCTAssertEqual(server.redisCLI("PUBSUB", "CHANNELS").split(separator: "\n").count, 2501)

        try server.restart()
        XCTAssertEqual(server.subscribers("presence"), 0, "a fresh server knows no subscription")
        XCTAssertTrue(host.run(until: { readies == 2 }, timeoutMillis: 5000))
        guard case .connectionLost? = downs.first else { return XCTFail("\(downs)") }
        // The test never calls subscribe again: the subscriber restores all 2501 by itself.
        XCTAssertTrue(host.run(until: { server.subscribers("presence") == 1 }))
        XCTAssertEqual(server.redisCLI("PUBSUB", "CHANNELS").split(separator: "\n").count, 2501)

        let publisher = try host.connect(server.url())
        XCTAssertEqual(publish(host, publisher, "presence", Array("back".utf8)), .success(.integer(1)))
        XCTAssertEqual(publish(host, publisher, "room-2499", Array("last".utf8)), .success(.integer(1)))
        XCTAssertTrue(host.run(until: { inbox.messages.count == 2 }))
        XCTAssertEqual(inbox.messages, [Message("presence", "back"), Message("room-2499", "last")])
        XCTAssertEqual(sub.stats.reconnects, 1)
        XCTAssertEqual(sub.stats.errorReplies, 0)
    }

    func testUnsubscribeStopsDelivery() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let publisher = try host.connect(server.url())
        let inbox = Inbox()
        let sub = try subscriber(server, host, into: inbox)
        sub.start()
        XCTAssertTrue(host.run(until: { sub.isReady }))
        sub.subscribe("a")
        sub.subscribe("b")
        XCTAssertTrue(host.run(until: { server.subscribers("a") == 1 && server.subscribers("b") == 1 }))
        XCTAssertEqual(publish(host, publisher, "a", Array("1".utf8)), .success(.integer(1)))
        XCTAssertTrue(host.run(until: { inbox.messages.count == 1 }))

        sub.unsubscribe("a")
        sub.unsubscribe("a")  // idempotent
        sub.unsubscribe("never-subscribed")
        XCTAssertEqual(sub.channels, ["b"])
        XCTAssertTrue(host.run(until: { server.subscribers("a") == 0 }), "the server was told")
        XCTAssertEqual(server.subscribers("b"), 1)
        XCTAssertEqual(publish(host, publisher, "a", Array("2".utf8)), .success(.integer(0)))
        XCTAssertEqual(publish(host, publisher, "b", Array("3".utf8)), .success(.integer(1)))
        XCTAssertTrue(host.run(until: { inbox.messages.count >= 2 }))
        host.run(forMillis: 50)
        XCTAssertEqual(inbox.messages, [Message("a", "1"), Message("b", "3")])

        // Unsubscribing while disconnected is remembered: not restored after the restart.
        server.kill()
        sub.unsubscribe("b")
        sub.subscribe("c")
        try server.start()
        XCTAssertTrue(host.run(until: { server.subscribers("c") == 1 }, timeoutMillis: 5000))
        XCTAssertEqual(server.redisCLI("PUBSUB", "CHANNELS"), "c")
    }

    func testShardedSubscribeAndPublish() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let publisher = try host.connect(server.url())
        let inbox = Inbox()
        let sub = try subscriber(server, host, sharded: true, into: inbox)
        sub.subscribe("{family}:events")
        sub.subscribe("{work}:events")
        sub.start()
        XCTAssertTrue(
            host.run(until: {
                server.subscribers("{family}:events", sharded: true) == 1 && server.subscribers("{work}:events", sharded: true) == 1
            }))
        XCTAssertEqual(server.subscribers("{family}:events"), 0, "not a classic subscription")
        XCTAssertEqual(publish(host, publisher, "{family}:events", Array("joined".utf8), sharded: true), .success(.integer(1)))
        XCTAssertEqual(publish(host, publisher, "{family}:events", Array("classic".utf8)), .success(.integer(0)))
        XCTAssertTrue(host.run(until: { inbox.messages.count == 1 }))
        XCTAssertEqual(inbox.messages, [Message("{family}:events", "joined")])

        sub.unsubscribe("{family}:events")
        XCTAssertTrue(host.run(until: { server.subscribers("{family}:events", sharded: true) == 0 }))
        XCTAssertEqual(server.subscribers("{work}:events", sharded: true), 1)

        try server.restart()
        XCTAssertTrue(host.run(until: { server.subscribers("{work}:events", sharded: true) == 1 }, timeoutMillis: 5000))
        XCTAssertEqual(server.subscribers("{family}:events", sharded: true), 0)
        XCTAssertTrue(host.run(until: { publisher.isReady }, timeoutMillis: 5000))
        XCTAssertEqual(publish(host, publisher, "{work}:events", Array("again".utf8), sharded: true), .success(.integer(1)))
        XCTAssertTrue(host.run(until: { inbox.messages.count == 2 }))
        XCTAssertEqual(inbox.messages.last, Message("{work}:events", "again"))
    }

    /// `whenSubscribed` answers true only after the server took the subscription: a message
    /// published right after the answer arrives; false for a channel not desired or while not
    /// connected.
    func testWhenSubscribedAnswersOnceTheServerTookIt() throws {
        let server = try RedisServerProcess()
        let host = PollHost()
        let publisher = try host.connect(server.url())
        let inbox = Inbox()
        let sub = try subscriber(server, host, sharded: true, into: inbox)
        var answers: [Bool] = []
        sub.subscribe("{early}")
        sub.whenSubscribed("{early}") { answers.append($0) }
        XCTAssertEqual(answers, [false], "not connected yet")
        sub.start()
        XCTAssertTrue(host.run(until: { sub.isReady }))
        for i in 0..<50 {
            let channel = "{room\(i)}"
            sub.subscribe(channel)
            var answer: Bool?
            sub.whenSubscribed(channel) { answer = $0 }
            XCTAssertTrue(host.run(until: { answer != nil }))
            XCTAssertEqual(answer, true)
            // No waiting for the server's view: the answer alone promises delivery.
            XCTAssertEqual(publish(host, publisher, channel, Array("m\(i)".utf8), sharded: true), .success(.integer(1)), channel)
        }
        XCTAssertTrue(host.run(until: { inbox.messages.count == 50 }))
        var notDesired: Bool?
        sub.whenSubscribed("{elsewhere}") { notDesired = $0 }
        XCTAssertEqual(notDesired, false)
    }

    func testRefusedSubscriptionIsReportedAndTheConnectionStaysUsable() throws {
        let server = try RedisServerProcess(password: "admin")
        XCTAssertEqual(server.redisCLI("ACL", "SETUSER", "carol", "on", ">pw", "resetchannels", "&allowed", "+@all"), "OK")
        let host = PollHost()
        var messages: [Message] = []
        let sub = RedisSubscriber(endpoint: try RedisEndpoint.parse("redis://carol:pw@127.0.0.1:\(server.port)"), host: host)
        sub.onMessage = { messages.append(Message($0, $1)) }
        var errors: [RedisError] = []
        sub.onError = { errors.append($0) }
        sub.start()
        XCTAssertTrue(host.run(until: { sub.isReady }))
        sub.subscribe("forbidden")
        sub.subscribe("allowed")
        XCTAssertTrue(host.run(until: { !errors.isEmpty && server.subscribers("allowed") == 1 }))
        guard case .server(let message) = errors[0] else { return XCTFail("\(errors)") }
        XCTAssertTrue(message.hasPrefix("NOPERM"), message)
        XCTAssertTrue(sub.isReady)
        XCTAssertEqual(server.redisCLI("PUBLISH", "allowed", "ok"), "1")
        XCTAssertTrue(host.run(until: { messages.count == 1 }))
        XCTAssertEqual(messages, [Message("allowed", "ok")])
    }
}
