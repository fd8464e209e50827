import RedisShim

/// `GET /metrics`: Prometheus text exposition 0.0.4. For now the process's WebSocket sessions
/// and, in Redis mode, Redis' health, errors and round-trip times (summed over every loop's
/// connections).
enum Metrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(hub: RealtimeHub?, redis: RedisStats?) -> String {
        var out = PrometheusText()
        if let hub {
            out.gauge("presenced_connections", "WebSocket sessions open.", hub.sessions.load(ordering: .relaxed))
            out.gauge("presenced_draining", "1 while draining after SIGTERM.", hub.draining.load(ordering: .relaxed) ? 1 : 0)
        }
        if let hub, let runtime = hub.redis {
            out.gauge("presenced_redis_up", "1 when Redis answers (command and subscription connections).", runtime.isReady ? 1 : 0)
        }
        if let redis {
            out.counter("presenced_redis_commands_total", "Commands written to Redis.", redis.commandsSent)
            out.counter("presenced_redis_error_replies_total", "Error replies from Redis.", redis.errorReplies)
            out.counter("presenced_redis_failed_commands_total",
                        "Commands that failed without a reply (not connected, timeout, connection lost).",
                        redis.rejected &+ redis.failedPending)
            out.counter("presenced_redis_timeouts_total", "Connections declared broken by a reply or handshake timeout.", redis.timeouts)
            out.counter("presenced_redis_disconnects_total", "Failed connection attempts and lost connections.", redis.disconnects)
            out.counter("presenced_redis_reconnects_total", "Connections that became ready again.", redis.reconnects)
            out.histogram("presenced_redis_rtt_seconds", "Redis command round-trip time.",
                          bounds: RedisStats.rttBucketBoundsMillis.map { Double($0) / 1000 },
                          buckets: redis.rttBuckets, sum: Double(redis.rttSumMillis) / 1000, count: redis.rttCount)
        }
        return out.text
    }
}

/// A Prometheus text-format writer (HELP, TYPE, samples).
struct PrometheusText {
    private(set) var text = ""

    mutating func gauge<N: BinaryInteger>(_ name: String, _ help: String, _ value: N) {
        header(name, help, "gauge")
        text += "\(name) \(value)\n"
    }

    mutating func counter<N: BinaryInteger>(_ name: String, _ help: String, _ value: N) {
        header(name, help, "counter")
        text += "\(name) \(value)\n"
    }

    /// `buckets` are per bucket (not cumulative), one more than `bounds` (the +Inf one).
    mutating func histogram(_ name: String, _ help: String, bounds: [Double], buckets: [UInt64], sum: Double, count: UInt64) {
        header(name, help, "histogram")
        var cumulative: UInt64 = 0
        for (i, bound) in bounds.enumerated() {
            cumulative &+= i < buckets.count ? buckets[i] : 0
            text += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        text += "\(name)_bucket{le=\"+Inf\"} \(count)\n"
        text += "\(name)_sum \(sum)\n"
        text += "\(name)_count \(count)\n"
    }

    private mutating func header(_ name: String, _ help: String, _ type: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }
}
