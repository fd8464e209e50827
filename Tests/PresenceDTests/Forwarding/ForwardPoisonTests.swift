import Foundation
import Glibc
import RedisTestSupport
import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// FORWARD_MAX_ATTEMPTS (docs/operations.md, "Forward queue and dead letters"), with the file queue
/// (embedded mode) and the Redis stream (Redis mode), on every backend: a message chat-service
/// answers 5xx that many times becomes a dead letter and the next message of its channel is
/// delivered; chat-service down (connection refused) for longer than that many attempts
/// dead-letters nothing.
final class ForwardPoisonTests: StandInServerTestCase {
    private enum Mode: String, CaseIterable { case embedded, redis }

    private var directories: [String] = []
    private var redisServers: [RedisServerProcess] = []

    override func tearDown() {
        for server in redisServers { server.stop() }
        redisServers = []
        super.tearDown()
        for directory in directories { _ = try? FileManager.default.removeItem(atPath: directory) }
    }

    /// A presenced forwarding to `url` with FORWARD_MAX_ATTEMPTS=3 and 20…200 ms backoff; in Redis
    /// mode on a redis-server of its own, ready. Also the environment `presenced dead-letters` needs.
    private func presenced(
        _ mode: Mode, _ backend: IOBackendKind, forwardingTo url: String
    ) throws
        -> (server: ForwardingTestServer, commandEnvironment: [String: String])
    {
        let directory = NSTemporaryDirectory() + "presenced-poison-" + RequestID.make()
        directories.append(directory)
        var redisURL: String?
        if mode == .redis {
            let redis = try RedisServerProcess()
            redisServers.append(redis)
            redisURL = redis.url()
        }
        let server = try ForwardingTestServer(backend: backend) { config in
            config.chatServiceURL = url
            config.stateDirectory = directory
            config.forwardMaxAttempts = 3
            config.redisURL = redisURL
        }
        waitUntil("Redis ready") { server.hub.redisReady }
        return (server, redisURL.map { ["REDIS_URL": $0] } ?? ["STATE_DIRECTORY": directory])
    }

    func testAPoisonMessageIsDeadLetteredAfterExactlyMaxAttemptsAndItsChannelMovesOn() throws {
        let service = try startServer { request in
            let poison = String(decoding: request.body, as: UTF8.self).contains("poison")
            return StandInHTTPServer.response(status: poison ? 500 : 201, body: "{}")
        }
        for backend in availableBackends {
            for mode in Mode.allCases {
                let what = "\(backend) \(mode)"
                let (server, environment) = try presenced(mode, backend, forwardingTo: service.baseURL)
                defer { server.stop() }
                let alice = try server.client("alice")
                try alice.join("family", expecting: ["alice"])
                let poison = try sendMessage(alice, "poison \(what)")
                let next = try sendMessage(alice, "after it \(what)")
                waitUntil("the next message of the channel (\(what))") { self.deliveredIDs(service).contains(next) }
                let letters = listDeadLetters(environment)
                XCTAssertEqual(letters.count, 1, what)
                XCTAssertEqual(letters.first?["id"] as? String, poison, what)
                XCTAssertEqual(
                    letters.first?["reason"] as? String,
                    "chat-service answered 500; 3 attempts answered 5xx (FORWARD_MAX_ATTEMPTS)", what)
                XCTAssertEqual(letters.first?["attempts"] as? Int, 3, what)
                let figures = try metrics(port: server.port)
                XCTAssertEqual(figures["presenced_forward_poison_dead_lettered_total"], 1, what)
                XCTAssertEqual(figures["presenced_forward_dead_lettered_total"], 1, what)
                pause(millis: 300)  // a fourth attempt would show up now
                let posted = deliveredIDs(service)
                XCTAssertEqual(posted.filter { $0 == poison }.count, 3, "exactly FORWARD_MAX_ATTEMPTS attempts (\(what))")
                XCTAssertGreaterThan(
                    posted.firstIndex(of: next) ?? -1, posted.lastIndex(of: poison) ?? .max,
                    "the channel waited for the poison message, then moved on (\(what))")
            }
        }
    }

    func testChatServiceDownForLongerThanMaxAttemptsDeadLettersNothing() throws {
        let service = try chatService { 201 }
        let gate = try ChatServiceGate(target: service.port)
        defer { gate.close() }
        for backend in availableBackends {
            for mode in Mode.allCases {
                let what = "\(backend) \(mode)"
                gate.close()
                let (server, environment) = try presenced(mode, backend, forwardingTo: gate.url)
                defer { server.stop() }
                let alice = try server.client("alice")
                try alice.join("family", expecting: ["alice"])
                let first = try sendMessage(alice, "first \(what)")
                let second = try sendMessage(alice, "second \(what)")
                // Connection refused, again and again: three times FORWARD_MAX_ATTEMPTS failures.
                waitUntil("9 failed attempts (\(what))") {
                    ((try? self.metrics(port: server.port))?["presenced_forward_retries_total"] ?? 0) >= 9
                }
                let down = try metrics(port: server.port)
                XCTAssertEqual(down["presenced_forward_dead_lettered_total"], 0, what)
                XCTAssertEqual(down["presenced_forward_poison_dead_lettered_total"], 0, what)
                XCTAssertEqual(down["presenced_forward_delivered_total"], 0, what)
                try gate.open()
                waitUntil("both once chat-service is back (\(what))") { Set(self.deliveredIDs(service)).isSuperset(of: [first, second]) }
                let posted = deliveredIDs(service)
                XCTAssertLessThan(posted.firstIndex(of: first)!, posted.firstIndex(of: second)!, what)
                XCTAssertTrue(listDeadLetters(environment).isEmpty, what)
                XCTAssertEqual(try metrics(port: server.port)["presenced_forward_dead_lettered_total"], 0, what)
            }
        }
    }
}
