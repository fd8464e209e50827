import Glibc

/// Readings of the server process (from /proc/PID) and of this process.
enum Console {
    /// One line on stderr (unbuffered, thread-safe enough for progress lines).
    static func error(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// A NUL-terminated C buffer as a String.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

enum ProcStats {
    /// Whole text of a small file, nil if it cannot be read.
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// CPU seconds (user + system) the process has used, from /proc/PID/stat fields 14 and 15.
    static func cpuSeconds(pid: Int32) -> Double? {
        cpuTimes(pid: pid).map { $0.user + $0.system }
    }

    /// User and system CPU seconds the process has used, apart: /proc/PID/stat fields 14 (utime)
    /// and 15 (stime), in clock ticks (10 ms here: a window needs a few hundred ticks to be read
    /// to a few per cent).
    static func cpuTimes(pid: Int32) -> (user: Double, system: Double)? {
        guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user / tick, system / tick)
    }

    /// VmRSS in KiB, from /proc/PID/status.
    static func rssKiB(pid: Int32) -> Int? {
        status(pid: pid, field: "VmRSS:")
    }

    /// A `kB` (or count) field of /proc/PID/status.
    static func status(pid: Int32, field: String) -> Int? {
        guard let text = readFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field) {
            let parts = line.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return parts.first.flatMap { Int($0) }
        }
        return nil
    }

    /// The 1-minute load average (other work on the machine skews every figure here).
    static func loadAverage() -> Double? {
        guard let text = readFile("/proc/loadavg"), let first = text.split(separator: " ").first else { return nil }
        return Double(first)
    }

    /// CPU seconds of the whole machine from /proc/stat: task time (user + nice + system), interrupt
    /// time (irq + softirq: loopback TCP work done outside a task's accounting) and hypervisor steal.
    static func machineSeconds() -> (tasks: Double, interrupts: Double, steal: Double)? {
        guard let text = readFile("/proc/stat"), let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let f = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard f.count >= 8 else { return nil }
        // user nice system idle iowait irq softirq steal
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((f[0] + f[1] + f[2]) / tick, (f[5] + f[6]) / tick, f[7] / tick)
    }

    /// Online CPUs.
    static func cpuCount() -> Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Whether a process with this pid exists.
    static func exists(pid: Int32) -> Bool {
        readFile("/proc/\(pid)/stat") != nil
    }

    /// This process's CPU seconds (user + system, all threads).
    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit in force.
    static func raiseFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// Redis command counters from `redis-cli -p PORT info commandstats`.
enum RedisStats {
    /// Total calls of every command except `info` itself (the reading's own command), or an error line.
    static func totalCalls(cli: String, port: Int) -> Result<Int, BenchError> {
        let command = "\(cli) -p \(port) info commandstats 2>&1"
        guard let pipe = popen(command, "r") else {
            return .failure(BenchError("cannot run \(cli): \(Errno.text(errno))"))
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, 4096, pipe) }
            if n <= 0 { break }
            output.append(contentsOf: chunk[0..<n])
        }
        let status = pclose(pipe)
        let text = String(decoding: output, as: UTF8.self)
        guard status == 0, text.contains("# Commandstats") else {
            let first = text.split(whereSeparator: { $0.isNewline }).first.map(String.init) ?? "exit status \(status)"
            return .failure(BenchError("redis-cli -p \(port) info commandstats failed: \(first)"))
        }
        var total = 0
        for line in text.split(whereSeparator: { $0.isNewline }) where line.hasPrefix("cmdstat_") {
            if line.hasPrefix("cmdstat_info:") { continue }
            guard let callsRange = line.firstRange(of: "calls=") else { continue }
            let digits = line[callsRange.upperBound...].prefix { $0.isNumber }
            total += Int(digits) ?? 0
        }
        return .success(total)
    }
}
