import CSystem
import Glibc
import Synchronization

/// One run of a scenario: client loops on their threads, the set-up barrier, stop and teardown,
/// and the counters of every loop merged. Connection `j` (0..<N) lives on thread `j % T`.
final class BenchRun<W: LoopWorker> {
    let options: Options
    let target: Target
    let control = Control()
    private(set) var loops: [ClientLoop<W>] = []
    private var threads: [pthread_t] = []
    private(set) var setupSeconds = 0.0
    /// Load average when the run was set up.
    let loadBefore = ProcStats.loadAverage()
    /// CPU seconds other processes (neither server nor generator) used during the measured period.
    var otherCPU: Double?
    /// Interrupt (irq + softirq) and hypervisor-steal CPU seconds during the measured period.
    var interruptCPU: Double?
    var stealCPU: Double?
    private var window: (machine: (tasks: Double, interrupts: Double, steal: Double)?, server: Double?, generator: Double)?

    /// Marks the start of the measured period for the "other processes" CPU figure.
    func beginCPUWindow() {
        window = (ProcStats.machineSeconds(), options.pid.flatMap { ProcStats.cpuSeconds(pid: $0) }, ProcStats.selfCPUSeconds())
    }

    /// Marks its end.
    func endCPUWindow() {
        guard let w = window, let m0 = w.machine, let m1 = ProcStats.machineSeconds() else { return }
        interruptCPU = m1.interrupts - m0.interrupts
        stealCPU = m1.steal - m0.steal
        guard let s0 = w.server, let s1 = options.pid.flatMap({ ProcStats.cpuSeconds(pid: $0) }) else { return }
        otherCPU = max(0, (m1.tasks - m0.tasks) - (s1 - s0) - (ProcStats.selfCPUSeconds() - w.generator))
    }

    /// `assign(j)` gives connection j's first channel and tag; `makeWorker(t, loop)` the worker of thread t.
    init(
        options: Options, target: Target, assign: (Int) -> (channel: Int, tag: Int32),
        makeWorker: (Int, ClientLoop<W>) -> W
    ) throws {
        self.options = options
        self.target = target
        let limit = ProcStats.raiseFileLimit()
        let needed = options.connections + 16 + 2 * options.threads
        guard needed <= limit else {
            throw BenchError(
                "presence-bench: fd limit reached: \(options.connections) connections need about \(needed) descriptors "
                    + "but this process may open \(limit) (RLIMIT_NOFILE); run several bench processes with --id-offset "
                    + "(see Benchmarks/README.md)")
        }
        let channelNames = (0..<options.channels).map { Array((options.channelPrefix + String($0)).utf8) }
        let sourceCount = options.sources >= 0 ? options.sources : (target.isLoopback ? 254 : 0)
        let sources = (0..<sourceCount).map { UInt32(0x7F00_0001 + $0).bigEndian }
        let settings = LoopSettings(
            target: target,
            minter: TokenMint(secret: options.jwtSecret, audience: options.audience),
            origin: options.origin,
            channelNames: channelNames,
            userPrefix: options.userPrefix,
            sources: sources,
            maxInFlight: max(1, (options.concurrency + options.threads - 1) / options.threads),
            connectTimeout: options.connectTimeout)
        for _ in 0..<options.threads {
            loops.append(try ClientLoop<W>(settings: settings, control: control))
        }
        for j in 0..<options.connections {
            let (channel, tag) = assign(j)
            loops[j % options.threads].add(index: options.idOffset + j, channel: channel, tag: tag)
        }
        for (t, loop) in loops.enumerated() { loop.setWorker(makeWorker(t, loop)) }
    }

    /// Starts the loop threads: they connect at once.
    func start() throws {
        let teardownTimeout = 5_000_000_000 + Int64(options.connections) * 200_000
        for (t, loop) in loops.enumerated() {
            threads.append(
                try spawn(name: "bench-\(t)") {
                    loop.run()
                    loop.teardown(timeout: teardownTimeout)
                })
        }
    }

    /// Waits until every connection is joined or has failed; prints progress on stderr.
    /// Returns (ready, failed).
    @discardableResult
    func waitForSetup() -> (ready: Int, failed: Int) {
        let begin = Clock.now()
        var lastPrint = begin
        var lastProgress = begin
        var lastDone = -1
        while true {
            let ready = sum(.ready), failed = sum(.failed)
            let now = Clock.now()
            if ready + failed >= options.connections {
                setupSeconds = Double(now - begin) / 1e9
                if !options.quiet && now - begin > 1_000_000_000 {
                    progress("set-up done: \(ready) joined, \(failed) failed in \(Fmt.fixed(setupSeconds, 2)) s")
                }
                return (ready, failed)
            }
            if ready + failed != lastDone {
                lastDone = ready + failed
                lastProgress = now
            }
            // Per-connection timeouts guarantee progress; this only guards against a wedged loop.
            if now - lastProgress > options.connectTimeout + 10_000_000_000 {
                setupSeconds = Double(now - begin) / 1e9
                return (ready, options.connections - ready)
            }
            if !options.quiet && now - lastPrint >= 1_000_000_000 {
                progress("set-up: \(ready)/\(options.connections) joined, \(failed) failed")
                lastPrint = now
            }
            Clock.sleep(nanoseconds: 5_000_000)
        }
    }

    /// Sum of a published counter over the loops.
    func sum(_ counter: LoopStatus.Counter) -> Int {
        loops.reduce(0) { $0 + $1.status.value(counter) }
    }

    /// Stops the loops (they close their connections) and joins the threads.
    func stopAndJoin() {
        control.stop.store(true, ordering: .relaxed)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    func progress(_ line: String) {
        if !options.quiet { Console.error("presence-bench: \(line)") }
    }

    // MARK: Merged counters (after stopAndJoin)

    func merged<T>(_ get: (ClientLoop<W>) -> [T: Int]) -> [T: Int] {
        var out: [T: Int] = [:]
        for loop in loops { out.merge(get(loop), uniquingKeysWith: +) }
        return out
    }

    func total(_ get: (ClientLoop<W>) -> Int) -> Int {
        loops.reduce(0) { $0 + get($1) }
    }

    var failures: [String: Int] { merged { $0.failures } }
    var errorCodes: [String: Int] { merged { $0.errorCodes } }
    var closeCodes: [Int: Int] { merged { $0.closeCodes } }
    var teardownCloseCodes: [Int: Int] { merged { $0.teardownCloseCodes } }

    /// The fields every scenario reports.
    func commonJSON() -> JObject {
        var o = JObject()
        o["scenario"] = .string(options.scenario.rawValue)
        o["url"] = .string(options.url)
        o["server"] = .string(target.display)
        o["server_pid"] = .optional(options.pid.map(Int.init))
        o["connections"] = .int(options.connections)
        o["channels"] = .int(options.channels)
        o["threads"] = .int(options.threads)
        o["concurrency"] = .int(options.concurrency)
        o["sources"] = .int(loops.first?.settings.sources.count ?? 0)
        o["id_offset"] = .int(options.idOffset)
        o["cpus"] = .int(ProcStats.cpuCount())
        o["loadavg_1m_before"] = .optional(loadBefore)
        return o
    }

    /// Failures, errors and close codes, merged (for --json).
    func problemsJSON(into o: inout JObject) {
        o["setup_failed"] = .int(total { $0.failedCount })
        o["lost_connections"] = .int(total { $0.lostCount })
        o["failures"] = .counts(failures)
        o["server_errors"] = .counts(errorCodes)
        o["close_codes"] = .counts(closeCodes)
        o["teardown_close_codes"] = .counts(teardownCloseCodes)
        o["teardown_unanswered"] = .int(total { $0.teardownUnanswered })
        o["pings_answered"] = .int(total { $0.pingsIn })
        o["other_processes_cpu_s"] = .optional(otherCPU)
        o["interrupt_cpu_s"] = .optional(interruptCPU)
        o["steal_cpu_s"] = .optional(stealCPU)
    }

    /// Failures, errors and close codes, merged (human report).
    func problemsText() -> [String] {
        var lines: [String] = []
        lines.append(
            "  machine            \(ProcStats.cpuCount()) CPUs shared by server and generator; load average \(loadBefore.map { Fmt.fixed($0, 2) } ?? "?") before the run"
                + (otherCPU.map { "; during the period other processes used \(Fmt.fixed($0, 2)) CPU-s" } ?? "")
                + (interruptCPU.map { ", irq+softirq \(Fmt.fixed($0, 2)) CPU-s" } ?? "")
                + (stealCPU.map { ", steal \(Fmt.fixed($0, 2)) CPU-s" } ?? ""))
        let lost = total { $0.lostCount }
        if lost > 0 { lines.append("  connections lost   \(Fmt.count(lost)) after set-up") }
        lines.append("  server errors      \(Fmt.counts(errorCodes))")
        lines.append(
            "  close codes        \(Fmt.counts(closeCodes)) (during the run); teardown: \(Fmt.counts(teardownCloseCodes))"
                + (total { $0.teardownUnanswered } > 0 ? ", \(total { $0.teardownUnanswered }) unanswered" : ""))
        lines.append("  failures           \(Fmt.counts(failures))")
        return lines
    }

    /// Whether anything went wrong (set-up failures, lost connections, server errors, unexpected closes).
    var hadProblems: Bool {
        !failures.isEmpty || !errorCodes.isEmpty || !closeCodes.isEmpty
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A plain pthread running `body`.
func spawn(name: String, _ body: @escaping () -> Void) throws -> pthread_t {
    var thread = pthread_t()
    let threadName = String(name.prefix(15))
    let box = Unmanaged.passRetained(
        ThreadBody({
            _ = cs_set_thread_name(threadName)
            body()
        })
    ).toOpaque()
    let rc = pthread_create(
        &thread, nil,
        { arg in
            let box = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw BenchError("presence-bench: pthread_create: \(Errno.text(rc))")
    }
    return thread
}

/// Checks the server answers TCP at all before anything else starts (one clear line if not).
enum Preflight {
    static func check(_ target: Target) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("presence-bench: socket: \(Errno.text(errno))") }
        defer { close(fd) }
        var sin = target.sockaddr
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { return }
        guard errno == EINPROGRESS else {
            throw BenchError("presence-bench: cannot connect to \(target.display): \(Errno.text(errno))")
        }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let n = poll(&p, 1, 3000)
        guard n == 1 else { throw BenchError("presence-bench: cannot connect to \(target.display): timed out after 3 s") }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 { throw BenchError("presence-bench: cannot connect to \(target.display): \(Errno.text(error))") }
    }
}
