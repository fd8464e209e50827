import Glibc
import PresenceLoop

/// One append-only log of checksummed records, the storage of ``FileForwardQueue``.
///
/// Layout: an 8-byte header (`magic`, 4 bytes; format version, 1 byte; 3 zero bytes), then
/// records `u32 bodyLength, u32 crc32(body), body = u8 type, u64 seq, payload` (little-endian).
/// Records are written with one `write(2)` each on an `O_APPEND` descriptor: once `append`
/// returns, the record is in the page cache and survives a SIGKILL of the process; ``sync()``
/// (`fdatasync`) makes it survive a power loss. A failed write is cut off again (`ftruncate` to
/// the previous end) so a later record never follows a torn one; a torn or corrupt tail left by
/// a crash is cut off when the file is opened.
package final class QueueLogFile {
    package static let headerSize = 8
    /// Bytes before the payload: length, checksum, type, sequence number.
    static let recordOverhead = 4 + 4 + 1 + 8
    static let formatVersion: UInt8 = 1
    /// Largest body accepted when reading (a length beyond it is a torn or corrupt record).
    static let maxBody = 1 << 31

    package let path: String
    let magic: [UInt8]
    private(set) var fd: Int32 = -1
    /// Bytes in the file (what this object wrote or kept).
    private(set) var size = 0
    /// Written since the last `fdatasync`.
    private(set) var dirty = false
    /// Set when a failed write could not be cut off: every later write is refused.
    private(set) var broken: String?

    /// Opens (creating it with a header when missing or empty) and returns the file and its
    /// contents. Throws `.io` when it is not a log with `magic` or was written by a newer format.
    static func open(path: String, magic: [UInt8]) throws(ForwardQueueError) -> (QueueLogFile, [UInt8]) {
        let file = QueueLogFile(path: path, magic: magic)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("open \(path): \(errnoText())") }
        file.fd = fd
        let bytes: [UInt8]
        do throws(ForwardQueueError) {
            bytes = try readAll(fd: fd, path: path)
            file.size = bytes.count
            if bytes.count < headerSize && file.header.starts(with: bytes) {
                // Empty, or a header torn while the file was created.
                try file.truncate(to: 0)
                try file.write(file.header)
                try file.sync()
                syncDirectory(of: path)
                return (file, file.header)
            }
            try validateHeader(bytes, magic: magic, path: path)
        } catch {
            file.close()
            throw error
        }
        return (file, bytes)
    }

    /// Reads a log without opening it for writing (an operator listing while the daemon runs);
    /// nil when the file does not exist.
    static func readOnly(path: String, magic: [UInt8]) throws(ForwardQueueError) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .io("open \(path): \(errnoText())")
        }
        defer { Glibc.close(fd) }
        let bytes = try readAll(fd: fd, path: path)
        if bytes.count < headerSize { return nil }
        try validateHeader(bytes, magic: magic, path: path)
        return bytes
    }

    private static func validateHeader(_ bytes: [UInt8], magic: [UInt8], path: String) throws(ForwardQueueError) {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic else {
            throw .io("\(path) is not a presenced queue file (bad header)")
        }
        guard bytes[4] == formatVersion else {
            throw .io("\(path) has format version \(bytes[4]); this presenced reads version \(formatVersion)")
        }
    }

    private init(path: String, magic: [UInt8]) {
        self.path = path
        self.magic = magic
    }

    deinit { close() }

    package var header: [UInt8] { Self.header(magic: magic) }

    /// The header of a log with `magic`: also what a missing log reads as.
    package static func header(magic: [UInt8]) -> [UInt8] { magic + [formatVersion, 0, 0, 0] }

    /// Calls `visit(type, seq, payload)` for each intact record after the header, in order;
    /// returns the offset where intact records end (the file's size when nothing is torn).
    static func forEachRecord(_ bytes: [UInt8], _ visit: (UInt8, UInt64, inout ByteCursor) -> Void) -> Int {
        bytes.withUnsafeBytes { raw in
            var offset = headerSize
            while raw.count - offset >= 8 {
                var head = ByteCursor(raw, from: offset)
                let length = Int(head.u32()!), crc = head.u32()!
                guard length >= 9, length <= maxBody, length <= raw.count - offset - 8 else { break }
                let body = UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<(offset + 8 + length)])
                guard CRC32.checksum(body) == crc else { break }
                var cursor = ByteCursor(raw, from: offset + 8, to: offset + 8 + length)
                let type = cursor.u8()!, seq = cursor.u64()!
                visit(type, seq, &cursor)
                offset += 8 + length
            }
            return offset
        }
    }

    /// Builds one record into `out` (cleared first): `payload` appends the payload.
    static func buildRecord(type: UInt8, seq: UInt64, into out: inout [UInt8], _ payload: (inout [UInt8]) -> Void) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0])
        out.append(type)
        ByteIO.putU64(&out, seq)
        payload(&out)
        let length = out.count - 8
        let crc = out.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }
        ByteIO.setU32(&out, at: 0, UInt32(length))
        ByteIO.setU32(&out, at: 4, crc)
    }

    /// Appends one record to the end of `out` (nothing cleared): `write` fills the
    /// `payloadSize` bytes of payload in place.
    static func appendRecord(
        type: UInt8, seq: UInt64, payloadSize: Int, to out: inout [UInt8],
        _ write: (UnsafeMutableRawPointer) -> Void
    ) {
        let start = out.count, length = 1 + 8 + payloadSize
        out.append(contentsOf: repeatElement(0, count: 8 + length))
        out.withUnsafeMutableBytes { raw in
            let record = raw.baseAddress! + start
            (record + 8).storeBytes(of: type, as: UInt8.self)
            (record + 9).storeBytes(of: seq.littleEndian, as: UInt64.self)
            write(record + 17)
            let crc = CRC32.checksum(UnsafeRawBufferPointer(start: record + 8, count: length))
            record.storeBytes(of: UInt32(length).littleEndian, as: UInt32.self)
            (record + 4).storeBytes(of: crc.littleEndian, as: UInt32.self)
        }
    }

    /// Appends whole records with one `write(2)` (looping on a short write); on failure the
    /// file is cut back to where it was.
    package func append(_ bytes: [UInt8]) throws(ForwardQueueError) {
        if let broken { throw .io(broken) }
        try write(bytes)
    }

    private func write(_ bytes: [UInt8]) throws(ForwardQueueError) {
        let failure: Int32 = bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { return EIO }
                done += n
            }
            return 0
        }
        if failure != 0 {
            let message = "write \(path): \(String(cString: strerror(failure)))"
            if ftruncate(fd, off_t(size)) != 0 {
                broken = message + "; cannot cut the partial record off: \(QueueLogFile.errnoText())"
            }
            throw .io(message)
        }
        size += bytes.count
        dirty = true
    }

    /// Cuts the file to `length` bytes (a torn tail) and makes that durable.
    package func truncate(to length: Int) throws(ForwardQueueError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw .io("truncate \(path): \(QueueLogFile.errnoText())") }
        size = length
        dirty = true
    }

    /// Runs the periodic `fdatasync`s of every loop's logs, so a loop never waits on the disk.
    package static let syncPool = WorkerPool(threads: 1, queueLimit: 256, name: "fsync")

    /// ``sync()`` on ``syncPool``, through a duplicate descriptor (valid even if this file is
    /// closed or replaced meanwhile); a failure is logged. When the pool is busy the data stays
    /// marked unsynced for the next call.
    package func syncInBackground() {
        guard dirty, fd >= 0 else { return }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return }
        let path = self.path
        let submitted = Self.syncPool.submit {
            if fdatasync(copy) != 0 { Log.error("forward queue fdatasync failed", ["file": path, "error": QueueLogFile.errnoText()]) }
            Glibc.close(copy)
        }
        if submitted { dirty = false } else { Glibc.close(copy) }
    }

    /// `fdatasync` when something was written since the last one.
    func sync() throws(ForwardQueueError) {
        guard dirty, fd >= 0 else { return }
        guard fdatasync(fd) == 0 else { throw .io("fdatasync \(path): \(QueueLogFile.errnoText())") }
        dirty = false
    }

    /// Replaces the whole file atomically: the header plus what `produce` emits goes to
    /// `<path>.compact`, is synced and renamed over the file (then the directory is synced).
    /// `produce` calls `emit` with chunks of records.
    func replace(
        _ produce: (_ emit: (inout [UInt8]) throws(ForwardQueueError) -> Void) throws(ForwardQueueError) -> Void
    ) throws(ForwardQueueError) {
        if let broken { throw .io(broken) }
        let temporary = path + ".compact"
        let newFD = Glibc.open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw .io("open \(temporary): \(QueueLogFile.errnoText())") }
        let replacement = QueueLogFile(path: temporary, magic: magic)
        replacement.fd = newFD
        do throws(ForwardQueueError) {
            try replacement.write(header)
            try produce { (chunk: inout [UInt8]) throws(ForwardQueueError) in
                try replacement.write(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
            try replacement.sync()
            guard rename(temporary, path) == 0 else { throw .io("rename \(temporary): \(QueueLogFile.errnoText())") }
        } catch {
            replacement.close()
            unlink(temporary)
            throw error
        }
        QueueLogFile.syncDirectory(of: path)
        Glibc.close(fd)
        fd = replacement.fd
        size = replacement.size
        dirty = false
        replacement.fd = -1
    }

    package func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    // MARK: Helpers

    static func errnoText() -> String { String(cString: strerror(errno)) }

    package static func readAll(fd: Int32, path: String) throws(ForwardQueueError) -> [UInt8] {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io("stat \(path): \(errnoText())") }
        let size = Int(info.st_size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let n = pread(fd, buffer.baseAddress! + done, size - done, off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if n == 0 { break }
                done += n
            }
            count = done
        }
        if failure != 0 { throw .io("read \(path): \(String(cString: strerror(failure)))") }
        return bytes
    }

    /// `fsync` of the directory holding `path`, so a created or renamed name is durable.
    static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = Glibc.open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        Glibc.close(fd)
    }

    /// `mkdir -p` with mode 0700 for the parts it creates.
    static func makeDirectories(_ path: String) throws(ForwardQueueError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw .io("mkdir \(prefix): \(errnoText())")
            }
            prefix += "/"
        }
    }
}
