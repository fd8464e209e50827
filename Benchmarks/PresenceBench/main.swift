import Glibc

// presence-bench: load generator for presenced (and any server speaking the same protocol).
// Starts nothing itself: point it at a running server with --url (and --pid for RSS/CPU).

signal(SIGPIPE, SIG_IGN)

nonisolated(unsafe) var jsonScenario: String?

do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    if options.json { jsonScenario = options.scenario.rawValue }
    let target = try Target.parse(options.url)
    if let pid = options.pid, !ProcStats.exists(pid: pid) {
        throw BenchError("presence-bench: --pid \(pid): no such process")
    }
    try Preflight.check(target)
    let status: Int32
    switch options.scenario {
    case .fanout: status = try Fanout.run(options, target: target)
    case .idle: status = try Idle.run(options, target: target)
    case .connect: status = try Connect.run(options, target: target)
    case .presence: status = try PresenceChurn.run(options, target: target)
    }
    exit(status)
} catch let error as BenchError {
    if error.exitCode == 0 {
        print(error.message)
    } else {
        Console.error(error.message)
        if let scenario = jsonScenario {
            // Scripts reading --json get the failure as an object too.
            var o = JObject()
            o["scenario"] = .string(scenario)
            o["error"] = .string(error.message)
            print(o.text)
        }
    }
    exit(error.exitCode)
} catch {
    Console.error("presence-bench: \(error)")
    exit(1)
}
