/// `connect`: N connections set up as fast as --concurrency allows: TCP connect, upgrade with a
/// fresh token, join, and the connection's own presence event. Reports set-ups per second and the
/// latency of each (connect start → own presence), then closes them all.
final class ConnectWorker: LoopWorker {
    var histogram = Histogram()
    func joined(_ loop: ClientLoop<ConnectWorker>, slot: Int, initial: Bool, latency: Int64, now: Int64) {
        if initial { histogram.record(latency) }
    }
    func message(_ loop: ClientLoop<ConnectWorker>, slot: Int, content: UnsafeRawBufferPointer, now: Int64) {}
    func lost(_ loop: ClientLoop<ConnectWorker>, slot: Int) {}
    func tick(_ loop: ClientLoop<ConnectWorker>, now: Int64) -> Int64 { .max }
    func publish(_ status: LoopStatus) {}
}

enum Connect {
    static func run(_ options: Options, target: Target) throws -> Int32 {
        var workers: [ConnectWorker] = []
        let run = try BenchRun<ConnectWorker>(
            options: options, target: target,
            assign: { j in (j % options.channels, -1) },
            makeWorker: { _, _ in
                let w = ConnectWorker()
                workers.append(w)
                return w
            })
        let pid = options.pid
        run.progress(
            "connect: \(options.connections) connections, \(options.concurrency) in flight, \(options.channels) channels, \(options.threads) thread(s)"
        )
        let cpu0 = pid.flatMap { ProcStats.cpuTimes(pid: $0) }
        let rss0 = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        let selfCPU0 = ProcStats.selfCPUSeconds()
        run.beginCPUWindow()
        try run.start()
        let (ready, failed) = run.waitForSetup()
        run.endCPUWindow()
        let cpu1 = pid.flatMap { ProcStats.cpuTimes(pid: $0) }
        let rss1 = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        let generatorCPU = ProcStats.selfCPUSeconds() - selfCPU0
        let closeStart = Clock.now()
        run.stopAndJoin()
        let closeSeconds = Double(Clock.now() - closeStart) / 1e9

        var histogram = Histogram()
        for w in workers { histogram.merge(w.histogram) }
        let first = run.loops.map(\.firstConnectStart).min() ?? 0
        let last = run.loops.map(\.lastReady).max() ?? 0
        let elapsed = ready > 0 ? Double(last - first) / 1e9 : 0
        let rate = elapsed > 0 ? Double(ready) / elapsed : 0
        // Server CPU over the set-up window (first connect → last own presence), user and system
        // apart: the kernel's share (TCP set-up, wake-ups, page faults) is most of it.
        let split: (user: Double, system: Double)? =
            (cpu0 != nil && cpu1 != nil)
            ? (cpu1!.user - cpu0!.user, cpu1!.system - cpu0!.system) : nil
        let cpu = split.map { $0.user + $0.system }
        let perConnection = { (seconds: Double) -> Double in ready > 0 ? seconds * 1e6 / Double(ready) : 0 }
        if options.json {
            var o = run.commonJSON()
            o["established"] = .int(ready)
            o["failed"] = .int(failed)
            o["elapsed_s"] = .double(elapsed)
            o["connects_per_s"] = .double(rate)
            o["latency"] = latencyJSON(histogram)
            o["server_cpu_s"] = .optional(cpu)
            o["server_cpu_ms_per_connect"] = .optional(cpu.map { ready > 0 ? $0 * 1000 / Double(ready) : 0 })
            o["server_user_s"] = .optional(split?.user)
            o["server_system_s"] = .optional(split?.system)
            o["server_cpu_us_per_connection"] = .optional(cpu.map(perConnection))
            o["server_user_us_per_connection"] = .optional(split.map { perConnection($0.user) })
            o["server_system_us_per_connection"] = .optional(split.map { perConnection($0.system) })
            o["server_rss_before_kib"] = .optional(rss0)
            o["server_rss_after_kib"] = .optional(rss1)
            o["generator_cpu_s"] = .double(generatorCPU)
            o["close_s"] = .double(closeSeconds)
            run.problemsJSON(into: &o)
            print(o.text)
        } else {
            print(
                "presence-bench connect → \(target.display) (\(options.connections) connections, \(options.concurrency) in flight, "
                    + "\(options.channels) channels, \(options.threads) generator thread(s))")
            print(
                "  established        \(Fmt.count(ready)) of \(Fmt.count(options.connections)) in \(Fmt.fixed(elapsed, 3)) s, \(failed) failed"
            )
            print("  upgrades+joins/s   \(Fmt.count(Int(rate)))")
            print("  latency            \(Fmt.latencyLine(histogram))   (connect → upgrade → join → own presence)")
            if let cpu, let split {
                print(
                    "  server CPU         \(Fmt.fixed(cpu, 2)) s (\(Fmt.fixed(perConnection(cpu), 1)) µs per connection: "
                        + "user \(Fmt.fixed(perConnection(split.user), 1)) + system \(Fmt.fixed(perConnection(split.system), 1)))")
            }
            print(
                "  generator CPU      \(Fmt.fixed(generatorCPU, 2)) s (\(Fmt.fixed(ready > 0 ? generatorCPU * 1e6 / Double(ready) : 0, 1)) µs per connection)"
            )
            print("  closed all in      \(Fmt.fixed(closeSeconds, 2)) s")
            for line in run.problemsText() { print(line) }
        }
        return (failed > 0 || run.hadProblems) ? 3 : 0
    }
}
