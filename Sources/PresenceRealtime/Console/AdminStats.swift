import PresenceLoop

/// `GET /api/v1/admin/stats`: what the instance holds now, for the console's instance view.
/// Per-loop state is read on each loop's own thread through its mailbox (`RealtimeHub.gather`,
/// as `/metrics` does); the history comes from `ConsoleHistory`.
package struct AdminStats {
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
        json(Report(hub: hub, loops: loops))
    }

    /// One answer's content: the hub's and the loops' figures, as the JSON text says them.
    struct Report: Equatable {
        /// One loop's entry in `loops`.
        struct Loop: Equatable {
            var index: Int
            var connections: Int
            var eventsPerSecond: Double?
        }

        /// Redis as this instance sees it (`redis`, when configured).
        struct Redis: Equatable {
            var reachable: Bool
            /// Recent round trips' mean (the history's), else the lifetime mean; nil before any.
            var rttMillis: Double?
        }

        var instanceID: String
        var version: String
        /// `embedded` or `redis`.
        var mode: String
        var ioBackend: String
        var uptimeSeconds: Int
        var connections: Int
        var draining: Bool
        var devTokens: Bool
        var loops: [Loop]
        /// The busiest channels over all loops.
        var channels: [TopChannels.Entry]
        var historyIntervalSeconds: Int
        var samples: [ConsoleHistory.Sample]
        /// Nil when Redis is not configured (`reachable` and `rtt_ms` are null then).
        var redis: Redis?
        /// `off`, `files` or `redis-stream`.
        var forwardingMode: String
        var queueDepth: Int
        var oldestAgeSeconds: Int
        var deadLetters: Int
    }

    /// The JSON text of `r`: its fields in this order, numbers with two decimals (null when unknown).
    static func json(_ r: Report) -> String {
        String(
            decoding: JSONByteCursor.document { out in
                out.raw(#"{"instance_id":"#)
                out.string(r.instanceID)
                out.raw(#","version":"#)
                out.string(r.version)
                out.raw(#","mode":"#)
                out.string(r.mode)
                out.raw(#","io_backend":"#)
                out.string(r.ioBackend)
                out.raw(#","uptime_seconds":"#)
                out.integer(Int64(r.uptimeSeconds))
                out.raw(#","connections":"#)
                out.integer(Int64(r.connections))
                out.raw(#","draining":"#)
                out.bool(r.draining)
                out.raw(#","dev_tokens":"#)
                out.bool(r.devTokens)
                out.raw(#","loops":["#)
                for (i, l) in r.loops.enumerated() {
                    out.raw(i == 0 ? #"{"index":"# : #",{"index":"#)
                    out.integer(Int64(l.index))
                    out.raw(#","connections":"#)
                    out.integer(Int64(l.connections))
                    out.raw(#","events_per_second":"#)
                    hundredths(l.eventsPerSecond, &out)
                    out.raw("}")
                }
                out.raw(#"],"channels":["#)
                for (i, c) in r.channels.enumerated() {
                    out.raw(i == 0 ? #"{"channel":"# : #",{"channel":"#)
                    out.string(c.channel)
                    out.raw(#","members":"#)
                    out.integer(Int64(c.members))
                    out.raw("}")
                }
                out.raw(#"],"history":{"interval_seconds":"#)
                out.integer(Int64(r.historyIntervalSeconds))
                out.raw(#","samples":["#)
                for (i, sample) in r.samples.enumerated() {
                    out.raw(i == 0 ? #"{"time":"# : #",{"time":"#)
                    out.integer(sample.time)
                    out.raw(#","upgrades_per_second":"#)
                    hundredths(sample.upgradesPerSecond, &out)
                    out.raw(#","deliveries_per_second":"#)
                    hundredths(sample.deliveriesPerSecond, &out)
                    out.raw("}")
                }
                out.raw(#"]},"redis":{"configured":"#)
                out.bool(r.redis != nil)
                out.raw(#","reachable":"#)
                if let seen = r.redis { out.bool(seen.reachable) } else { out.raw("null") }
                out.raw(#","rtt_ms":"#)
                hundredths(r.redis?.rttMillis, &out)
                out.raw(#"},"forwarding":{"mode":"#)
                out.string(r.forwardingMode)
                out.raw(#","queue_depth":"#)
                out.integer(Int64(r.queueDepth))
                out.raw(#","oldest_age_seconds":"#)
                out.integer(Int64(r.oldestAgeSeconds))
                out.raw(#","dead_letters":"#)
                out.integer(Int64(r.deadLetters))
                out.raw("}}")
            }, as: UTF8.self)
    }

    /// `value` with two decimals (`12.35`, `-1.50`, `0.00`); `null` when absent or not finite;
    /// Swift's own form (`1e+20`) from 10^13 on, where hundredths are no longer exact.
    private static func hundredths(_ value: Double?, _ out: inout JSONByteCursor) {
        guard let value, value.isFinite else { return out.raw("null") }
        let hundredths = (value * 100).rounded()
        guard hundredths == hundredths.rounded(.towardZero) && abs(hundredths) < 1e15 else { return out.verbatim("\(value)") }
        let v = Int64(hundredths)
        if v < 0 { out.raw("-") }
        let cents = Int64(v.magnitude % 100)
        out.integer(Int64(v.magnitude / 100))
        out.raw(cents < 10 ? ".0" : ".")
        out.integer(cents)
    }
}

extension AdminStats.Report {
    /// What `hub` and the loops' figures say now.
    init(hub: RealtimeHub, loops: [AdminStats.LoopFigures]) {
        let console = hub.console
        var total = Metrics.LoopFigures()
        for l in loops { total.add(l.metrics) }
        instanceID = console.instanceID
        version = BuildInfo.version
        mode = hub.redis == nil ? "embedded" : "redis"
        ioBackend = loops.first?.backend.rawValue ?? "unknown"
        uptimeSeconds = Int((EventLoop.monotonicMillis() - console.startedMillis) / 1000)
        connections = hub.sessions.load(ordering: .relaxed)
        draining = hub.draining.load(ordering: .relaxed)
        devTokens = console.devTokens
        self.loops = loops.map {
            Loop(index: $0.index, connections: $0.connections, eventsPerSecond: console.history?.eventsPerSecond(loop: $0.index))
        }
        channels = TopChannels.merge(loops.map(\.channels), limit: AdminStats.topChannels)
        historyIntervalSeconds = Int(ConsoleHistory.intervalMillis / 1000)
        samples = console.history?.samples ?? []
        redis = hub.redis.map { runtime in
            let lifetime = total.redis.flatMap { $0.rttCount > 0 ? Double($0.rttSumMillis) / Double($0.rttCount) : nil }
            return Redis(reachable: runtime.isReady, rttMillis: console.history?.recentRTTMillis ?? lifetime)
        }
        forwardingMode = hub.forwarding?.modeName ?? "off"
        let forwarding = total.forwarding ?? ForwardingFigures()
        queueDepth = forwarding.queueDepth
        oldestAgeSeconds = Int(forwarding.oldestAgeMillis / 1000)
        deadLetters = forwarding.deadLetters
    }
}
