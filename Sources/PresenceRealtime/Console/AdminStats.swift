import PresenceJSON
import PresenceLoop

/// `GET /api/v1/admin/stats`: what the instance holds now, for the console's instance view.
/// Per-loop state is read on each loop's own thread through its mailbox (`RealtimeHub.gather`,
/// as `/metrics` does); the history comes from `ConsoleHistory`.
struct AdminStats {
    /// Channels each loop reports (their sum is ranked; see `TopChannels.merge`).
    static let channelsPerLoop = 100
    static let topChannels = 10

    /// What one loop contributes (read on its thread).
    struct LoopFigures {
        var index: Int
        var backend: IOBackendKind
        var connections: Int
        var channels: [TopChannels.Entry]
        var metrics: Metrics.LoopFigures

        init(hub: RealtimeHub, loop: EventLoop) {
            index = loop.index
            backend = loop.backend.kind
            let application = hub.application(on: loop)
            connections = application?.openSessions ?? 0
            channels = application?.busiestChannels(limit: AdminStats.channelsPerLoop) ?? []
            metrics = Metrics.LoopFigures(hub: hub, loop: loop)
        }
    }

    /// Reads every loop, then hands the JSON body to `done` on `loop`'s thread.
    static func collect(hub: RealtimeHub, from loop: EventLoop, _ done: @escaping (String) -> Void) {
        hub.gather(from: loop, [LoopFigures](), read: { [LoopFigures(hub: hub, loop: $0)] }, combine: { $0 += $1 }) { loops in
            done(render(hub: hub, loops: loops.sorted { $0.index < $1.index }))
        }
    }

    static func render(hub: RealtimeHub, loops: [LoopFigures]) -> String {
        let console = hub.console
        var total = Metrics.LoopFigures()
        for l in loops { total.add(l.metrics) }
        var o = JSONObjectText()
        o.string("instance_id", console.instanceID)
        o.string("version", BuildInfo.version)
        o.string("mode", hub.redis == nil ? "embedded" : "redis")
        o.string("io_backend", loops.first?.backend.rawValue ?? "unknown")
        o.int("uptime_seconds", Int((EventLoop.monotonicMillis() - console.startedMillis) / 1000))
        o.int("connections", hub.sessions.load(ordering: .relaxed))
        o.bool("draining", hub.draining.load(ordering: .relaxed))
        o.bool("dev_tokens", console.devTokens)
        o.raw("loops", "[" + loops.map { l in
            var e = JSONObjectText()
            e.int("index", l.index)
            e.int("connections", l.connections)
            e.number("events_per_second", console.history?.eventsPerSecond(loop: l.index))
            return e.text
        }.joined(separator: ",") + "]")
        o.raw("channels", "[" + TopChannels.merge(loops.map(\.channels), limit: topChannels).map { c in
            var e = JSONObjectText()
            e.string("channel", c.channel)
            e.int("members", c.members)
            return e.text
        }.joined(separator: ",") + "]")
        var history = JSONObjectText()
        history.int("interval_seconds", Int(ConsoleHistory.intervalMillis / 1000))
        history.raw("samples", "[" + (console.history?.samples ?? []).map { s in
            var e = JSONObjectText()
            e.int("time", Int(s.time))
            e.number("upgrades_per_second", s.upgradesPerSecond)
            e.number("deliveries_per_second", s.deliveriesPerSecond)
            return e.text
        }.joined(separator: ",") + "]")
        o.raw("history", history.text)
        var redis = JSONObjectText()
        redis.bool("configured", hub.redis != nil)
        if let runtime = hub.redis {
            redis.bool("reachable", runtime.isReady)
            let lifetime = total.redis.flatMap { $0.rttCount > 0 ? Double($0.rttSumMillis) / Double($0.rttCount) : nil }
            redis.number("rtt_ms", console.history?.recentRTTMillis ?? lifetime)
        } else {
            redis.raw("reachable", "null")
            redis.raw("rtt_ms", "null")
        }
        o.raw("redis", redis.text)
        var forwarding = JSONObjectText()
        forwarding.string("mode", hub.forwarding?.modeName ?? "off")
        let figures = total.forwarding ?? ForwardingFigures()
        forwarding.int("queue_depth", figures.queueDepth)
        forwarding.int("oldest_age_seconds", Int(figures.oldestAgeMillis / 1000))
        forwarding.int("dead_letters", figures.deadLetters)
        o.raw("forwarding", forwarding.text)
        return o.text
    }
}

/// A JSON object written field by field (keys are fixed ASCII names, values escaped).
struct JSONObjectText {
    private var body = ""

    var text: String { "{" + body + "}" }

    mutating func raw(_ key: String, _ json: String) {
        if !body.isEmpty { body += "," }
        body += "\"\(key)\":" + json
    }

    mutating func string(_ key: String, _ value: String) { raw(key, JSONWriter.quoted(value)) }
    mutating func int(_ key: String, _ value: Int) { raw(key, String(value)) }
    mutating func bool(_ key: String, _ value: Bool) { raw(key, value ? "true" : "false") }

    /// Two decimals; null when absent or not finite.
    mutating func number(_ key: String, _ value: Double?) {
        guard let value, value.isFinite else { return raw(key, "null") }
        let hundredths = (value * 100).rounded()
        raw(key, hundredths == hundredths.rounded(.towardZero) && abs(hundredths) < 1e15
            ? JSONObjectText.decimal(Int64(hundredths)) : "\(value)")
    }

    private static func decimal(_ hundredths: Int64) -> String {
        let sign = hundredths < 0 ? "-" : ""
        let v = abs(hundredths)
        let cents = v % 100
        return "\(sign)\(v / 100).\(cents < 10 ? "0" : "")\(cents)"
    }
}
