@testable import PresenceD
@testable import PresenceLoop
import XCTest

final class TimestampTests: XCTestCase {
    func testFormatsUTCWithMillisecondsAndZeroPadding() {
        XCTAssertEqual(Timestamp.iso8601(seconds: 0, millis: 5), "1970-01-01T00:00:00.005Z")
        // 2026-11-28T09:05:07Z
        XCTAssertEqual(Timestamp.iso8601(seconds: 1_795_856_707, millis: 123), "2026-11-28T09:05:07.123Z")
        XCTAssertEqual(Timestamp.iso8601(seconds: 951_782_399, millis: 999), "2000-02-28T23:59:59.999Z")
    }

    func testNowIsTwentyFourCharacters() {
        let now = Timestamp.iso8601Now()
        XCTAssertEqual(now.utf8.count, 24)
        XCTAssertTrue(now.hasSuffix("Z"))
    }
}
