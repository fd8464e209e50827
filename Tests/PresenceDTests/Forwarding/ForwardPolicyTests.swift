import XCTest
@testable import PresenceD

final class ForwardPolicyTests: XCTestCase {
    func testStatusesMapToDeliveredRetryOrDeadLetter() {
        for status in [200, 201, 204, 299, 409] {
            XCTAssertEqual(ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0), .delivered, "\(status)")
        }
        for status in [408, 429, 500, 502, 503, 599] {
            XCTAssertEqual(ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0), .retry(afterMillis: nil), "\(status)")
        }
        for status in [301, 400, 401, 403, 404, 413, 422] {
            XCTAssertEqual(ForwardOutcome.of(status: status, retryAfter: nil, nowUnixSeconds: 0),
                           .deadLetter(reason: "chat-service answered \(status)"), "\(status)")
        }
    }

    func testRetryAfterSecondsAndHTTPDate() {
        XCTAssertEqual(ForwardOutcome.of(status: 429, retryAfter: " 7 ", nowUnixSeconds: 0), .retry(afterMillis: 7_000))
        XCTAssertEqual(ForwardOutcome.of(status: 503, retryAfter: "99999", nowUnixSeconds: 0), .retry(afterMillis: 3_600_000), "capped")
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        XCTAssertEqual(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777)
        XCTAssertEqual(ForwardOutcome.of(status: 503, retryAfter: "Sun, 06 Nov 1994 08:49:47 GMT", nowUnixSeconds: 784_111_777),
                       .retry(afterMillis: 10_000))
        XCTAssertEqual(ForwardOutcome.of(status: 503, retryAfter: "soon", nowUnixSeconds: 0), .retry(afterMillis: nil))
        XCTAssertNil(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 UTC"))
    }

    func testBackoffGrowsWithJitterUpToTheCapAndHonoursRetryAfter() {
        for attempt in 0..<12 {
            let ceiling = min(30_000, 250 << attempt)
            for _ in 0..<50 {
                let d = ForwardBackoff.delay(attempt: attempt, retryAfter: nil)
                XCTAssertTrue((0...Int64(ceiling)).contains(d), "attempt \(attempt): \(d)")
            }
        }
        XCTAssertGreaterThanOrEqual(ForwardBackoff.delay(attempt: 0, retryAfter: 5_000), 5_000)
    }
}
