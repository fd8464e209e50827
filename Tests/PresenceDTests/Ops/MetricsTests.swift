import Foundation
import Glibc
import RedisTestSupport
import WSCore
import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceOutbound
@testable import PresenceRealtime

/// `GET /metrics` (docs/operations.md, "Metrics"): the families and labels exist, the counts move
/// with traffic, and a live scrape under load is valid exposition for `promtool check metrics`.
final class MetricsTests: XCTestCase {
    private var stateDirectories: [String] = []

    override func tearDown() {
        for directory in stateDirectories { _ = try? FileManager.default.removeItem(atPath: directory) }
        stateDirectories = []
    }

    // MARK: Helpers

    private func scrapeText(_ port: UInt16) throws -> String {
        let socket = try TestSocket(port: port)
        try socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let (head, body) = try socket.readHTTPResponse()
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["content-type"], Metrics.contentType)
        return String(decoding: body, as: UTF8.self)
    }

    /// Samples by their full name with labels (`presenced_upgrades_total{result="ok"}`).
    private func scrape(_ server: TestServer) throws -> [String: Double] {
        var values: [String: Double] = [:]
        for line in try scrapeText(server.port).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
        return values
    }

    private func upgradeStatus(_ server: TestServer, query: String, headers: String = "", version: Int = 13) throws -> Int {
        let socket = try TestSocket(port: server.port)
        try socket.write(
            "GET /ws\(query) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: \(version)\r\n\(headers)\r\n"
        )
        return try socket.readHTTPResponse().head.status
    }

    private func get(_ port: UInt16, _ path: String, headers: String = "") throws -> Int {
        let socket = try TestSocket(port: port)
        try socket.write("GET \(path) HTTP/1.1\r\nHost: x\r\n\(headers)\r\n")
        return try socket.readHTTPResponse().head.status
    }

    private func stateDirectory() -> String {
        let path = NSTemporaryDirectory() + "presenced-metrics-" + RequestID.make()
        stateDirectories.append(path)
        return path
    }

    // MARK: Reading frames

    func testServerMessageTypesAreReadFromTheEncodedFrame() {
        let long = String(repeating: "x", count: 300)  // a 126-style length header
        let cases: [(SharedBytes, OutboundMessageType)] = [
            (ServerMessage.message(id: "1", sender: "u", content: "hi", channel: "c", timestamp: "t"), .message),
            (ServerMessage.message(id: "1", sender: "u", content: long, channel: "c", timestamp: "t"), .message),
            (ServerMessage.presence(userID: "u", online: true, channel: "c"), .presence),
            (ServerMessage.typing(userID: "u", channel: "c", typing: true), .typing),
            (ServerMessage.pong, .pong),
            (ServerMessage.error(.badJSON, "nope"), .error),
            (FrameEncoder.serverFrame(.text, payload: UnsafeRawBufferPointer(start: nil, count: 0)), .other),
            (FrameEncoder.serverFrame(.text, payloadLength: 12) { $0.copyBytes(from: Array(#"{"type":"zz"}"#.utf8).prefix(12)) }, .other),
        ]
        for (frame, expected) in cases {
            XCTAssertEqual(OutboundMessageType.of(frame: frame.baseAddress, count: frame.count), expected, "\(expected)")
            XCTAssertEqual(FrameOpcode.of(frame: frame.baseAddress), .text)
        }
        XCTAssertEqual(FrameOpcode.of(frame: ControlFrames.ping.baseAddress), .ping)
        XCTAssertEqual(FrameOpcode.of(frame: FrameEncoder.closeFrame(.goingAway).baseAddress), .close)
        XCTAssertEqual(
            OutboundMessageType.typePrefix,
            UInt64(littleEndian: Array(#""type":""#.utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
    }

    func testLabelSetsMatchTheirCases() {
        XCTAssertEqual(UpgradeResult.labels.count, UpgradeResult.allCases.count)
        XCTAssertEqual(FrameOpcode.labels.count, FrameOpcode.allCases.count)
        XCTAssertEqual(InboundMessageType.labels.count, InboundMessageType.allCases.count)
        XCTAssertEqual(OutboundMessageType.labels.count, OutboundMessageType.allCases.count)
        XCTAssertEqual(WSTokenResult.labels.count, WSTokenResult.allCases.count)
        // The token reasons are the verifier's own names, each at its own index.
        XCTAssertEqual(TokenRejection.allCases.map { TokenRejection.labels[$0.index] }, TokenRejection.allCases.map(\.rawValue))
    }

    // MARK: Writing the format

    func testPrometheusTextHistogramIsCumulativeAndValuesAreEscaped() {
        var out = PrometheusText()
        out.histogram("h_seconds", "A histogram.", bounds: [0.00005, 0.5], buckets: [2, 3, 1], sum: 1.25, count: 6)
        out.gauge("g", "Line one\nback\\slash.", 1, labels: [("version", "a\"b\\c\nd")])
        XCTAssertEqual(
            out.text,
            """
            # HELP h_seconds A histogram.
            # TYPE h_seconds histogram
            h_seconds_bucket{le="5e-05"} 2
            h_seconds_bucket{le="0.5"} 5
            h_seconds_bucket{le="+Inf"} 6
            h_seconds_sum 1.25
            h_seconds_count 6
            # HELP g Line one\\nback\\\\slash.
            # TYPE g gauge
            g{version="a\\"b\\\\c\\nd"} 1

            """)
        XCTAssertEqual(PrometheusText.number(.infinity), "+Inf")
        XCTAssertEqual(PrometheusText.number(.nan), "NaN")
    }

    func testLatencyHistogramBucketsAndLoopSnapshotsAdd() {
        let counters = LoopCounters()
        counters.fanOutQueued(arrivedAt: 1_000)
        counters.fanOutQueued(arrivedAt: 2_000)
        counters.endTurn(nowNanos: 1_000 + 40_000)  // 40 µs and 39 µs: the first bucket (≤ 50 µs)
        counters.fanOutQueued(arrivedAt: 0)
        counters.endTurn(nowNanos: 2_000_000_000)  // 2 s: above every bound
        XCTAssertEqual(counters.pendingFanOuts, 0)
        var total = counters.snapshot(refusedPerIP: 0)
        XCTAssertEqual(total.fanOutLatency.count, 3)
        XCTAssertEqual(total.fanOutLatency.buckets.first, 2)
        XCTAssertEqual(total.fanOutLatency.buckets.last, 1)
        XCTAssertEqual(total.fanOutLatency.sumNanos, 40_000 + 39_000 + 2_000_000_000)
        counters.tokenRejections.add(.replayed)
        counters.fannedOut(ServerMessage.presence(userID: "u", online: true, channel: "c"), count: 4)
        total.add(counters.snapshot(refusedPerIP: 0))
        XCTAssertEqual(total.fanOutLatency.count, 6)
        XCTAssertEqual(total.tokenRejections[TokenRejection.replayed.index], 1)
        XCTAssertEqual(total.fanOutDeliveries, 4)
        XCTAssertEqual(total.messagesOut[OutboundMessageType.presence.index], 4)
        XCTAssertEqual(total.framesOut[FrameOpcode.text.index], 4)
    }

    func testProcessStatsFromProc() throws {
        // The command name may hold spaces and parentheses; fields count from the last ")".
        let stat = "4242 (pre sen(ced)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 12345 104857600 2560 18446744073709551615"
        let parsed = try XCTUnwrap(
            ProcessStats.parse(
                stat: stat, procStat: "cpu 1 2 3\nbtime 1700000000\nprocesses 9\n",
                ticksPerSecond: 100, pageSize: 4096, openFDs: 7, maxFDs: 1024))
        XCTAssertEqual(parsed.startTimeSeconds, 1_700_000_123.45, accuracy: 0.001)
        XCTAssertEqual(parsed.cpuSeconds, 4.0, accuracy: 0.001)
        XCTAssertEqual(parsed.virtualBytes, 104_857_600)
        XCTAssertEqual(parsed.residentBytes, 2560 * 4096)
        XCTAssertNil(ProcessStats.parse(stat: "garbage", procStat: "", ticksPerSecond: 100, pageSize: 4096, openFDs: 0, maxFDs: 0))

        let live = try XCTUnwrap(ProcessStats.read())
        XCTAssertGreaterThan(live.openFDs, 2)
        XCTAssertGreaterThan(live.residentBytes, 1 << 20)
        XCTAssertLessThanOrEqual(live.startTimeSeconds, Double(UnixTime.now()) + 1)
        XCTAssertGreaterThan(live.startTimeSeconds, Double(UnixTime.now()) - 86_400 * 365)
    }

    // MARK: Counts over the wire

    func testFamiliesExistWithHelpTypeAndBoundedLabels() throws {
        let server = try TestServer(backend: availableBackends[0], echo: false)
        defer { server.stop() }
        let alice = try server.client("alice-7f3")
        try alice.join("room-9c1", expecting: ["alice-7f3"])
        let text = try scrapeText(server.port)
        let families = [
            "presenced_build_info", "presenced_connections", "presenced_draining", "presenced_upgrades_total",
            "presenced_frames_in_total", "presenced_frames_out_total", "presenced_messages_in_total",
            "presenced_messages_out_total", "presenced_rate_limited_total", "presenced_fanout_deliveries_total",
            "presenced_dropped_frames_total", "presenced_slow_consumer_closes_total",
            "presenced_fanout_latency_seconds", "presenced_token_rejections_total",
            "presenced_ws_token_requests_total", "process_start_time_seconds", "process_cpu_seconds_total",
            "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
        ]
        for family in families {
            XCTAssertTrue(text.contains("# HELP \(family) "), family)
            XCTAssertTrue(text.contains("# TYPE \(family) "), family)
        }
        XCTAssertTrue(text.contains("presenced_build_info{version=\"\(BuildInfo.version)\"} 1\n"), text)
        XCTAssertTrue(text.contains("presenced_fanout_latency_seconds_bucket{le=\"5e-05\"}"), text)
        XCTAssertTrue(text.contains("presenced_fanout_latency_seconds_bucket{le=\"1.0\"}"), text)
        // Every label value of every family: present even at zero, never a user or channel.
        for result in UpgradeResult.labels { XCTAssertTrue(text.contains("presenced_upgrades_total{result=\"\(result)\"} "), result) }
        for reason in TokenRejection.labels {
            XCTAssertTrue(text.contains("presenced_token_rejections_total{reason=\"\(reason)\"} "), reason)
        }
        for type in InboundMessageType.labels { XCTAssertTrue(text.contains("presenced_messages_in_total{type=\"\(type)\"} "), type) }
        for type in OutboundMessageType.labels { XCTAssertTrue(text.contains("presenced_messages_out_total{type=\"\(type)\"} "), type) }
        XCTAssertFalse(text.contains("alice-7f3") || text.contains("room-9c1"), "no user or channel ids in metrics")
        withExtendedLifetime(alice) {}
    }

    func testCountsMoveWithTraffic() throws {
        for backend in availableBackends {
            let server = try TestServer(backend: backend, threads: 2, echo: false) { $0.allowedOrigins = ["https://casa.devarno.cloud"] }
            defer { server.stop() }
            let alice = try server.client("alice")
            try alice.join("room", expecting: ["alice"])
            let bob = try server.client("bob")
            try bob.join("room", expecting: ["alice", "bob"])
            try alice.expectPresence("bob", true, "room")
            let before = try scrape(server)

            for i in 0..<3 { try alice.sendText(#"{"type":"message","channel":"room","content":"m\#(i)"}"#) }
            for _ in 0..<3 {
                XCTAssertEqual(try alice.nextJSON()["type"] as? String, "message")
                XCTAssertEqual(try bob.nextJSON()["type"] as? String, "message")
            }
            try bob.sendText(#"{"type":"ping"}"#)
            XCTAssertEqual(try bob.nextJSON()["type"] as? String, "pong")
            try bob.sendText("{nope")
            XCTAssertEqual(try bob.nextJSON()["type"] as? String, "error")

            let token = server.token("carol")
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + token, headers: "Origin: https://evil.example.com\r\n"), 403)
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + token), 101)
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + token), 401, "replayed")
            XCTAssertEqual(try upgradeStatus(server, query: "?token=" + server.token("dave"), version: 8), 426)
            XCTAssertEqual(try get(server.port, "/api/v1/presence?channel=room", headers: "Authorization: Bearer not-a-jwt\r\n"), 401)

            let after = try scrape(server)
            func delta(_ name: String) -> Double { (after[name] ?? .nan) - (before[name] ?? 0) }
            XCTAssertEqual(delta(#"presenced_messages_in_total{type="message"}"#), 3, "\(backend)")
            XCTAssertEqual(delta(#"presenced_messages_in_total{type="ping"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_messages_in_total{type="other"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_frames_in_total{opcode="text"}"#), 5, "\(backend)")
            XCTAssertEqual(delta(#"presenced_messages_out_total{type="message"}"#), 6, "\(backend)")
            XCTAssertEqual(delta(#"presenced_messages_out_total{type="pong"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_messages_out_total{type="error"}"#), 1, "\(backend)")
            XCTAssertEqual(delta("presenced_fanout_deliveries_total"), 6, "\(backend)")
            XCTAssertEqual(delta("presenced_fanout_latency_seconds_count"), 3, "\(backend)")
            XCTAssertEqual(delta(#"presenced_fanout_latency_seconds_bucket{le="+Inf"}"#), 3, "\(backend)")
            XCTAssertEqual(delta(#"presenced_upgrades_total{result="forbidden"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_upgrades_total{result="ok"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_upgrades_total{result="unauthorized"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_upgrades_total{result="upgrade_required"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_token_rejections_total{reason="replayed"}"#), 1, "\(backend)")
            XCTAssertEqual(delta(#"presenced_token_rejections_total{reason="malformed"}"#), 1, "\(backend) presence API")
            withExtendedLifetime((alice, bob)) {}
        }
    }

    func testSlowConsumerCloseIsCounted() throws {
        let server = try TestServer(backend: availableBackends[0], threads: 1, echo: false) { config in
            config.maxOutboundBytes = 64 * 1024
            config.messageRate = 0
            config.presenceGraceMillis = 0
        }
        defer { server.stop() }
        let slow = try server.client("slow")
        slow.socket.setReceiveBuffer(16 * 1024)
        try slow.join("room", expecting: ["slow"])
        let writer = try server.client("writer")
        try writer.join("room", expecting: ["slow", "writer"])
        let before = try scrape(server)
        // The slow member never reads: past what loopback buffers, its backlog passes the cap
        // and it is closed with 4008 (the writer sees it go offline).
        let content = String(repeating: "x", count: 4000)
        var cutOff = false
        for n in 0..<2500 where !cutOff {
            try writer.sendText(#"{"type":"message","channel":"room","content":"\#(n) \#(content)"}"#)
            let m = try writer.nextJSON()
            if m["type"] as? String == "presence" {
                cutOff = true
                _ = try writer.nextJSON()
            }
        }
        XCTAssertTrue(cutOff, "the slow member was never cut off")
        let after = try scrape(server)
        func delta(_ name: String) -> Double { (after[name] ?? .nan) - (before[name] ?? 0) }
        XCTAssertEqual(delta("presenced_slow_consumer_closes_total"), 1)
        XCTAssertEqual(delta("presenced_dropped_frames_total"), 1, "the frame that did not fit")
        XCTAssertEqual(delta(#"presenced_frames_out_total{opcode="close"}"#), 1, "the 4008 close frame")
        withExtendedLifetime(slow) {}
    }

    // MARK: A live scrape

    /// Redis mode (when redis-server is installed) with forwarding to an unreachable chat-service,
    /// so every family shows; a few clients join and talk, a bad token and a bad origin are
    /// refused; the scrape must pass `promtool check metrics` without a single remark.
    func testLiveScrapeUnderLoadPassesPromtool() throws {
        let candidates: [String] = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        guard let promtool = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw XCTSkip("promtool is not installed (Debian package prometheus)")
        }
        let redis = access("/usr/bin/redis-server", X_OK) == 0 ? try RedisServerProcess() : nil
        let directory = stateDirectory()
        let server = try TestServer(backend: availableBackends[0], threads: 2, echo: false) { config in
            config.redisURL = redis?.url()
            config.chatServiceURL = "http://127.0.0.1:9"
            config.stateDirectory = directory
        }
        defer { server.stop() }
        if redis != nil {
            let end = EventLoop.monotonicMillis() + 10_000
            while !server.hub!.redisReady && EventLoop.monotonicMillis() < end { pause(millis: 10) }
        }
        var clients: [TestWebSocket] = []
        for i in 0..<6 {
            let client = try server.client("user\(i)", receiveTimeoutMillis: 15_000)
            try client.sendText(#"{"type":"join","channel":"room\#(i % 2)"}"#)
            clients.append(client)
        }
        for (i, client) in clients.enumerated() {
            for n in 0..<5 { try client.sendText(#"{"type":"message","channel":"room\#(i % 2)","content":"hello \#(n)"}"#) }
            try client.sendText(#"{"type":"typing","channel":"room\#(i % 2)","typing":true}"#)
        }
        XCTAssertEqual(try upgradeStatus(server, query: "?token=forged.token.here"), 401)
        XCTAssertEqual(
            try upgradeStatus(server, query: "?token=" + server.token("eve"), headers: "Origin: https://evil.example.com\r\n"), 403)
        pause(millis: 300)
        let body = try scrapeText(server.port)
        XCTAssertTrue(body.contains("presenced_forward_queue_depth"), "forwarding families present")
        if redis != nil { XCTAssertTrue(body.contains("presenced_redis_rtt_seconds_bucket"), "Redis families present") }

        let check = Process()
        check.executableURL = URL(fileURLWithPath: promtool)
        check.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        check.standardInput = input
        check.standardOutput = output
        check.standardError = output
        try check.run()
        input.fileHandleForWriting.write(Data(body.utf8))
        try input.fileHandleForWriting.close()
        let remarks = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        XCTAssertEqual(check.terminationStatus, 0, remarks)
        XCTAssertEqual(remarks.trimmingCharacters(in: .whitespacesAndNewlines), "", "promtool remarks:\n\(remarks)\n\(body)")
        withExtendedLifetime((clients, redis)) {}
    }
}
