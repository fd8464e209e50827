import Foundation
import Glibc
import RedisTestSupport
import TestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// Nonces (docs/protocol.md, "Nonces") over real sockets on every backend: a re-send of the same
/// (sender, nonce) is fanned out, stored and forwarded once; the sending connection alone gets the
/// original frame again; errors carry the nonce; a malformed nonce is bad_json. Embedded mode, and
/// across two instances in Redis mode, with forwarding to a chat-service stand-in.
final class NonceTests: StandInServerTestCase {
    private func send(_ ws: TestWebSocket, _ channel: String, _ content: String, nonce: String) throws {
        try ws.sendText(#"{"type":"message","channel":"\#(channel)","content":"\#(content)","nonce":"\#(nonce)"}"#)
    }

    private func scenario(_ a: TestServer, _ b: TestServer, chat: StandInHTTPServer, label: String) throws {
        let patience = 15_000
        let bob = try a.client("bob", receiveTimeoutMillis: patience)
        _ = try bob.join("room", since: nil)
        let aliceA = try a.client("alice", receiveTimeoutMillis: patience)
        _ = try aliceA.join("room", since: nil)
        let aliceB = try b.client("alice", receiveTimeoutMillis: patience)
        _ = try aliceB.join("room", since: nil)

        try send(aliceA, "room", "hello once", nonce: "n-1")
        let original = try aliceA.nextMessage()
        XCTAssertEqual(original["nonce"] as? String, "n-1", label)
        XCTAssertEqual(try aliceB.nextMessage()["id"] as? String, original["id"] as? String, label)
        XCTAssertEqual(try bob.nextMessage()["id"] as? String, original["id"] as? String, label)
        // The phone lost the ack and sends again — to the other instance.
        try send(aliceB, "room", "hello once", nonce: "n-1")
        let again = try aliceB.nextMessage()
        for key in ["id", "offset", "epoch", "timestamp", "content", "nonce"] {
            XCTAssertEqual("\(again[key] ?? "none")", "\(original[key] ?? "none")", "\(label): \(key) of the original")
        }
        // Nobody else sees it again: the next thing bob and aliceA get is the next message.
        try send(aliceA, "room", "second", nonce: "n-2")
        XCTAssertEqual(try bob.nextMessage()["content"] as? String, "second", "\(label): the repeat was not fanned out")
        XCTAssertEqual(try aliceA.nextMessage()["content"] as? String, "second", label)
        XCTAssertEqual(try aliceB.nextMessage()["content"] as? String, "second", label)
        // One post to chat-service for n-1, one for n-2.
        waitUntil("two forwards") { deliveredIDs(chat).count >= 2 }
        pause(millis: 500)
        let posted = chat.requests.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.body))) as? [String: Any] }
        XCTAssertEqual(posted.filter { $0["content"] as? String == "hello once" }.count, 1, "\(label): forwarded once")
        XCTAssertEqual(posted.first { $0["content"] as? String == "hello once" }?["id"] as? String, original["id"] as? String, label)

        // The same nonce in another channel is another message; errors carry the nonce.
        _ = try aliceA.join("other", since: nil)
        try send(aliceA, "other", "elsewhere", nonce: "n-1")
        XCTAssertEqual(try aliceA.nextMessage()["content"] as? String, "elsewhere", label)
        try send(aliceA, "nowhere", "x", nonce: "n-9")
        let error = try aliceA.nextJSON()
        XCTAssertEqual(error["code"] as? String, "not_joined", "\(label): \(error)")
        XCTAssertEqual(error["nonce"] as? String, "n-9")
        XCTAssertEqual(error["channel"] as? String, "nowhere")
        try aliceA.sendText(#"{"type":"message","channel":"room","content":"x","nonce":"bad nonce!"}"#)
        XCTAssertEqual(try aliceA.nextJSON()["code"] as? String, "bad_json", label)
        try aliceA.sendText(#"{"type":"message","channel":"room","content":"","nonce":"n-10"}"#)
        let empty = try aliceA.nextJSON()
        XCTAssertEqual(empty["code"] as? String, "bad_json")
        XCTAssertEqual(empty["nonce"] as? String, "n-10", "\(label): a refused message's nonce comes back")
    }

    func testARepeatedNonceIsSentOnceEmbedded() throws {
        for backend in availableBackends {
            let chat = try chatService { 201 }
            let directory = NSTemporaryDirectory() + "presenced-nonce-" + RequestID.make()
            defer { _ = try? FileManager.default.removeItem(atPath: directory) }
            let server = try TestServer(backend: backend, echo: false) {
                $0.chatServiceURL = chat.baseURL
                $0.stateDirectory = directory
            }
            defer { server.stop() }
            try scenario(server, server, chat: chat, label: "\(backend) embedded")
        }
    }

    func testARepeatedNonceIsSentOnceAcrossInstances() throws {
        for backend in availableBackends {
            let chat = try chatService { 201 }
            let redis = try RedisServerProcess()
            func instance() throws -> TestServer {
                let directory = NSTemporaryDirectory() + "presenced-nonce-" + RequestID.make()
                let server = try TestServer(backend: backend, echo: false) {
                    $0.redisURL = redis.url()
                    $0.chatServiceURL = chat.baseURL
                    $0.stateDirectory = directory
                }
                let end = EventLoop.monotonicMillis() + 10_000
                while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
                return server
            }
            let a = try instance(), b = try instance()
            defer {
                a.stop()
                b.stop()
            }
            try scenario(a, b, chat: chat, label: "\(backend) Redis")
        }
    }
}
