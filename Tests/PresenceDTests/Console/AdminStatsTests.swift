import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// `GET /api/v1/admin/stats`' JSON text, byte for byte, from fixed reports: key order, escaping,
/// two-decimal numbers (rounded, negative, huge, unknown), Redis configured or not.
final class AdminStatsTests: XCTestCase {
    private func report(redis: AdminStats.Report.Redis?) -> AdminStats.Report {
        AdminStats.Report(
            instanceID: "0123456789abcdef", version: "0.1.0", mode: redis == nil ? "embedded" : "redis", ioBackend: "io_uring",
            uptimeSeconds: 93_784, connections: 4, draining: false, devTokens: true,
            loops: [
                .init(index: 0, connections: 3, eventsPerSecond: 12.345), .init(index: 1, connections: 1, eventsPerSecond: nil),
                .init(index: 2, connections: 0, eventsPerSecond: 0),
            ],
            channels: [.init(channel: "big", members: 3), .init(channel: "say \"hi\"\\\n", members: 1)],
            historyIntervalSeconds: 5,
            samples: [
                .init(time: 1_795_861_481_123, upgradesPerSecond: 1.005, deliveriesPerSecond: -1.5),
                .init(time: 1_795_861_486_123, upgradesPerSecond: .infinity, deliveriesPerSecond: .nan),
                .init(time: 1_795_861_491_123, upgradesPerSecond: 1e20, deliveriesPerSecond: -0.004),
                .init(time: 1_795_861_496_123, upgradesPerSecond: 9_999_999_999_999.99, deliveriesPerSecond: 0.1),
            ],
            redis: redis, forwardingMode: redis == nil ? "files" : "redis-stream", queueDepth: 17, oldestAgeSeconds: 42, deadLetters: 2)
    }

    func testTheTextIsPinnedByteForByte() {
        XCTAssertEqual(
            AdminStats.json(report(redis: nil)),
            #"{"instance_id":"0123456789abcdef","version":"0.1.0","mode":"embedded","io_backend":"io_uring","uptime_seconds":93784,"connections":4,"draining":false,"dev_tokens":true,"loops":[{"index":0,"connections":3,"events_per_second":12.35},{"index":1,"connections":1,"events_per_second":null},{"index":2,"connections":0,"events_per_second":0.00}],"channels":[{"channel":"big","members":3},{"channel":"say \"hi\"\\\n","members":1}],"history":{"interval_seconds":5,"samples":[{"time":1795861481123,"upgrades_per_second":1.00,"deliveries_per_second":-1.50},{"time":1795861486123,"upgrades_per_second":null,"deliveries_per_second":null},{"time":1795861491123,"upgrades_per_second":1e+20,"deliveries_per_second":0.00},{"time":1795861496123,"upgrades_per_second":9999999999999.99,"deliveries_per_second":0.10}]},"redis":{"configured":false,"reachable":null,"rtt_ms":null},"forwarding":{"mode":"files","queue_depth":17,"oldest_age_seconds":42,"dead_letters":2}}"#
        )
        XCTAssertEqual(
            AdminStats.json(report(redis: .init(reachable: true, rttMillis: 0.256))),
            #"{"instance_id":"0123456789abcdef","version":"0.1.0","mode":"redis","io_backend":"io_uring","uptime_seconds":93784,"connections":4,"draining":false,"dev_tokens":true,"loops":[{"index":0,"connections":3,"events_per_second":12.35},{"index":1,"connections":1,"events_per_second":null},{"index":2,"connections":0,"events_per_second":0.00}],"channels":[{"channel":"big","members":3},{"channel":"say \"hi\"\\\n","members":1}],"history":{"interval_seconds":5,"samples":[{"time":1795861481123,"upgrades_per_second":1.00,"deliveries_per_second":-1.50},{"time":1795861486123,"upgrades_per_second":null,"deliveries_per_second":null},{"time":1795861491123,"upgrades_per_second":1e+20,"deliveries_per_second":0.00},{"time":1795861496123,"upgrades_per_second":9999999999999.99,"deliveries_per_second":0.10}]},"redis":{"configured":true,"reachable":true,"rtt_ms":0.26},"forwarding":{"mode":"redis-stream","queue_depth":17,"oldest_age_seconds":42,"dead_letters":2}}"#
        )
        XCTAssertEqual(
            AdminStats.json(report(redis: .init(reachable: false, rttMillis: nil))),
            #"{"instance_id":"0123456789abcdef","version":"0.1.0","mode":"redis","io_backend":"io_uring","uptime_seconds":93784,"connections":4,"draining":false,"dev_tokens":true,"loops":[{"index":0,"connections":3,"events_per_second":12.35},{"index":1,"connections":1,"events_per_second":null},{"index":2,"connections":0,"events_per_second":0.00}],"channels":[{"channel":"big","members":3},{"channel":"say \"hi\"\\\n","members":1}],"history":{"interval_seconds":5,"samples":[{"time":1795861481123,"upgrades_per_second":1.00,"deliveries_per_second":-1.50},{"time":1795861486123,"upgrades_per_second":null,"deliveries_per_second":null},{"time":1795861491123,"upgrades_per_second":1e+20,"deliveries_per_second":0.00},{"time":1795861496123,"upgrades_per_second":9999999999999.99,"deliveries_per_second":0.10}]},"redis":{"configured":true,"reachable":false,"rtt_ms":null},"forwarding":{"mode":"redis-stream","queue_depth":17,"oldest_age_seconds":42,"dead_letters":2}}"#
        )
    }

    func testAnEmptyInstance() {
        let empty = AdminStats.Report(
            instanceID: "", version: "0.1.0", mode: "embedded", ioBackend: "unknown", uptimeSeconds: 0,
            connections: 0, draining: true, devTokens: false, loops: [], channels: [],
            historyIntervalSeconds: 5, samples: [], redis: nil, forwardingMode: "off",
            queueDepth: 0, oldestAgeSeconds: 0, deadLetters: 0)
        XCTAssertEqual(
            AdminStats.json(empty),
            #"{"instance_id":"","version":"0.1.0","mode":"embedded","io_backend":"unknown","uptime_seconds":0,"connections":0,"draining":true,"dev_tokens":false,"loops":[],"channels":[],"history":{"interval_seconds":5,"samples":[]},"redis":{"configured":false,"reachable":null,"rtt_ms":null},"forwarding":{"mode":"off","queue_depth":0,"oldest_age_seconds":0,"dead_letters":0}}"#
        )
    }
}
