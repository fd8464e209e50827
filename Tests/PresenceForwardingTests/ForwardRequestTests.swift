import Foundation
import XCTest

@testable import PresenceForwarding
@testable import PresenceOutbound

final class ForwardRequestTests: XCTestCase {
    private let entry = ForwardEntry(
        id: "0192f3a0-0000-7000-8000-000000000001", channel: "family", sender: "alice",
        content: "line \"one\"\nü", createdAt: "2026-11-28T10:24:41.123Z",
        requestID: "req-1", traceParent: "")

    func testBodyHasTheRESTNamesOfChatMessage() throws {
        let json = try JSONSerialization.jsonObject(with: Data(ForwardRequest.body(entry))) as! [String: String]
        XCTAssertEqual(
            json,
            [
                "id": entry.id, "channel_id": "family", "sender_id": "alice",
                "content": "line \"one\"\nü", "created_at": "2026-11-28T10:24:41.123Z",
            ])
    }

    func testHeadersCarryIdempotencyTracingAndTheToken() {
        let headers = ForwardRequest.headers(entry, token: "s3cret")
        XCTAssertEqual(headers["content-type"], "application/json")
        XCTAssertEqual(headers["idempotency-key"], entry.id)
        XCTAssertEqual(headers["x-request-id"], "req-1")
        XCTAssertTrue(TraceParent.isValid(headers["traceparent"] ?? ""), headers["traceparent"] ?? "")
        XCTAssertEqual(headers["authorization"], "Bearer s3cret")
        XCTAssertNil(ForwardRequest.headers(entry, token: nil)["authorization"])
        var traced = entry
        traced.traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        XCTAssertEqual(ForwardRequest.headers(traced, token: nil)["traceparent"], traced.traceParent, "propagated as given")
    }
}
