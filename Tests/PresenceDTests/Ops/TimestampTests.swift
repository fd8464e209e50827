import XCTest

@testable import PresenceD
@testable import PresenceLoop

final class TimestampTests: XCTestCase {
    func testFormatsUTCWithMillisecondsAndZeroPadding() {
        XCTAssertEqual(Timestamp.iso8601(seconds: 0, millis: 5), "1970-01-01T00:00:00.005Z")
        // 2026-11-28T09:05:07Z
        XCTAssertEqual(Timestamp.iso8601(seconds: 1_795_856_707, millis: 123), "2026-11-28T09:05:07.123Z")
        XCTAssertEqual(Timestamp.iso8601(seconds: 951_782_399, millis: 999), "2000-02-28T23:59:59.999Z")
        XCTAssertEqual(Timestamp.iso8601(millis: 1_795_861_481_123), "2026-11-28T10:24:41.123Z")
    }

    func testNowIsTwentyFourCharacters() {
        let now = Timestamp.iso8601Now()
        XCTAssertEqual(now.utf8.count, 24)
        XCTAssertTrue(now.hasSuffix("Z"))
    }

    /// Known dates, both directions: days since the epoch, text → milliseconds, seconds → text.
    func testKnownDatesBothWays() {
        let known: [(year: Int, month: Int, day: Int, seconds: Int)] = [
            (1970, 1, 1, 0), (2000, 2, 29, 951_782_400), (2100, 3, 1, 4_107_542_400), (2024, 2, 29, 1_709_164_800),
            (1969, 12, 31, -86_400), (1900, 3, 1, -2_203_891_200), (1600, 2, 29, -11_670_998_400),
        ]
        for (year, month, day, seconds) in known {
            let date = "\(year)-\(month < 10 ? "0" : "")\(month)-\(day < 10 ? "0" : "")\(day)"
            XCTAssertEqual(Timestamp.daysFromCivil(year: year, month: month, day: day), seconds / 86_400, date)
            XCTAssertEqual(Timestamp.iso8601(seconds: seconds, millis: 0), date + "T00:00:00.000Z")
            XCTAssertEqual(Timestamp.parseISO8601(date + "T00:00:00.000Z"), Int64(seconds) * 1000, date)
            XCTAssertEqual(Timestamp.parseISO8601(date), Int64(seconds) * 1000, date)
        }
        XCTAssertNil(Timestamp.parseISO8601("2100-02-29T00:00:00Z"), "2100 is not a leap year")
        XCTAssertNotNil(Timestamp.parseISO8601("2000-02-29T00:00:00Z"), "2000 is")
    }

    /// What presenced writes reads back to the same millisecond, over six centuries.
    func testWrittenTimestampsReadBack() {
        var millis: Int64 = -11_670_998_400_000
        while millis < 7_258_118_400_000 {  // 1600 → 2200
            let text = Timestamp.iso8601(seconds: Int(millis.floorDivided(by: 1000)), millis: Int(millis.floorModulo(by: 1000)))
            XCTAssertEqual(Timestamp.parseISO8601(text), millis, text)
            millis += 7 * 86_400_000 + 3_723_456  // a week, 1 h 2 min 3.456 s
        }
    }

    func testParsesTheISO8601FormsOfRFC3339() {
        XCTAssertEqual(Timestamp.parseISO8601("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(Timestamp.parseISO8601("2026-11-28T10:24:41.123Z"), 1_795_861_481_123)
        XCTAssertEqual(Timestamp.parseISO8601("2000-02-29T00:00:00.5Z"), 951_782_400_500)
        XCTAssertEqual(Timestamp.parseISO8601("2000-03-01T00:00:00.5Z"), 951_868_800_500)
        XCTAssertEqual(Timestamp.parseISO8601("2000-03-01T00:00:00.123999Z"), 951_868_800_123, "past milliseconds: dropped")
        XCTAssertEqual(Timestamp.parseISO8601("2024-02-29T12:34:56.789Z"), 1_709_210_096_789)
        XCTAssertEqual(Timestamp.parseISO8601("2024-02-29T14:34:56.789+02:00"), 1_709_210_096_789)
        XCTAssertEqual(Timestamp.parseISO8601("2024-02-29T10:04:56,789-0230"), 1_709_210_096_789)
        XCTAssertEqual(Timestamp.parseISO8601("2026-11-28 10:24:41Z"), 1_795_861_481_000)
        XCTAssertEqual(Timestamp.parseISO8601("2026-11-28T10:24"), 1_795_861_440_000)
        XCTAssertEqual(Timestamp.parseISO8601("2024-02-29"), 1_709_164_800_000)
        XCTAssertNil(Timestamp.parseISO8601("2023-02-29T00:00:00Z"))
        XCTAssertNil(Timestamp.parseISO8601("2026-13-28T10:24:41Z"))
        XCTAssertNil(Timestamp.parseISO8601("2024-02-29T25:00:00Z"))
        XCTAssertNil(Timestamp.parseISO8601("2024-02-29T12:00:00Zjunk"))
        XCTAssertNil(Timestamp.parseISO8601("2024-02-29T12:00:00."))
        XCTAssertNil(Timestamp.parseISO8601(""))
    }
}

private extension Int64 {
    func floorDivided(by d: Int64) -> Int64 { self >= 0 ? self / d : -((-self + d - 1) / d) }
    func floorModulo(by d: Int64) -> Int64 { self - floorDivided(by: d) * d }
}
