import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceForwarding
@testable import PresenceOutbound
@testable import PresenceRealtime

final class ForwardPolicyTests: XCTestCase {
    func testStatusesMapToDeliveredRetryOrDeadLetter() {
        for status in [200, 201, 204, 299, 409] {
            XCTAssertEqual(ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0), .delivered, "\(status)")
        }
        for status in [408, 429] {
            XCTAssertEqual(ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0), .retry(afterMillis: nil), "\(status)")
        }
        for status in [500, 502, 503, 599] {
            XCTAssertEqual(
                ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0),
                .retry(afterMillis: nil, serverError: status), "\(status)")
        }
        for status in [301, 400, 401, 403, 404, 413, 422] {
            XCTAssertEqual(
                ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0),
                .deadLetter(reason: "chat-service answered \(status)"), "\(status)")
        }
    }

    func testRetryAfterSecondsAndHTTPDate() {
        XCTAssertEqual(ForwardOutcome.of(status: 429, retryAfter: " 7 ", nowUnixSeconds: 0), .retry(afterMillis: 7_000))
        XCTAssertEqual(
            ForwardOutcome.of(status: 503, retryAfter: "99999", nowUnixSeconds: 0),
            .retry(afterMillis: 3_600_000, serverError: 503), "capped")
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        XCTAssertEqual(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777)
        XCTAssertEqual(
            ForwardOutcome.of(status: 503, retryAfter: "Sun, 06 Nov 1994 08:49:47 GMT", nowUnixSeconds: 784_111_777),
            .retry(afterMillis: 10_000, serverError: 503))
        XCTAssertEqual(ForwardOutcome.of(status: 503, retryAfter: "soon", nowUnixSeconds: 0), .retry(afterMillis: nil, serverError: 503))
        XCTAssertNil(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 UTC"))
        // A year of more than four digits is refused, not computed (it overflowed, a crash).
        XCTAssertNil(HTTPDate.parse("Sun, 06 Nov 100000000000000000 08:49:37 GMT"))
        XCTAssertNil(HTTPDate.parse("Sun, 06 Nov 19940 08:49:37 GMT"))
    }

    func testBackoffGrowsWithJitterUpToTheCapAndHonoursRetryAfter() {
        let policy = ForwardRetryPolicy()
        for attempt in 0..<12 {
            let ceiling = min(30_000, 250 << attempt)
            for _ in 0..<50 {
                let d = policy.delay(attempt: attempt, retryAfter: nil)
                XCTAssertTrue((0...Int64(ceiling)).contains(d), "attempt \(attempt): \(d)")
            }
        }
        XCTAssertGreaterThanOrEqual(policy.delay(attempt: 0, retryAfter: 5_000), 5_000)
    }

    /// FORWARD_MAX_ATTEMPTS counts 5xx answers only: the one that reaches the limit is a dead
    /// letter naming the status and the count; 408, 429 and failures without an answer (an
    /// outage) stay retries however many came before.
    func testOnlyTheFifthHundredsCountTowardTheLimit() {
        let policy = ForwardRetryPolicy(maxAttempts: 3)
        let fiveHundred = ForwardOutcome.of(status: 500, retryAfter: nil, nowUnixSeconds: 0)
        XCTAssertEqual(policy.settle(fiveHundred, serverErrorsBefore: 0), fiveHundred)
        XCTAssertEqual(policy.settle(fiveHundred, serverErrorsBefore: 1), fiveHundred)
        XCTAssertEqual(
            policy.settle(fiveHundred, serverErrorsBefore: 2),
            .deadLetter(reason: "chat-service answered 500; 3 attempts answered 5xx (FORWARD_MAX_ATTEMPTS)"))
        XCTAssertEqual(
            policy.settle(.of(status: 502, retryAfter: nil, nowUnixSeconds: 0), serverErrorsBefore: 7),
            .deadLetter(reason: "chat-service answered 502; 8 attempts answered 5xx (FORWARD_MAX_ATTEMPTS)"),
            "past the limit (a lower limit after a restart): at the next 5xx")
        for notCounted in [
            ForwardOutcome.of(status: 408, retryAfter: nil, nowUnixSeconds: 0),
            .of(status: 429, retryAfter: "1", nowUnixSeconds: 0), .retry(afterMillis: nil),
        ] {
            XCTAssertEqual(policy.settle(notCounted, serverErrorsBefore: 1_000), notCounted)
        }
        XCTAssertEqual(policy.settle(.delivered, serverErrorsBefore: 1_000), .delivered)
        XCTAssertEqual(
            ForwardRetryPolicy(maxAttempts: 1).settle(fiveHundred, serverErrorsBefore: 0),
            .deadLetter(reason: "chat-service answered 500; 1 attempts answered 5xx (FORWARD_MAX_ATTEMPTS)"))
        XCTAssertEqual(ForwardRetryPolicy().maxAttempts, 50)
    }

    /// FORWARD_MAX_ATTEMPTS: default 50, 1…1000000, reaches the forwarding runtime.
    func testMaxAttemptsIsConfigured() throws {
        XCTAssertEqual(try Config.parse(environment: [:], arguments: []).forwardMaxAttempts, 50)
        var config = try Config.parse(
            environment: [
                "FORWARD_MAX_ATTEMPTS": "7", "CHAT_SERVICE_URL": "http://chat:8080",
                "STATE_DIRECTORY": NSTemporaryDirectory() + "presenced-policy-" + RequestID.make(),
            ],
            arguments: [])
        XCTAssertEqual(config.forwardMaxAttempts, 7)
        XCTAssertEqual(try Config.parse(environment: ["FORWARD_MAX_ATTEMPTS": "1000000"], arguments: []).forwardMaxAttempts, 1_000_000)
        config.threads = 1
        let runtime = try XCTUnwrap(try DaemonAssembly.makeForwarding(config: config))
        defer { _ = try? FileManager.default.removeItem(atPath: config.stateDirectory) }
        XCTAssertEqual(runtime.policy.maxAttempts, 7)
        XCTAssertEqual(runtime.policy.backoff, ForwardRetryPolicy.standardBackoff)
    }
}
