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

/// presenced under the Redis ACL user that docs/operations.md gives (read from the document
/// itself, so the two cannot drift): two instances — joins, presence, cross-instance messages,
/// typing, single-use tokens, forwarding through the shared stream, a revocation, user presence —
/// and not one command refused (Redis' `ACL LOG` stays empty).
final class RedisACLTests: StandInServerTestCase {
    /// The `ACL SETUSER presenced …` line of docs/operations.md.
    static func documentedACL() throws -> String {
        let text = try String(contentsOfFile: DaemonProcess.repository.appendingPathComponent("docs/operations.md").path, encoding: .utf8)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("ACL SETUSER presenced ") }
        guard lines.count == 1 else { throw SystemError(call: "docs/operations.md: expected one ACL SETUSER presenced line", errno: 0) }
        return String(lines[0])
    }

    func testPresencedWorksUnderTheDocumentedACL() throws {
        let password = "acl-password-" + RequestID.make()
        let acl = try Self.documentedACL().replacingOccurrences(of: ">CHANGE-ME", with: ">" + password)
        let chat = try chatService { 201 }
        for backend in availableBackends {
            let redis = try RedisServerProcess()
            let arguments = acl.split(separator: " ").map(String.init)
            XCTAssertEqual(redis.redisCLI(arguments), "OK", acl)
            let url = "redis://presenced:\(password)@127.0.0.1:\(redis.port)"
            func instance() throws -> TestServer {
                let directory = NSTemporaryDirectory() + "presenced-acl-" + RequestID.make()
                let server = try TestServer(backend: backend, echo: false) {
                    $0.redisURL = url
                    $0.chatServiceURL = chat.baseURL
                    $0.stateDirectory = directory  // each instance its own local outage queue
                    $0.serverAPIToken = "server-api-token-for-acl-test"
                    $0.presenceGraceMillis = 200
                }
                let end = EventLoop.monotonicMillis() + 10_000
                while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
                XCTAssertTrue(server.hub!.redisReady, "\(backend): ready under the ACL")
                return server
            }
            let a = try instance(), b = try instance()
            defer {
                a.stop()
                b.stop()
            }
            let alice = try a.client("alice", receiveTimeoutMillis: 15_000)
            try alice.join("room", expecting: ["alice"])
            let bob = try b.client("bob", receiveTimeoutMillis: 15_000)
            try bob.join("room", expecting: ["alice", "bob"])
            try alice.expectPresence("bob", true, "room")
            try bob.sendText(#"{"type":"typing","channel":"room","typing":true}"#)
            XCTAssertEqual(try alice.nextJSON()["type"] as? String, "typing")
            try bob.sendText(#"{"type":"message","channel":"room","content":"under the ACL"}"#)
            XCTAssertEqual(try alice.nextJSON()["content"] as? String, "under the ACL")
            XCTAssertEqual(try bob.nextJSON()["content"] as? String, "under the ACL")
            waitUntil("the message reached chat-service") { deliveredIDs(chat).count >= 1 }

            // A token spent on A is refused on B (the jti in Redis), and by the presence endpoint.
            let token = a.token("carol")
            _ = try TestWebSocket(port: a.port, path: "/ws?token=" + token)
            XCTAssertThrowsError(try TestWebSocket(port: b.port, path: "/ws?token=" + token))
            XCTAssertEqual(try ServerProbe.get(b.port, "/api/v1/presence?channel=room", bearer: token).head.status, 401)
            let (listed, body) = try ServerProbe.get(b.port, "/api/v1/presence?channel=room", bearer: b.token("dave"))
            XCTAssertEqual(listed.status, 200, body)
            XCTAssertTrue(body.contains("alice") && body.contains("bob"), body)

            // A revocation crosses instances through the control channel.
            let (revoked, _) = try ServerProbe.post(
                a.port, "/api/v1/disconnect", json: #"{"user_id":"bob"}"#,
                bearer: "server-api-token-for-acl-test")
            XCTAssertEqual(revoked.status, 200)
            try bob.expectClose(4403)
            XCTAssertEqual(try alice.nextJSON()["typing"] as? Bool, false, "bob's typing ends with his connection")
            try alice.expectPresence("bob", false, "room")
            // User presence (its scripts write the `seen` set): bob offline with a last_seen, alice online.
            let (users, usersBody) = try ServerProbe.get(b.port, "/api/v1/presence?user=bob,alice", bearer: "server-api-token-for-acl-test")
            XCTAssertEqual(users.status, 200, usersBody)
            XCTAssertTrue(usersBody.hasPrefix(#"[{"user_id":"bob","online":false,"last_seen":"20"#), usersBody)
            XCTAssertTrue(usersBody.hasSuffix(#"{"user_id":"alice","online":true,"last_seen":null}]"#), usersBody)

            XCTAssertEqual(redis.redisCLI("ACL", "LOG"), "", "\(backend): Redis refused a command presenced sent")
        }
    }
}
