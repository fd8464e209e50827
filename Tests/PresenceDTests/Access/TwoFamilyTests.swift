import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// Two families on one deployment (docs/protocol.md, "Channel access"): a member of family A can
/// never join, read, post to or list family B — not through the WebSocket, not through the presence
/// endpoint, not through the server API — whether the access answer is fresh or cached. Embedded
/// mode on every backend, and Redis mode with the two families' users on two instances.
final class TwoFamilyTests: XCTestCase {
    static let apiToken = "server-api-token-two-families-0"

    private let families: [String: Set<String>] = ["a1": ["family:A"], "a2": ["family:A"], "b1": ["family:B"], "b2": ["family:B"]]

    private func scenario(_ a: TestServer, _ b: TestServer, _ label: String) throws {
        let patience = 15_000
        let a1 = try a.client("a1", receiveTimeoutMillis: patience)
        let b1 = try b.client("b1", receiveTimeoutMillis: patience)
        let b2 = try a.client("b2", receiveTimeoutMillis: patience)
        try b1.join("family:B", expecting: ["b1"])
        try b2.join("family:B", expecting: ["b1", "b2"])
        try b1.expectPresence("b2", true, "family:B")
        try a1.join("family:A", expecting: ["a1"])

        for attempt in ["fresh", "cached"] {
            // Join: refused, and nothing of family B reaches a1 afterwards.
            try a1.sendText(#"{"type":"join","channel":"family:B"}"#)
            try a1.expectError("forbidden_channel", channel: "family:B")
            try b1.sendText(#"{"type":"message","channel":"family:B","content":"family B only (\#(attempt))"}"#)
            XCTAssertEqual(try b1.nextJSON()["content"] as? String, "family B only (\(attempt))")
            XCTAssertEqual(try b2.nextJSON()["content"] as? String, "family B only (\(attempt))")
            // Post, type: not a member.
            try a1.sendText(#"{"type":"message","channel":"family:B","content":"from A"}"#)
            try a1.expectError("not_joined", channel: "family:B")
            try a1.sendText(#"{"type":"typing","channel":"family:B","typing":true}"#)
            try a1.expectError("not_joined", channel: "family:B")
            // List: the presence endpoint answers 403, on either instance.
            for server in [a, b] {
                let (head, body) = try ServerProbe.get(server.port, "/api/v1/presence?channel=family:B", bearer: server.token("a1"))
                XCTAssertEqual(head.status, 403, "\(label) \(attempt): \(body)")
                XCTAssertFalse(body.contains("b1"), body)
            }
            // The server API: a user's JWT is not the server token.
            XCTAssertEqual(
                try ServerProbe.post(a.port, "/api/v1/disconnect", json: #"{"user_id":"b1"}"#, bearer: a.token("a1")).head.status, 401)
        }
        a1.expectSilence()
        b1.expectSilence()
        b2.expectSilence()
        // Family A's own channel works as usual.
        try a1.sendText(#"{"type":"message","channel":"family:A","content":"hello A"}"#)
        XCTAssertEqual(try a1.nextJSON()["content"] as? String, "hello A")
    }

    func testFamiliesStayApartInEmbeddedMode() throws {
        let service = try ChannelAccessStandIn(families: families)
        for backend in availableBackends {
            let server = try TestServer(backend: backend, echo: false) {
                $0.channelAuthURL = service.url
                $0.serverAPIToken = Self.apiToken
            }
            defer { server.stop() }
            try scenario(server, server, "\(backend)")
        }
    }

    func testFamiliesStayApartAcrossInstances() throws {
        let service = try ChannelAccessStandIn(families: families)
        for backend in availableBackends {
            let redis = try RedisServerProcess()  // fresh: the previous run's presence would show
            func instance() throws -> TestServer {
                let server = try TestServer(backend: backend, echo: false) {
                    $0.redisURL = redis.url()
                    $0.channelAuthURL = service.url
                    $0.serverAPIToken = Self.apiToken
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
            try scenario(a, b, "\(backend) Redis")
        }
    }
}
