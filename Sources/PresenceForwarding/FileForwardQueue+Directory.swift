import Glibc

/// The state directory's side of the file queues: where each queue's logs are, which queues
/// exist, which a daemon with fewer loops adopts, the directory's lock, and reading logs without
/// opening them for writing (an operator listing dead letters while the daemon runs, a queue
/// adopting another's).
extension FileForwardQueue {
    /// `<directory>/forward-<index>.log`.
    package static func path(directory: String, index: Int) -> String { "\(directory)/forward-\(index).log" }
    /// `<directory>/dead-letters-<index>.log`.
    static func deadLetterPath(directory: String, index: Int) -> String { "\(directory)/dead-letters-\(index).log" }

    /// The queue indices with files in `directory` (`forward-<n>.log` or `dead-letters-<n>.log`),
    /// ascending; empty when the directory does not exist.
    package static func existingIndices(in directory: String) -> [Int] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var found = Set<Int>()
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            for prefix in ["forward-", "dead-letters-"] where name.hasPrefix(prefix) && name.hasSuffix(".log") {
                let digits = name.dropFirst(prefix.count).dropLast(4)
                if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits) {
                    found.insert(n)
                }
            }
        }
        return found.sorted()
    }

    /// For a daemon with `loops` loops: the indices each loop should adopt — every existing index
    /// ≥ `loops` goes to loop `index % loops` (loop `i` always opens queue `i` itself).
    static func adoptions(existing: [Int], loops: Int) -> [[Int]] {
        var result = [[Int]](repeating: [], count: max(loops, 0))
        guard loops > 0 else { return result }
        for index in existing where index >= loops { result[index % loops].append(index) }
        return result
    }

    /// Takes `<directory>/lock` (`flock`, exclusive, non-blocking) for the process' lifetime and
    /// returns its descriptor: a second presenced (or an operator command that writes) on the
    /// same state directory fails here instead of corrupting the queues.
    package static func lockDirectory(_ directory: String) throws(ForwardQueueError) -> Int32 {
        try QueueLogFile.makeDirectories(directory)
        let path = directory + "/lock"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("open \(path): \(QueueLogFile.errnoText())") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let busy = errno == EWOULDBLOCK
            let text = QueueLogFile.errnoText()
            Glibc.close(fd)
            throw .io(busy ? "\(directory) is in use by another presenced" : "flock \(path): \(text)")
        }
        return fd
    }

    /// Every queue's dead letters under `directory`, read without opening anything for writing
    /// (safe while the daemon runs): queue index and letter, each queue's oldest first.
    package static func readDeadLetters(directory: String) throws(ForwardQueueError) -> [(index: Int, letter: DeadLetter)] {
        var result: [(index: Int, letter: DeadLetter)] = []
        for index in existingIndices(in: directory) {
            result += try readState(directory: directory, index: index).orderedDead().map { (index, $0) }
        }
        return result
    }

    /// Queue `index`'s logs under `directory`, read without opening them for writing (a missing
    /// log reads as an empty one) and reconciled as opening would: what it holds. Torn tails are
    /// left alone.
    static func readState(directory: String, index: Int) throws(ForwardQueueError) -> FileForwardQueueState {
        let forward = try QueueLogFile.readOnly(path: path(directory: directory, index: index), magic: forwardMagic)
        let dead = try QueueLogFile.readOnly(path: deadLetterPath(directory: directory, index: index), magic: deadMagic)
        var state = FileForwardQueueState.load(
            forward: forward ?? QueueLogFile.header(magic: forwardMagic),
            dead: dead ?? QueueLogFile.header(magic: deadMagic))
        _ = state.reconcile()
        return state
    }
}
