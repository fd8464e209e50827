import Glibc

/// `fanout`: N connections over C channels (connection j joins channel j % C), P publishers
/// (connections 0..<P, so publisher p publishes to channel p % C). Closed loop (each publisher keeps
/// W of its own messages in flight; one is done when it comes back to its sender) or fixed rate.
/// Content is `p<publisher> s<seq> t<CLOCK_MONOTONIC ns>`; every receiver records receive − send.
/// A message belongs to the measured period when its send time does; expected deliveries are its
/// channel's member count, received ones are counted until everything arrived or --drain ran out.
final class FanoutWorker: LoopWorker {
    private let control: Control
    private let window: Int
    /// Nanoseconds between two messages of one publisher (fixed rate); 0 = closed loop.
    private let interval: Int64
    private let warmup: Int64
    private let duration: Int64
    private let members: [Int]
    private let padding: Int
    private let publisherCount: Int
    private let channelCount: Int

    /// This thread's publishers: slot, global number, in flight, sequence, next send (fixed rate).
    private var pubSlot: [Int] = []
    private var pubID: [Int] = []
    private var inflight: [Int] = []
    private var seq: [Int64] = []
    private var nextSend: [Int64] = []
    /// Global publisher number → index in the arrays above (-1: another thread's).
    private var localIndex: [Int]

    private var started = false
    private(set) var measureStart: Int64 = .max
    private(set) var measureEnd: Int64 = .max

    var histogram = Histogram()
    var expected = 0
    var received = 0
    var warmupReceived = 0
    var lateReceived = 0
    var unparsable = 0
    var sentInWindow = 0
    var sentTotal = 0
    /// Fixed rate: largest delay of a send behind its schedule.
    var maxSendLag: Int64 = 0

    init(options: Options, control: Control) {
        self.control = control
        window = options.window
        interval = options.rate > 0 ? Int64(1e9 / options.rate) : 0
        warmup = options.warmup
        duration = options.duration
        padding = options.contentBytes
        publisherCount = options.publishers
        channelCount = options.channels
        members = (0..<options.channels).map { c in
            options.connections / options.channels + (c < options.connections % options.channels ? 1 : 0)
        }
        localIndex = [Int](repeating: -1, count: options.publishers)
    }

    /// Registers a publishing connection of this thread.
    func addPublisher(slot: Int, id: Int) {
        localIndex[id] = pubSlot.count
        pubSlot.append(slot)
        pubID.append(id)
        inflight.append(0)
        seq.append(0)
        nextSend.append(0)
    }

    func joined(_ loop: ClientLoop<FanoutWorker>, slot: Int, initial: Bool, latency: Int64, now: Int64) {}

    func lost(_ loop: ClientLoop<FanoutWorker>, slot: Int) {}

    func tick(_ loop: ClientLoop<FanoutWorker>, now: Int64) -> Int64 {
        if !started {
            let start = control.startAt.load(ordering: .relaxed)
            if start == 0 { return .max }
            if now < start { return start }
            started = true
            measureStart = start + warmup
            measureEnd = measureStart + duration
            if interval == 0 {
                for k in pubSlot.indices {
                    for _ in 0..<window { send(loop, k) }
                }
            } else {
                // Spread the publishers' phases evenly over one interval.
                for k in pubSlot.indices {
                    nextSend[k] = start + interval * Int64(pubID[k]) / Int64(max(1, publisherCount))
                }
            }
        }
        guard interval > 0 else { return .max }
        var next = Int64.max
        for k in pubSlot.indices {
            var burst = 0
            while nextSend[k] <= now && nextSend[k] < measureEnd && burst < 10_000 {
                let lag = now - nextSend[k]
                if lag > maxSendLag { maxSendLag = lag }
                send(loop, k)
                nextSend[k] += interval
                burst += 1
            }
            if nextSend[k] < measureEnd { next = min(next, nextSend[k]) }
        }
        return next
    }

    /// One message from local publisher `k`, stamped now.
    @inline(__always)
    private func send(_ loop: ClientLoop<FanoutWorker>, _ k: Int) {
        let slot = pubSlot[k]
        guard loop.conns[slot].state == .open else { return }
        seq[k] += 1
        let s = seq[k], id = Int64(pubID[k]), pad = padding
        let channel = Int(loop.conns[slot].channel)
        let t = Clock.now()
        loop.sendMessage(slot, channel: channel) { out in
            let contentStart = out.count
            out.byte(UInt8(ascii: "p"))
            out.decimal(id)
            out.raw(" s")
            out.decimal(s)
            out.raw(" t")
            out.decimal(t)
            // Pad the content (not the envelope) up to --content-bytes.
            let written = out.count - contentStart
            if pad > written + 1 {
                out.byte(UInt8(ascii: " "))
                for _ in 0..<(pad - written - 1) { out.byte(UInt8(ascii: "x")) }
            }
        }
        sentTotal += 1
        if t >= measureStart && t < measureEnd {
            expected += members[channel]
            sentInWindow += 1
        }
        inflight[k] += 1
    }

    func message(_ loop: ClientLoop<FanoutWorker>, slot: Int, content: UnsafeRawBufferPointer, now: Int64) {
        // p<id> s<seq> t<ns>[ padding]
        var i = 0
        func number() -> Int64? {
            var v: Int64 = 0, any = false
            while i < content.count {
                let d = content[i] &- UInt8(ascii: "0")
                if d >= 10 { break }
                v = v &* 10 &+ Int64(d)
                any = true
                i += 1
            }
            return any ? v : nil
        }
        guard content.count > 6, content[0] == UInt8(ascii: "p") else {
            unparsable += 1
            return
        }
        i = 1
        guard let id = number(), i + 2 < content.count, content[i + 1] == UInt8(ascii: "s") else {
            unparsable += 1
            return
        }
        i += 2
        guard number() != nil, i + 2 < content.count, content[i + 1] == UInt8(ascii: "t") else {
            unparsable += 1
            return
        }
        i += 2
        guard let t = number() else {
            unparsable += 1
            return
        }
        if t >= measureStart && t < measureEnd {
            received += 1
            histogram.record(now - t)
        } else if t < measureStart {
            warmupReceived += 1
        } else {
            lateReceived += 1
        }
        // Closed loop: the sender receives its own message, which frees a window slot.
        if interval == 0, id < Int64(publisherCount), loop.conns[slot].tag == Int32(id) {
            let k = localIndex[Int(id)]
            guard k >= 0 else { return }
            inflight[k] -= 1
            if now < measureEnd { send(loop, k) }
        }
    }

    func publish(_ status: LoopStatus) {
        status.a.store(expected, ordering: .relaxed)
        status.b.store(received, ordering: .relaxed)
    }
}

enum Fanout {
    static func run(_ options: Options, target: Target) throws -> Int32 {
        var workers: [FanoutWorker] = []
        let run = try BenchRun<FanoutWorker>(
            options: options, target: target,
            assign: { j in (j % options.channels, j < options.publishers ? Int32(j) : -1) },
            makeWorker: { _, loop in
                let w = FanoutWorker(options: options, control: loop.control)
                workers.append(w)
                return w
            })
        for loop in run.loops {
            for slot in loop.conns.indices where loop.conns[slot].tag >= 0 {
                loop.worker.addPublisher(slot: slot, id: Int(loop.conns[slot].tag))
            }
        }
        let mode =
            options.rate > 0
            ? "fixed rate \(Fmt.fixed(options.rate, options.rate < 10 ? 2 : 0)) msg/s per publisher"
            : "closed loop, window \(options.window)"
        run.progress(
            "fanout: \(options.connections) connections, \(options.channels) channels, \(options.publishers) publishers, \(mode), \(options.threads) thread(s)"
        )
        try run.start()
        let (_, failed) = run.waitForSetup()
        if failed > 0 {
            run.stopAndJoin()
            throw BenchError(
                "presence-bench: set-up failed for \(failed) of \(options.connections) connections: \(Fmt.counts(run.failures))")
        }
        let pid = options.pid
        let startAt = Clock.now() + 20_000_000
        let measureStart = startAt + options.warmup
        let measureEnd = measureStart + options.duration
        run.control.startAt.store(startAt, ordering: .relaxed)
        run.progress(
            "load running: \(Fmt.fixed(Double(options.warmup) / 1e9, 1)) s warm-up, then \(Fmt.fixed(Double(options.duration) / 1e9, 1)) s measured"
        )

        Clock.sleep(until: measureStart)
        run.beginCPUWindow()
        let serverCPU0 = pid.flatMap { ProcStats.cpuSeconds(pid: $0) }
        let selfCPU0 = ProcStats.selfCPUSeconds()
        let rss0 = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        Clock.sleep(until: measureEnd)
        let serverCPU1 = pid.flatMap { ProcStats.cpuSeconds(pid: $0) }
        let selfCPU1 = ProcStats.selfCPUSeconds()
        let rss1 = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        run.endCPUWindow()

        // Drain: until every expected delivery arrived (seen twice, 20 ms apart) or --drain ran out.
        let drainDeadline = measureEnd + options.drain
        Clock.sleep(nanoseconds: 20_000_000)
        var settled = 0
        while Clock.now() < drainDeadline {
            let expected = run.sum(.a), received = run.sum(.b)
            settled = received >= expected ? settled + 1 : 0
            if settled >= 2 { break }
            Clock.sleep(nanoseconds: 20_000_000)
        }
        let drainSeconds = Double(Clock.now() - measureEnd) / 1e9
        run.stopAndJoin()

        // Merge.
        var histogram = Histogram()
        var expected = 0, received = 0, sent = 0, sentTotal = 0, warmupReceived = 0, late = 0, unparsable = 0
        var maxLag: Int64 = 0
        for w in workers {
            histogram.merge(w.histogram)
            expected += w.expected
            received += w.received
            sent += w.sentInWindow
            sentTotal += w.sentTotal
            warmupReceived += w.warmupReceived
            late += w.lateReceived
            unparsable += w.unparsable
            maxLag = max(maxLag, w.maxSendLag)
        }
        let seconds = Double(options.duration) / 1e9
        let loss = expected - received
        let deliveriesPerSecond = Double(received) / seconds
        let serverCPU = (serverCPU0 != nil && serverCPU1 != nil) ? serverCPU1! - serverCPU0! : nil
        let generatorCPU = selfCPU1 - selfCPU0
        let perServerCPU = serverCPU.flatMap { $0 > 0 ? Double(received) / $0 : nil }

        if options.json {
            var o = run.commonJSON()
            o["publishers"] = .int(options.publishers)
            o["mode"] = .string(options.rate > 0 ? "rate" : "window")
            o["window"] = options.rate > 0 ? .null : .int(options.window)
            o["rate_per_publisher"] = options.rate > 0 ? .double(options.rate) : .null
            o["content_bytes"] = .int(options.contentBytes)
            o["warmup_s"] = .double(Double(options.warmup) / 1e9)
            o["duration_s"] = .double(seconds)
            o["setup_s"] = .double(run.setupSeconds)
            o["messages_sent"] = .int(sent)
            o["messages_per_s"] = .double(Double(sent) / seconds)
            o["deliveries_expected"] = .int(expected)
            o["deliveries_received"] = .int(received)
            o["loss"] = .int(loss)
            o["deliveries_per_s"] = .double(deliveriesPerSecond)
            o["latency"] = latencyJSON(histogram)
            o["server_cpu_s"] = .optional(serverCPU)
            o["server_cpu_pct"] = .optional(serverCPU.map { $0 / seconds * 100 })
            o["deliveries_per_server_cpu_s"] = .optional(perServerCPU)
            o["server_rss_kib"] = .optional(rss1)
            o["server_rss_start_kib"] = .optional(rss0)
            o["generator_cpu_s"] = .double(generatorCPU)
            o["generator_us_per_delivery"] = .double(received > 0 ? generatorCPU * 1e6 / Double(received) : 0)
            o["max_send_lag_us"] = options.rate > 0 ? .double(Double(maxLag) / 1000) : .null
            o["drain_s"] = .double(drainSeconds)
            o["warmup_deliveries"] = .int(warmupReceived)
            o["unparsable_messages"] = .int(unparsable)
            run.problemsJSON(into: &o)
            print(o.text)
        } else {
            print(
                "presence-bench fanout → \(target.display) (\(options.connections) connections, \(options.channels) channels, "
                    + "\(options.publishers) publishers, \(mode), \(options.threads) generator thread(s))")
            print("  set-up             \(options.connections) joined in \(Fmt.fixed(run.setupSeconds, 2)) s")
            print("  measured           \(Fmt.fixed(seconds, 1)) s after \(Fmt.fixed(Double(options.warmup) / 1e9, 1)) s warm-up")
            print("  messages sent      \(Fmt.count(sent)) (\(Fmt.count(Int(Double(sent) / seconds)))/s)")
            let lossPct = expected > 0 ? Double(loss) * 100 / Double(expected) : 0
            print(
                "  deliveries         \(Fmt.count(expected)) expected, \(Fmt.count(received)) received, loss \(Fmt.count(loss)) "
                    + "(\(Fmt.fixed(lossPct, 3)) %), drained in \(Fmt.fixed(drainSeconds, 2)) s")
            print("  deliveries/s       \(Fmt.count(Int(deliveriesPerSecond)))")
            print("  fan-out latency    \(Fmt.latencyLine(histogram))")
            if let serverCPU {
                print(
                    "  server CPU         \(Fmt.fixed(serverCPU, 2)) s (\(Fmt.fixed(serverCPU / seconds * 100, 1)) % of one core)"
                        + (perServerCPU.map { " → \(Fmt.count(Int($0))) deliveries per server CPU-second" } ?? ""))
                if let rss1 { print("  server RSS         \(Fmt.count(rss1)) KiB") }
            } else {
                print("  server CPU         not measured (no --pid, or the server exited)")
            }
            print(
                "  generator CPU      \(Fmt.fixed(generatorCPU, 2)) s"
                    + (received > 0 ? " (\(Fmt.fixed(generatorCPU * 1e6 / Double(received), 2)) µs per delivery)" : ""))
            if options.rate > 0 { print("  max send lag       \(Fmt.latency(Double(maxLag)))") }
            if unparsable > 0 { print("  unparsable         \(unparsable) messages") }
            for line in run.problemsText() { print(line) }
        }
        return (loss != 0 || run.hadProblems || unparsable > 0) ? 3 : 0
    }
}
