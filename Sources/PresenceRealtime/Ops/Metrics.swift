import PresenceLoop
import RedisShim

/// `GET /metrics`: Prometheus text exposition 0.0.4 (docs/operations.md, "Metrics"). Every family
/// has HELP and TYPE; labels come from fixed sets only (never a channel or user id). Traffic
/// counters are per loop (`LoopCounters`, plain memory of the loop's thread), read on each loop
/// through its mailbox and added up here.
enum Metrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// What one loop contributes (read on its thread), summed over the loops.
    struct LoopFigures {
        var traffic: LoopCountersSnapshot?
        var redis: RedisStats?
        var forwarding: ForwardingFigures?
        var access: AccessCountersSnapshot?
        var realtime: RealtimeCountersSnapshot?

        init() {}

        init(hub: RealtimeHub, loop: EventLoop) {
            traffic = loop.counters.snapshot(refusedPerIP: loop.refusedPerIP)
            redis = hub.redis?.stats(on: loop)
            access = hub.access.counters(on: loop)
            realtime = hub.application(on: loop)?.realtimeCounters.snapshot()
            forwarding = hub.forwarding?.figures(on: loop)
        }

        mutating func add(_ other: LoopFigures) {
            if let t = other.traffic {
                traffic =
                    traffic.map {
                        var sum = $0
                        sum.add(t)
                        return sum
                    } ?? t
            }
            if let r = other.redis {
                redis =
                    redis.map {
                        var sum = $0
                        sum.add(r)
                        return sum
                    } ?? r
            }
            if let a = other.access {
                access =
                    access.map {
                        var sum = $0
                        sum.add(a)
                        return sum
                    } ?? a
            }
            if let r = other.realtime {
                realtime =
                    realtime.map {
                        var sum = $0
                        sum.add(r)
                        return sum
                    } ?? r
            }
            if let f = other.forwarding {
                var sum = forwarding ?? ForwardingFigures()
                sum.add(f)
                forwarding = sum
            }
        }
    }

    static func render(
        hub: RealtimeHub?, loops: LoopFigures?, process: ProcessStats? = ProcessStats.read(),
        heap: HeapUsage? = HeapUsage.current()
    ) -> String {
        var out = PrometheusText()
        out.gauge(
            "presenced_build_info", "Always 1; the version label says which build runs.", 1,
            labels: [("version", BuildInfo.version)])
        if let hub {
            out.gauge("presenced_connections", "WebSocket sessions open.", hub.sessions.load(ordering: .relaxed))
            out.gauge("presenced_draining", "1 while draining after SIGTERM.", hub.draining.load(ordering: .relaxed) ? 1 : 0)
        }
        if let traffic = loops?.traffic ?? (hub != nil ? LoopCountersSnapshot.zero : nil) {
            renderTraffic(traffic, into: &out)
        }
        if let hub, let realtime = loops?.realtime {
            out.counter(
                "presenced_recoveries_total", "Joins with since by result (not_recovered: the client reloads from chat-service).",
                label: "result", RecoveryResult.self, realtime.recoveries)
            out.counter(
                "presenced_nonce_duplicates_total",
                "Messages whose (sender, nonce) was sent before: the original answered, nothing sent again.",
                realtime.nonceDuplicates)
            out.counter("presenced_publishes_total", "Messages published through POST /api/v1/publish.", realtime.publishes)
            out.counter(
                "presenced_offset_gaps_skipped_total",
                "Gaps in a channel's offsets that did not close within a second and were skipped (a message lost between instances).",
                realtime.orderGapsSkipped)
            if let history = (hub.history as? EmbeddedHistory) ?? (hub.history as? RedisHistory)?.fallback {
                out.gauge(
                    "presenced_history_channels",
                    hub.redis == nil
                        ? "Channels with a history in this process." : "Channels with a history in this process's outage fallback.",
                    history.channelCount)
            }
        }
        if let hub, hub.access.target != nil, let access = loops?.access {
            out.counter(
                "presenced_channel_auth_checks_total",
                "CHANNEL_AUTH_URL calls by result (unavailable: timeout, connection error, 5xx or an unusable answer).",
                label: "result", AccessCheckResult.self, access.checks)
            out.counter(
                "presenced_channel_auth_cache_hits_total", "Joins and presence reads answered from the channel access cache.",
                access.cacheHits)
            out.counter(
                "presenced_channel_auth_coalesced_total",
                "Joins and presence reads that waited for a call already made for the same user and channel.", access.coalesced)
            out.histogram(
                "presenced_channel_auth_duration_seconds", "CHANNEL_AUTH_URL call time.",
                bounds: access.latency.boundsNanos.map { Double($0) / 1e9 }, buckets: access.latency.buckets,
                sum: Double(access.latency.sumNanos) / 1e9, count: access.latency.count)
        }
        if let hub, let runtime = hub.redis {
            out.gauge("presenced_redis_up", "1 when Redis answers (command and subscription connections).", runtime.isReady ? 1 : 0)
        }
        if let redis = loops?.redis {
            out.counter("presenced_redis_commands_total", "Commands written to Redis.", redis.commandsSent)
            out.counter("presenced_redis_error_replies_total", "Error replies from Redis.", redis.errorReplies)
            out.counter(
                "presenced_redis_failed_commands_total",
                "Commands that failed without a reply (not connected, timeout, connection lost).",
                redis.rejected &+ redis.failedPending)
            out.counter("presenced_redis_timeouts_total", "Connections declared broken by a reply or handshake timeout.", redis.timeouts)
            out.counter("presenced_redis_disconnects_total", "Failed connection attempts and lost connections.", redis.disconnects)
            out.counter("presenced_redis_reconnects_total", "Connections that became ready again.", redis.reconnects)
            out.histogram(
                "presenced_redis_rtt_seconds", "Redis command round-trip time.",
                bounds: RedisStats.rttBucketBoundsMillis.map { Double($0) / 1000 },
                buckets: redis.rttBuckets, sum: Double(redis.rttSumMillis) / 1000, count: redis.rttCount)
        }
        if let forward = loops?.forwarding {
            out.gauge("presenced_forward_queue_depth", "Chat messages waiting for chat-service.", forward.queueDepth)
            out.gauge("presenced_forward_oldest_age_seconds", "Age of the oldest waiting chat message.", forward.oldestAgeMillis / 1000)
            out.gauge(
                "presenced_forward_dead_letters", "Chat messages chat-service refused for good (presenced dead-letters).",
                forward.deadLetters)
            out.counter("presenced_forward_delivered_total", "Forwards answered 2xx or 409.", forward.delivered)
            out.counter("presenced_forward_retries_total", "Forwards answered 408/429/5xx or failed, to be retried.", forward.retried)
            out.counter(
                "presenced_forward_dead_lettered_total",
                "Forwards moved to the dead letters (refused with another 4xx, or answered 5xx FORWARD_MAX_ATTEMPTS times).",
                forward.deadLettered)
            out.counter(
                "presenced_forward_poison_dead_lettered_total",
                "Forwards moved to the dead letters after FORWARD_MAX_ATTEMPTS 5xx answers (poison messages; part of dead_lettered).",
                forward.poisoned)
            out.counter(
                "presenced_forward_refused_total", "Chat messages refused with unavailable (queue full or unusable).", forward.refused)
            if let backlog = forward.localBacklog {
                out.gauge(
                    "presenced_forward_local_depth",
                    "Redis mode: chat messages in this instance's local queue, kept while Redis was unreachable and not yet moved to the stream.",
                    backlog)
                out.counter(
                    "presenced_forward_queued_locally_total",
                    "Redis mode: chat messages kept in the local queue because Redis could not take them.",
                    forward.queuedLocally)
                out.counter(
                    "presenced_forward_moved_to_stream_total",
                    "Redis mode: chat messages moved from the local queue to the shared stream.",
                    forward.movedToStream)
            }
        }
        if let process {
            out.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", process.startTimeSeconds)
            out.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", process.cpuSeconds)
            out.gauge("process_resident_memory_bytes", "Resident memory size, in bytes.", process.residentBytes)
            out.gauge("process_virtual_memory_bytes", "Virtual memory size, in bytes.", process.virtualBytes)
            out.gauge("process_open_fds", "Open file descriptors.", process.openFDs)
            out.gauge("process_max_fds", "Limit on open file descriptors (RLIMIT_NOFILE).", process.maxFDs)
        }
        if let heap {
            out.gauge("presenced_heap_in_use_bytes", "C heap bytes allocated (malloc), mmap'd blocks included.", heap.inUseBytes)
            out.gauge(
                "presenced_heap_free_bytes", "C heap bytes the allocator holds free (free pages go back to the kernel every 10 s).",
                heap.freeBytes)
        }
        return out.text
    }

    private static func renderTraffic(_ t: LoopCountersSnapshot, into out: inout PrometheusText) {
        out.counter(
            "presenced_upgrades_total", "WebSocket upgrade requests on /ws by result (ok = 101).",
            label: "result", UpgradeResult.self, t.upgrades)
        out.counter(
            "presenced_frames_in_total",
            "WebSocket frames received by opcode (a fragmented message counts once, when complete).",
            label: "opcode", FrameOpcode.self, t.framesIn)
        out.counter(
            "presenced_frames_out_total", "WebSocket frames queued for sending by opcode.",
            label: "opcode", FrameOpcode.self, t.framesOut)
        out.counter(
            "presenced_messages_in_total",
            "Client messages by JSON type (other = bad JSON, unknown type, binary).",
            label: "type", InboundMessageType.self, t.messagesIn)
        out.counter(
            "presenced_messages_out_total", "Server messages queued by JSON type (fan-out and direct replies).",
            label: "type", OutboundMessageType.self, t.messagesOut)
        out.counter("presenced_rate_limited_total", "Client messages refused by MESSAGE_RATE.", t.rateLimited)
        out.counter(
            "presenced_fanout_deliveries_total",
            "Frames queued on channel members by fan-out (message, presence, typing), all sources.", t.fanOutDeliveries)
        out.counter(
            "presenced_dropped_frames_total",
            "Frames not queued because the recipient's backlog was over its limit (typing under backpressure, or the frame that closed a slow consumer).",
            t.droppedFrames)
        out.counter("presenced_slow_consumer_closes_total", "Connections closed with 4008 (slow consumer).", t.slowConsumerCloses)
        out.counter(
            "presenced_connections_refused_per_ip_total",
            "Connections closed at accept because their address already held MAX_CONNECTIONS_PER_IP.", t.refusedPerIP)
        let latency = t.fanOutLatency
        out.histogram(
            "presenced_fanout_latency_seconds",
            "Chat message fan-out on the receiving loop: from the start of the loop turn that read the message to the end of the turn that queued it on its last local member and handed the sends to the kernel (other loops and instances not included).",
            bounds: latency.boundsNanos.map { Double($0) / 1e9 }, buckets: latency.buckets,
            sum: Double(latency.sumNanos) / 1e9, count: latency.count)
        out.counter(
            "presenced_token_rejections_total", "Tokens refused on /ws and /api/v1/presence by reason.",
            label: "reason", TokenRejection.self, t.tokenRejections)
        out.counter(
            "presenced_tokens_checked_in_process_only_total",
            "Tokens accepted on /ws while Redis was unreachable: their single use was checked in this process only, so each could be used once more on another instance.",
            t.tokensCheckedInProcessOnly)
        out.counter(
            "presenced_ws_token_requests_total", "POST /api/v1/ws-token requests by result.",
            label: "result", WSTokenResult.self, t.wsTokenRequests)
    }
}

/// A Prometheus text-format (0.0.4) writer: HELP, TYPE and samples.
struct PrometheusText {
    private(set) var text = ""

    mutating func gauge<N: BinaryInteger>(_ name: String, _ help: String, _ value: N, labels: [(String, String)] = []) {
        header(name, help, "gauge")
        text += "\(name)\(PrometheusText.labelSet(labels)) \(value)\n"
    }

    mutating func gauge(_ name: String, _ help: String, _ value: Double) {
        header(name, help, "gauge")
        text += "\(name) \(PrometheusText.number(value))\n"
    }

    mutating func counter<N: BinaryInteger>(_ name: String, _ help: String, _ value: N) {
        header(name, help, "counter")
        text += "\(name) \(value)\n"
    }

    mutating func counter(_ name: String, _ help: String, _ value: Double) {
        header(name, help, "counter")
        text += "\(name) \(PrometheusText.number(value))\n"
    }

    /// One counter per value of a fixed label set, every value written (zeros too).
    mutating func counter<L: CounterLabel>(_ name: String, _ help: String, label: String, _ kind: L.Type, _ values: [UInt64]) {
        header(name, help, "counter")
        for (i, value) in L.labels.enumerated() {
            text += "\(name){\(label)=\"\(value)\"} \(i < values.count ? values[i] : 0)\n"
        }
    }

    /// `buckets` are per bucket (not cumulative), one more than `bounds` (the +Inf one).
    mutating func histogram(_ name: String, _ help: String, bounds: [Double], buckets: [UInt64], sum: Double, count: UInt64) {
        header(name, help, "histogram")
        var cumulative: UInt64 = 0
        for (i, bound) in bounds.enumerated() {
            cumulative &+= i < buckets.count ? buckets[i] : 0
            text += "\(name)_bucket{le=\"\(PrometheusText.number(bound))\"} \(cumulative)\n"
        }
        text += "\(name)_bucket{le=\"+Inf\"} \(count)\n"
        text += "\(name)_sum \(PrometheusText.number(sum))\n"
        text += "\(name)_count \(count)\n"
    }

    /// A float as the format wants it (`+Inf`, `-Inf`, `NaN` spelled out).
    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        return "\(v)"
    }

    /// `{a="x",b="y"}` with values escaped (backslash, quote, newline); empty for no labels.
    static func labelSet(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.0)=\"\(escape($0.1, quote: true))\"" }.joined(separator: ",") + "}"
    }

    static func escape(_ s: String, quote: Bool) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"" where quote: out += "\\\""
            default: out.append(c)
            }
        }
        return out
    }

    private mutating func header(_ name: String, _ help: String, _ type: String) {
        text += "# HELP \(name) \(PrometheusText.escape(help, quote: false))\n# TYPE \(name) \(type)\n"
    }
}
