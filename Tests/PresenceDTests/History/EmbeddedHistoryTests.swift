import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// `EmbeddedHistory`: offsets, the ring's bound, HISTORY_TTL, epochs, nonces.
final class EmbeddedHistoryTests: XCTestCase {
    private func message(_ n: Int, channel: String = "c", nonce: String? = nil) -> ChatMessage {
        ChatMessage(id: "id-\(n)", channel: channel, sender: "s", content: "m\(n)", timestamp: "2026-12-06T00:00:00.000Z", nonce: nonce)
    }

    private func text(_ frame: SharedBytes) -> String {
        frame.withBytes { String(decoding: ServerMessage.payload(of: $0)!, as: UTF8.self) }
    }

    func testOffsetsFramesAndTheRingsBound() {
        let history = EmbeddedHistory(size: 3, ttlMillis: 60_000, nonceWindowMillis: 60_000, epochPrefix: "p")
        let first = history.read(channel: "c", since: nil, now: 0)
        XCTAssertEqual(first.latest?.offset, 0)
        let epoch = first.latest!.epoch
        XCTAssertTrue(epoch.hasPrefix("p-"))
        for n in 1...5 {
            let appended = history.append(message(n), now: Int64(n))
            XCTAssertEqual(appended.position, StreamPosition(offset: Int64(n), epoch: epoch))
            XCTAssertTrue(text(appended.frame).hasSuffix(#","offset":\#(n),"epoch":"\#(epoch)"}"#), text(appended.frame))
            if n == 2 {  // the ring is not full yet
                XCTAssertEqual(history.read(channel: "c", since: StreamPosition(offset: 0, epoch: epoch), now: 2).frames.count, 2)
            }
        }
        let kept = history.read(channel: "c", since: StreamPosition(offset: 2, epoch: epoch), now: 10)
        XCTAssertEqual(kept.recovered, true)
        XCTAssertEqual(kept.frames.map(text).map { $0.contains(#""content":"m3""#) }, [true, false, false])
        XCTAssertEqual(history.read(channel: "c", since: StreamPosition(offset: 1, epoch: epoch), now: 10).recovered, false, "2 fell out")
        XCTAssertEqual(history.read(channel: "other", since: nil, now: 10).latest?.epoch == epoch, false, "each channel its own epoch")
    }

    func testTTLAndExpiredChannelsStartAnewInANewEpoch() {
        let history = EmbeddedHistory(size: 10, ttlMillis: 1_000, nonceWindowMillis: 60_000, epochPrefix: "p")
        let epoch = history.append(message(1), now: 0).position!.epoch
        _ = history.append(message(2), now: 900)
        XCTAssertEqual(history.read(channel: "c", since: StreamPosition(offset: 0, epoch: epoch), now: 999).recovered, true)
        XCTAssertEqual(history.read(channel: "c", since: StreamPosition(offset: 0, epoch: epoch), now: 1_001).recovered, false, "1 expired")
        XCTAssertEqual(history.read(channel: "c", since: StreamPosition(offset: 1, epoch: epoch), now: 1_001).recovered, true, "2 did not")
        history.tick(nowMillis: 2_000)
        let again = history.append(message(3), now: 2_000).position!
        XCTAssertEqual(again.offset, 1, "the channel's history was dropped: it starts again")
        XCTAssertNotEqual(again.epoch, epoch, "in a new epoch")
    }

    func testANonceIsAnsweredWithTheOriginalWithinItsWindow() {
        let history = EmbeddedHistory(size: 10, ttlMillis: 60_000, nonceWindowMillis: 1_000, epochPrefix: "p")
        let original = history.append(message(1, nonce: "n"), now: 0)
        XCTAssertFalse(original.duplicate)
        let repeated = history.append(message(2, nonce: "n"), now: 500)
        XCTAssertTrue(repeated.duplicate)
        XCTAssertEqual(text(repeated.frame), text(original.frame))
        XCTAssertEqual(repeated.position, original.position)
        XCTAssertFalse(history.append(message(3, channel: "d", nonce: "n"), now: 500).duplicate, "another channel")
        history.tick(nowMillis: 10_000)
        XCTAssertFalse(history.append(message(4, nonce: "n"), now: 10_000).duplicate, "past NONCE_WINDOW")
        XCTAssertFalse(history.claimForward(channel: "c", sender: "s", nonce: "m", now: 10_000))
        XCTAssertTrue(history.claimForward(channel: "c", sender: "s", nonce: "m", now: 10_001), "claimed")
        history.releaseForward(channel: "c", sender: "s", nonce: "m")
        XCTAssertFalse(history.claimForward(channel: "c", sender: "s", nonce: "m", now: 10_002), "released: a re-send forwards")
    }

    func testWithoutHistoryOnlyNonces() {
        let history = EmbeddedHistory(size: 0, ttlMillis: 60_000, nonceWindowMillis: 60_000)
        let appended = history.append(message(1, nonce: "n"), now: 0)
        XCTAssertNil(appended.position)
        XCTAssertFalse(text(appended.frame).contains("offset"))
        XCTAssertTrue(history.append(message(2, nonce: "n"), now: 1).duplicate)
        XCTAssertNil(history.read(channel: "c", since: nil, now: 0).latest)
        XCTAssertEqual(history.read(channel: "c", since: StreamPosition(offset: 0, epoch: "x"), now: 0).recovered, false)
    }
}
