/// `idle`: N connections joined (connection j to channel j % C) and held without traffic. Reads the
/// server's VmRSS before connecting (baseline) and after settling, and its CPU over --hold.
final class IdleWorker: LoopWorker {
    func joined(_ loop: ClientLoop<IdleWorker>, slot: Int, initial: Bool, latency: Int64, now: Int64) {}
    func message(_ loop: ClientLoop<IdleWorker>, slot: Int, content: UnsafeRawBufferPointer, now: Int64) {}
    func lost(_ loop: ClientLoop<IdleWorker>, slot: Int) {}
    func tick(_ loop: ClientLoop<IdleWorker>, now: Int64) -> Int64 { .max }
    func publish(_ status: LoopStatus) {}
}

enum Idle {
    static func run(_ options: Options, target: Target) throws -> Int32 {
        let run = try BenchRun<IdleWorker>(
            options: options, target: target,
            assign: { j in (j % options.channels, -1) },
            makeWorker: { _, _ in IdleWorker() })
        let pid = options.pid
        let rssBaseline = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        run.progress(
            "idle: \(options.connections) connections over \(options.channels) channels, \(options.threads) thread(s)"
                + (rssBaseline.map { "; server RSS before: \($0) KiB" } ?? ""))
        try run.start()
        let (_, failed) = run.waitForSetup()
        if failed > 0 {
            run.stopAndJoin()
            throw BenchError(
                "presence-bench: set-up failed for \(failed) of \(options.connections) connections: \(Fmt.counts(run.failures))")
        }
        run.progress(
            "all joined in \(Fmt.fixed(run.setupSeconds, 2)) s; settling \(Fmt.fixed(Double(options.settle) / 1e9, 1)) s, "
                + "then holding \(Fmt.fixed(Double(options.hold) / 1e9, 1)) s")
        Clock.sleep(nanoseconds: options.settle)
        let rssAfter = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        let cpu0 = pid.flatMap { ProcStats.cpuSeconds(pid: $0) }
        let selfCPU0 = ProcStats.selfCPUSeconds()
        run.beginCPUWindow()
        let holdStart = Clock.now()
        Clock.sleep(nanoseconds: options.hold)
        let held = Double(Clock.now() - holdStart) / 1e9
        let cpu1 = pid.flatMap { ProcStats.cpuSeconds(pid: $0) }
        let selfCPU1 = ProcStats.selfCPUSeconds()
        let rssEnd = pid.flatMap { ProcStats.rssKiB(pid: $0) }
        run.endCPUWindow()
        let threadsCount = pid.flatMap { ProcStats.status(pid: $0, field: "Threads:") }
        let lostDuringHold = run.sum(.lost)
        run.stopAndJoin()

        let n = options.connections
        let perConnection: Double? = (rssBaseline != nil && rssAfter != nil) ? Double(rssAfter! - rssBaseline!) / Double(n) : nil
        let cpu = (cpu0 != nil && cpu1 != nil) ? cpu1! - cpu0! : nil
        if options.json {
            var o = run.commonJSON()
            o["setup_s"] = .double(run.setupSeconds)
            o["settle_s"] = .double(Double(options.settle) / 1e9)
            o["hold_s"] = .double(held)
            o["server_rss_baseline_kib"] = .optional(rssBaseline)
            o["server_rss_after_kib"] = .optional(rssAfter)
            o["server_rss_end_kib"] = .optional(rssEnd)
            o["rss_per_connection_kib"] = .optional(perConnection)
            o["rss_per_connection_bytes"] = .optional(perConnection.map { $0 * 1024 })
            o["server_cpu_s"] = .optional(cpu)
            o["server_cpu_pct"] = .optional(cpu.map { $0 / held * 100 })
            o["server_threads"] = .optional(threadsCount)
            o["generator_cpu_s"] = .double(selfCPU1 - selfCPU0)
            o["lost_during_hold"] = .int(lostDuringHold)
            run.problemsJSON(into: &o)
            print(o.text)
        } else {
            print(
                "presence-bench idle → \(target.display) (\(n) connections, \(options.channels) channels, \(options.threads) generator thread(s))"
            )
            print(
                "  set-up             \(n) joined in \(Fmt.fixed(run.setupSeconds, 2)) s (\(Fmt.count(Int(Double(n) / max(run.setupSeconds, 1e-9))))/s)"
            )
            if let rssBaseline, let rssAfter {
                print(
                    "  server RSS         \(Fmt.count(rssBaseline)) KiB before, \(Fmt.count(rssAfter)) KiB after "
                        + "(\(Fmt.fixed(Double(options.settle) / 1e9, 1)) s settle), \(Fmt.count(rssEnd ?? 0)) KiB at the end of the hold")
                print("  RSS per connection \(Fmt.fixed(perConnection!, 3)) KiB (\(Fmt.count(Int(perConnection! * 1024))) bytes)")
            } else {
                print("  server RSS         not measured (give --pid)")
            }
            if let cpu {
                print(
                    "  server CPU idle    \(Fmt.fixed(cpu, 2)) s over \(Fmt.fixed(held, 1)) s = \(Fmt.fixed(cpu / held * 100, 2)) % of one core"
                )
            }
            print("  lost during hold   \(lostDuringHold)")
            for line in run.problemsText() { print(line) }
        }
        return run.hadProblems ? 3 : 0
    }
}
