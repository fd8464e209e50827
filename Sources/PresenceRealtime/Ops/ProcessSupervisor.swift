import Glibc
import PresenceLoop

/// The main thread once the loops serve: waits for signals and keeps systemd informed —
/// `READY=1` now, `WATCHDOG=1` while every loop answers, `RELOADING=1`/`READY=1` around a SIGHUP
/// reload of the token secrets and ALLOWED_ORIGINS from ENV_FILE, `STOPPING=1` and the drain on
/// SIGTERM or SIGINT. Returns the exit code.
package final class ProcessSupervisor {
    /// Variables a SIGHUP reloads; for these the file is authoritative (a removed line removes
    /// the value — how the previous secret is retired).
    static let reloadable = ["WS_TOKEN_SECRET", "WS_TOKEN_SECRET_PREVIOUS", "ALLOWED_ORIGINS"]

    let config: Config
    let environment: [String: String]
    let arguments: [String]
    let group: LoopGroup
    let hub: RealtimeHub?
    let notifier: SystemdNotifier?
    /// The running settings a reload may change (the secret is the dev one when none is configured).
    private var secret: String
    private var previousSecret: String?
    private var origins: [String]

    package init(
        config: Config, environment: [String: String], arguments: [String], group: LoopGroup, hub: RealtimeHub?,
        secret: String
    ) {
        self.config = config
        self.environment = environment
        self.arguments = arguments
        self.group = group
        self.hub = hub
        self.secret = secret
        previousSecret = config.tokenSecretPrevious
        origins = config.allowedOrigins
        notifier = SystemdNotifier(environment: environment)
    }

    /// How often the heap is looked at for freed pages to hand back to the kernel
    /// (`HeapUsage.trim`). Each loop thread has its own glibc arena, and connection set-up leaves
    /// free chunks between the connections' long-lived allocations (request heads, parsers and
    /// token text are freed at the upgrade): 19,000 io_uring set-ups left ~3 MB free in the loops'
    /// arenas, 0.16 KiB per connection that stayed resident until the next trim (issue 19). Looking every
    /// second and trimming as soon as the heap stops growing returns it within about two seconds
    /// of a connection storm's end, and never in the middle of one (those pages would be faulted
    /// straight back in). A trim of a ~20 MB heap is a few madvise calls and ~1 ms; with the
    /// 256 KiB minimum, steady churn costs at most 64 page faults a second.
    static let trimIntervalMillis: Int64 = 1_000

    /// Free bytes below which a trim is not worth its arena locks. Once the large tables have
    /// their own mappings (`HeapUsage.mapLargeBlocks`), 19,000 set-ups leave ~0.9 MB free in the
    /// arenas, below the 1 MiB this was: a trim there gives back 11–12 B per idle connection.
    static let trimMinimumFreeBytes = 256 << 10

    /// Whether the heap should be trimmed now: at least `trimMinimumFreeBytes` free, and the bytes
    /// in use not grown by more than 1 % since the previous look (no storm in progress).
    static func shouldTrim(previous: HeapUsage?, now: HeapUsage) -> Bool {
        guard now.freeBytes >= trimMinimumFreeBytes else { return false }
        guard let previous else { return true }
        return now.inUseBytes <= previous.inUseBytes + previous.inUseBytes / 100
    }

    package func run(signals: sigset_t) -> Int32 {
        var signals = signals
        let status = "STATUS=serving on port \(group.port)"
        notifier?.notify("READY=1", status, "MAINPID=\(getpid())")
        let watchdogMillis = notifier == nil ? nil : SystemdNotifier.watchdogMillis(environment: environment)
        let watchdog = LoopWatchdog(loops: group.count)
        // Each round: ask every loop, then (a third of the interval later) ping if all answered.
        let round = max(50, (watchdogMillis ?? 0) / 3)
        var nextCheck = EventLoop.monotonicMillis() + round
        if watchdogMillis != nil { watchdog.probe(group) }
        #if DEBUG
        // Test-only (LifecycleTests), and only in debug builds (what `swift test` runs): a release
        // binary never reads the variable. A loop that never answers again, as a bug or a blocking
        // call would make it.
        if let stalled = environment["PRESENCED_TEST_STALL_LOOP"].flatMap(Int.init), (0..<group.count).contains(stalled) {
            Log.warn("PRESENCED_TEST_STALL_LOOP: stalling a loop on purpose (tests only)", ["loop": "\(stalled)"])
            group.post(to: stalled) { _ in while true { sleep(3600) } }
        }
        #endif
        var withheld = false
        var nextTrim = EventLoop.monotonicMillis() + Self.trimIntervalMillis
        var lastHeap: HeapUsage?
        while true {
            let now = EventLoop.monotonicMillis()
            let wait = max(0, min(nextTrim, watchdogMillis == nil ? nextTrim : nextCheck) - now)
            var timeout = timespec(tv_sec: Int(wait / 1000), tv_nsec: Int(wait % 1000) * 1_000_000)
            let received = sigtimedwait(&signals, nil, &timeout)
            if received == SIGHUP {
                reload(status: status)
            } else if received == SIGTERM || received == SIGINT {
                Log.info("stopping", ["signal": received == SIGTERM ? "SIGTERM" : "SIGINT"])
                break
            }
            if watchdogMillis != nil && EventLoop.monotonicMillis() >= nextCheck {
                if watchdog.allAnswered {
                    notifier?.notify("WATCHDOG=1")
                    withheld = false
                } else if !withheld {
                    withheld = true
                    Log.error("an event loop stopped answering: watchdog pings withheld (systemd will restart presenced)")
                }
                watchdog.probe(group)
                nextCheck = EventLoop.monotonicMillis() + round
            }
            if EventLoop.monotonicMillis() >= nextTrim {
                let heap = HeapUsage.current()
                if Self.shouldTrim(previous: lastHeap, now: heap) { HeapUsage.trim() }
                lastHeap = heap
                nextTrim = EventLoop.monotonicMillis() + Self.trimIntervalMillis
            }
        }
        notifier?.notify("STOPPING=1", "STATUS=draining")
        drain()
        group.stop()
        group.join()
        return 0
    }

    /// Upgrades refused (503), every client closed with 1001 over DRAIN_WINDOW, their close
    /// handshakes given until the window plus at most 1.5 s, the forward queues flushed.
    private func drain() {
        guard let hub else { return }
        let start = EventLoop.monotonicMillis()
        hub.drain(windowMillis: config.drainWindowMillis)
        let deadline = start + config.drainWindowMillis + min(config.closeTimeoutMillis, 1_500)
        while hub.sessions.load(ordering: .relaxed) > 0 && EventLoop.monotonicMillis() < deadline { usleep(20_000) }
        usleep(100_000)  // the last close frames leave the queues
        hub.stopForwarding(timeoutMillis: 1_000)
        Log.info("drained", ["millis": "\(EventLoop.monotonicMillis() - start)", "left": "\(hub.sessions.load(ordering: .relaxed))"])
    }

    /// SIGHUP: the token secrets and ALLOWED_ORIGINS from ENV_FILE, validated as at start; on
    /// any problem the running settings stay and one error line says why (never a value).
    private func reload(status: String) {
        notifier?.notify("RELOADING=1", "MONOTONIC_USEC=\(SystemdNotifier.monotonicMicros())", "STATUS=reloading")
        defer { notifier?.notify("READY=1", status) }
        guard let hub else { return Log.info("SIGHUP: nothing to reload in echo mode") }
        guard let path = config.environmentFile else {
            return Log.warn("SIGHUP: ENV_FILE is not set, so there is nothing to re-read (secrets and origins unchanged)")
        }
        let fresh: Config
        let file: [String: String]
        do {
            file = try EnvironmentFile.read(path: path)
            var merged = environment
            for name in Self.reloadable { merged[name] = nil }
            merged.merge(file) { $1 }
            fresh = try Config.parse(environment: merged, arguments: arguments)
        } catch {
            return Log.error("reload refused: the running configuration stays", ["file": path, "error": "\(error)"])
        }
        guard let newSecret = fresh.tokenSecret ?? (config.tokenSecret == nil ? secret : nil) else {
            return Log.error(
                "reload refused: the running configuration stays",
                ["file": path, "error": "WS_TOKEN_SECRET is not in ENV_FILE"])
        }
        var changed: [String] = []
        if newSecret != secret { changed.append("WS_TOKEN_SECRET") }
        if fresh.tokenSecretPrevious != previousSecret { changed.append("WS_TOKEN_SECRET_PREVIOUS") }
        if fresh.allowedOrigins != origins { changed.append("ALLOWED_ORIGINS") }
        secret = newSecret
        previousSecret = fresh.tokenSecretPrevious
        origins = fresh.allowedOrigins
        hub.reload(secrets: [newSecret] + (fresh.tokenSecretPrevious.map { [$0] } ?? []), allowedOrigins: fresh.allowedOrigins)
        let later = file.keys.filter { !Self.reloadable.contains($0) && environment[$0] != file[$0] }.sorted()
        Log.info(
            "reloaded",
            [
                "changed": changed.isEmpty ? "nothing" : changed.joined(separator: ","),
                "restart_needed_for": later.joined(separator: ","),
            ])
    }
}
