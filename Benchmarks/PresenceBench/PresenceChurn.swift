/// `presence`: churn of joins and leaves. Each connection (after its first join of channel j % C)
/// repeatedly sends `leave` of its channel and `join` of the next one ((c + 1) % C) and waits for
/// its own presence event on the new channel: two operations per cycle, one cycle in flight per
/// connection (closed loop). With --redis-cli-port, Redis commands per operation from
/// `info commandstats` read at the start and end of the measured period.
final class ChurnWorker: LoopWorker {
    private let control: Control
    private let warmup: Int64
    private let duration: Int64
    private let channelCount: Int
    private var started = false
    private var measureStart: Int64 = .max
    private var measureEnd: Int64 = .max
    private var presenceAtStart = -1
    var presenceInWindow = -1
    var histogram = Histogram()
    var operations = 0
    var cycles = 0

    init(options: Options, control: Control) {
        self.control = control
        warmup = options.warmup
        duration = options.duration
        channelCount = options.channels
    }

    private func cycle(_ loop: ClientLoop<ChurnWorker>, _ slot: Int, now: Int64) {
        guard loop.conns[slot].state == .open else { return }
        let current = Int(loop.conns[slot].channel)
        loop.sendLeave(slot, channel: current)
        loop.sendJoin(slot, channel: (current + 1) % channelCount, now: now)
    }

    func joined(_ loop: ClientLoop<ChurnWorker>, slot: Int, initial: Bool, latency: Int64, now: Int64) {
        guard !initial else { return }
        if now >= measureStart && now < measureEnd {
            operations += 2
            cycles += 1
            histogram.record(latency)
        }
        if now < measureEnd { cycle(loop, slot, now: Clock.now()) }
    }

    func message(_ loop: ClientLoop<ChurnWorker>, slot: Int, content: UnsafeRawBufferPointer, now: Int64) {}
    func lost(_ loop: ClientLoop<ChurnWorker>, slot: Int) {}

    func tick(_ loop: ClientLoop<ChurnWorker>, now: Int64) -> Int64 {
        if !started {
            let start = control.startAt.load(ordering: .relaxed)
            if start == 0 { return .max }
            if now < start { return start }
            started = true
            measureStart = start + warmup
            measureEnd = measureStart + duration
            for slot in loop.conns.indices { cycle(loop, slot, now: now) }
        }
        if presenceAtStart < 0 && now >= measureStart { presenceAtStart = loop.presenceIn }
        if presenceInWindow < 0 && now >= measureEnd && presenceAtStart >= 0 { presenceInWindow = loop.presenceIn - presenceAtStart }
        if presenceAtStart < 0 { return measureStart }
        if presenceInWindow < 0 { return measureEnd }
        return .max
    }

    func publish(_ status: LoopStatus) {
        status.a.store(operations, ordering: .relaxed)
    }
}

enum PresenceChurn {
    static func run(_ options: Options, target: Target) throws -> Int32 {
        var workers: [ChurnWorker] = []
        let run = try BenchRun<ChurnWorker>(
            options: options, target: target,
            assign: { j in (j % options.channels, -1) },
            makeWorker: { _, loop in
                let w = ChurnWorker(options: options, control: loop.control)
                workers.append(w)
                return w
            })
        let pid = options.pid
        let redisPort = options.redisCLIPort
        var redisProblem: String?
        if let redisPort, case .failure(let e) = RedisStats.totalCalls(cli: options.redisCLI, port: redisPort) {
            throw BenchError("presence-bench: \(e.message)")
        }
        run.progress(
            "presence churn: \(options.connections) connections over \(options.channels) channels, \(options.threads) thread(s)"
                + (redisPort == nil ? "; Redis not measured (no --redis-cli-port)" : ""))
        try run.start()
        let (_, failed) = run.waitForSetup()
        if failed > 0 {
            run.stopAndJoin()
            throw BenchError(
                "presence-bench: set-up failed for \(failed) of \(options.connections) connections: \(Fmt.counts(run.failures))")
        }
        let startAt = Clock.now() + 20_000_000
        let measureStart = startAt + options.warmup
        let measureEnd = measureStart + options.duration
        run.control.startAt.store(startAt, ordering: .relaxed)
        Clock.sleep(until: measureStart)
        run.beginCPUWindow()
        let cpu0 = pid.flatMap { ProcStats.cpuSeconds(pid: $0) }
        let selfCPU0 = ProcStats.selfCPUSeconds()
        var redis0: Int?
        if let redisPort {
            switch RedisStats.totalCalls(cli: options.redisCLI, port: redisPort) {
            case .success(let n): redis0 = n
            case .failure(let e): redisProblem = e.message
            }
        }
        Clock.sleep(until: measureEnd)
        let cpu1 = pid.flatMap { ProcStats.cpuSeconds(pid: $0) }
        let generatorCPU = ProcStats.selfCPUSeconds() - selfCPU0
        run.endCPUWindow()
        var redis1: Int?
        if let redisPort, redisProblem == nil {
            switch RedisStats.totalCalls(cli: options.redisCLI, port: redisPort) {
            case .success(let n): redis1 = n
            case .failure(let e): redisProblem = e.message
            }
        }
        // Let the last cycles finish before closing.
        Clock.sleep(nanoseconds: 200_000_000)
        run.stopAndJoin()

        var histogram = Histogram()
        var operations = 0, presence = 0
        for w in workers {
            histogram.merge(w.histogram)
            operations += w.operations
            presence += max(0, w.presenceInWindow)
        }
        let seconds = Double(options.duration) / 1e9
        let cpu = (cpu0 != nil && cpu1 != nil) ? cpu1! - cpu0! : nil
        // `info` itself is left out by name, so the difference is the server's commands (and any other client's).
        let redisCommands = (redis0 != nil && redis1 != nil) ? redis1! - redis0! : nil
        let perOp = redisCommands.flatMap { operations > 0 ? Double($0) / Double(operations) : nil }
        if options.json {
            var o = run.commonJSON()
            o["warmup_s"] = .double(Double(options.warmup) / 1e9)
            o["duration_s"] = .double(seconds)
            o["operations"] = .int(operations)
            o["operations_per_s"] = .double(Double(operations) / seconds)
            o["join_latency"] = latencyJSON(histogram)
            o["presence_events_received"] = .int(presence)
            o["presence_events_per_s"] = .double(Double(presence) / seconds)
            o["server_cpu_s"] = .optional(cpu)
            o["server_cpu_us_per_operation"] = .optional(cpu.flatMap { operations > 0 ? $0 * 1e6 / Double(operations) : nil })
            o["generator_cpu_s"] = .double(generatorCPU)
            o["redis"] =
                redisPort == nil
                ? .string("not measured (no --redis-cli-port)") : (redisProblem.map { .string("error: \($0)") } ?? .string("measured"))
            o["redis_commands"] = .optional(redisCommands)
            o["redis_commands_per_operation"] = .optional(perOp)
            run.problemsJSON(into: &o)
            print(o.text)
        } else {
            print(
                "presence-bench presence → \(target.display) (\(options.connections) connections, \(options.channels) channels, "
                    + "\(options.threads) generator thread(s))")
            print("  measured           \(Fmt.fixed(seconds, 1)) s after \(Fmt.fixed(Double(options.warmup) / 1e9, 1)) s warm-up")
            print("  operations         \(Fmt.count(operations)) joins+leaves = \(Fmt.count(Int(Double(operations) / seconds)))/s")
            print("  join latency       \(Fmt.latencyLine(histogram))   (leave+join sent → own presence)")
            print("  presence events    \(Fmt.count(presence)) received (\(Fmt.count(Int(Double(presence) / seconds)))/s)")
            if let cpu {
                print(
                    "  server CPU         \(Fmt.fixed(cpu, 2)) s (\(Fmt.fixed(cpu / seconds * 100, 1)) % of one core, "
                        + "\(Fmt.fixed(operations > 0 ? cpu * 1e6 / Double(operations) : 0, 2)) µs per operation)")
            }
            print("  generator CPU      \(Fmt.fixed(generatorCPU, 2)) s")
            if redisPort == nil {
                print("  Redis              not measured (no --redis-cli-port; presenced in embedded mode keeps presence in process)")
            } else if let redisProblem {
                print("  Redis              error: \(redisProblem)")
            } else if let perOp {
                print("  Redis              \(Fmt.count(redisCommands!)) commands = \(Fmt.fixed(perOp, 3)) per operation")
            }
            for line in run.problemsText() { print(line) }
        }
        return (run.hadProblems || redisProblem != nil) ? 3 : 0
    }
}
