import RedisShim

/// `GET /metrics`: Prometheus text exposition 0.0.4. For now the process's WebSocket sessions
/// and, in Redis mode, Redis' health, errors and round-trip times (summed over every loop's
/// connections).
enum Metrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// What one loop contributes (read on its thread), summed over the loops.
    struct LoopFigures {
        var redis: RedisStats?
        var forward: ForwardCounters?
        var queueDepth = 0
        var deadLetters = 0
        var oldestAgeMillis: Int64 = 0

        init() {}

        init(hub: RealtimeHub, loop: EventLoop) {
            redis = hub.redis?.stats(on: loop)
            if let forwarder = hub.forwarding?.forwarder(on: loop) {
                forward = forwarder.counters
                if let stats = forwarder.queueStats {
                    queueDepth = stats.depth
                    deadLetters = stats.deadLetters
                    oldestAgeMillis = stats.oldestAgeMillis(nowMillis: ForwardTime.nowMillis())
                }
            }
        }

        mutating func add(_ other: LoopFigures) {
            if let r = other.redis { redis = redis.map { var sum = $0; sum.add(r); return sum } ?? r }
            if let f = other.forward {
                var sum = forward ?? ForwardCounters()
                sum.delivered &+= f.delivered
                sum.retried &+= f.retried
                sum.deadLettered &+= f.deadLettered
                sum.refused &+= f.refused
                forward = sum
            }
            queueDepth += other.queueDepth
            deadLetters += other.deadLetters
            oldestAgeMillis = max(oldestAgeMillis, other.oldestAgeMillis)
        }
    }

    static func render(hub: RealtimeHub?, loops: LoopFigures?) -> String {
        var out = PrometheusText()
        if let hub {
            out.gauge("presenced_connections", "WebSocket sessions open.", hub.sessions.load(ordering: .relaxed))
            out.gauge("presenced_draining", "1 while draining after SIGTERM.", hub.draining.load(ordering: .relaxed) ? 1 : 0)
        }
        if let hub, let runtime = hub.redis {
            out.gauge("presenced_redis_up", "1 when Redis answers (command and subscription connections).", runtime.isReady ? 1 : 0)
        }
        if let redis = loops?.redis {
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
        if let loops, let forward = loops.forward {
            out.gauge("presenced_forward_queue_depth", "Chat messages waiting for chat-service.", loops.queueDepth)
            out.gauge("presenced_forward_oldest_age_seconds", "Age of the oldest waiting chat message.", loops.oldestAgeMillis / 1000)
            out.gauge("presenced_forward_dead_letters", "Chat messages chat-service refused for good (presenced dead-letters).", loops.deadLetters)
            out.counter("presenced_forward_delivered_total", "Forwards answered 2xx or 409.", forward.delivered)
            out.counter("presenced_forward_retries_total", "Forwards answered 408/429/5xx or failed, to be retried.", forward.retried)
            out.counter("presenced_forward_dead_lettered_total", "Forwards refused for good (other 4xx).", forward.deadLettered)
            out.counter("presenced_forward_refused_total", "Chat messages refused with unavailable (queue full or unusable).", forward.refused)
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
