import Glibc

/// The process basics Prometheus expects from every target (`process_*`), read from
/// `/proc/self` at scrape time.
struct ProcessStats: Equatable {
    /// Unix seconds at which the process started.
    var startTimeSeconds: Double
    /// User + system CPU time.
    var cpuSeconds: Double
    var residentBytes: Int
    var virtualBytes: Int
    var openFDs: Int
    /// The soft RLIMIT_NOFILE.
    var maxFDs: Int

    /// Nil when `/proc` is not readable (not Linux, or hidden).
    static func read() -> ProcessStats? {
        guard let stat = readFile("/proc/self/stat"), let procStat = readFile("/proc/stat") else { return nil }
        return parse(
            stat: stat, procStat: procStat, ticksPerSecond: Int(sysconf(Int32(_SC_CLK_TCK))),
            pageSize: Int(sysconf(Int32(_SC_PAGESIZE))), openFDs: countOpenFDs(), maxFDs: maxOpenFDs())
    }

    /// From `/proc/self/stat` and `/proc/stat` (for `btime`); pure, for tests.
    static func parse(stat: String, procStat: String, ticksPerSecond: Int, pageSize: Int, openFDs: Int, maxFDs: Int) -> ProcessStats? {
        // The command name (field 2) is in parentheses and may hold spaces: count from the last ")".
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): field n is fields[n - 3].
        guard fields.count > 21, ticksPerSecond > 0,
            let utime = Double(fields[11]), let stime = Double(fields[12]), let start = Double(fields[19]),
            let vsize = Int(fields[20]), let rss = Int(fields[21])
        else { return nil }
        var bootTime: Double?
        for line in procStat.split(separator: "\n") where line.hasPrefix("btime ") {
            bootTime = Double(line.dropFirst(6).trimmingSpaces())
        }
        guard let bootTime else { return nil }
        let ticks = Double(ticksPerSecond)
        return ProcessStats(
            startTimeSeconds: bootTime + start / ticks, cpuSeconds: (utime + stime) / ticks,
            residentBytes: rss * pageSize, virtualBytes: vsize, openFDs: openFDs, maxFDs: maxFDs)
    }

    /// Entries of `/proc/self/fd`, less the one this count opens.
    private static func countOpenFDs() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            // In place: copying `d_name` (256 bytes) reads past a short entry (found by ASan).
            let first = withUnsafePointer(to: &entry.pointee.d_name) { $0.withMemoryRebound(to: UInt8.self, capacity: 1) { $0.pointee } }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count - 1)
    }

    private static func maxOpenFDs() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        return limit.rlim_cur > UInt64(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// A small `/proc` file (their size is 0 to stat, so read until EOF).
    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
