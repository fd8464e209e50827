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

/// `POST /api/v1/publish` (docs/protocol.md, "Publish") over real sockets on every backend: a
/// message from family-hub's backend is stored (a join with `since` replays it), fanned out on
/// every instance, forwarded unless `forward:false`, answered with its id, offset, epoch and
/// timestamp; a repeated nonce answers the original; the server token is required.
final class PublishAPITests: StandInServerTestCase {
    static let token = "server-api-token-publish-test"

    private func publish(_ server: TestServer, _ json: String, bearer: String? = PublishAPITests.token) throws -> (Int, [String: Any]) {
        let (head, body) = try ServerProbe.post(server.port, "/api/v1/publish", json: json, bearer: bearer)
        return (head.status, ServerProbe.object(body))
    }

    func testPublishIsStoredFannedOutAndForwarded() throws {
        for backend in availableBackends {
            let chat = try chatService { 201 }
            let directory = NSTemporaryDirectory() + "presenced-publish-" + RequestID.make()
            defer { _ = try? FileManager.default.removeItem(atPath: directory) }
            let server = try TestServer(backend: backend, echo: false) {
                $0.serverAPIToken = Self.token
                $0.chatServiceURL = chat.baseURL
                $0.stateDirectory = directory
            }
            defer { server.stop() }
            let bob = try server.client("bob")
            let start = try XCTUnwrap(try bob.join("family", since: nil).latest)

            let (status, answer) = try publish(server, #"{"channel":"family","sender":"system","content":"Dinner at 7"}"#)
            XCTAssertEqual(status, 200, "\(backend): \(answer)")
            let message = try bob.nextMessage()
            XCTAssertEqual(message["sender"] as? String, "system")
            XCTAssertEqual(message["content"] as? String, "Dinner at 7")
            XCTAssertEqual(message["id"] as? String, answer["id"] as? String)
            XCTAssertEqual(message["offset"] as? Int, answer["offset"] as? Int)
            XCTAssertEqual(message["epoch"] as? String, answer["epoch"] as? String)
            XCTAssertEqual(message["timestamp"] as? String, answer["timestamp"] as? String)
            XCTAssertEqual(answer["offset"] as? Int, Int(start.offset) + 1)
            waitUntil("forwarded") { deliveredIDs(chat) == [answer["id"] as! String] }

            // forward:false: fanned out and stored, never forwarded; a nonce repeated answers the original.
            let (_, quiet) = try publish(server, #"{"channel":"family","sender":"system","content":"quiet","forward":false,"nonce":"p-1"}"#)
            XCTAssertEqual(try bob.nextMessage()["content"] as? String, "quiet")
            let (_, repeated) = try publish(
                server, #"{"channel":"family","sender":"system","content":"quiet","forward":false,"nonce":"p-1"}"#)
            for key in ["id", "offset", "epoch", "timestamp"] {
                XCTAssertEqual("\(repeated[key] ?? "none")", "\(quiet[key] ?? "none")", "\(backend): \(key)")
            }
            let replay = try server.client("carol").join("family", since: start)
            XCTAssertEqual(replay.recovered, true)
            XCTAssertEqual(replay.replay.compactMap { $0["content"] as? String }, ["Dinner at 7", "quiet"], "\(backend): stored once each")
            try bob.expectPresence("carol", true, "family")
            bob.expectSilence()
            XCTAssertEqual(deliveredIDs(chat).count, 1, "\(backend): forward:false is not forwarded")

            // Refusals.
            XCTAssertEqual(try publish(server, #"{"channel":"family","sender":"s","content":"x"}"#, bearer: nil).0, 401)
            XCTAssertEqual(
                try publish(server, #"{"channel":"family","sender":"s","content":"x"}"#, bearer: server.token("bob")).0, 401,
                "\(backend): a user's token is not the server's")
            for bad in [
                #"{"sender":"s","content":"x"}"#, #"{"channel":"bad channel","sender":"s","content":"x"}"#,
                #"{"channel":"c","content":"x"}"#, #"{"channel":"c","sender":"s","content":""}"#,
                #"{"channel":"c","sender":"s","content":"x","nonce":"no spaces"}"#,
                #"{"channel":"c","sender":"s","content":"x","forward":"no"}"#, #"{"channel":"c","sender":"s","content":"x","extra":1}"#,
                "not json",
            ] {
                XCTAssertEqual(try publish(server, bad).0, 400, "\(backend): \(bad)")
            }
            let big = String(repeating: "é", count: 2_049)
            XCTAssertEqual(try publish(server, #"{"channel":"c","sender":"s","content":"\#(big)"}"#).0, 400, "over 4096 bytes")
        }
    }

    func testPublishReachesEveryInstance() throws {
        for backend in availableBackends {
            let redis = try RedisServerProcess()
            func instance() throws -> TestServer {
                let server = try TestServer(backend: backend, echo: false) {
                    $0.redisURL = redis.url()
                    $0.serverAPIToken = Self.token
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
            let onB = try b.client("bob", receiveTimeoutMillis: 15_000)
            _ = try onB.join("family", since: nil)
            let (status, answer) = try publish(a, #"{"channel":"family","sender":"system","content":"to everyone"}"#)
            XCTAssertEqual(status, 200)
            let message = try onB.nextMessage()
            XCTAssertEqual(message["id"] as? String, answer["id"] as? String, "\(backend)")
            XCTAssertEqual(message["offset"] as? Int, 1)
        }
    }

    func testPublishDoesNotExistWithoutTheToken() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        XCTAssertEqual(try publish(server, #"{"channel":"c","sender":"s","content":"x"}"#).0, 404)
    }
}
