import Foundation
import Glibc
import RedisTestSupport
import TestSupport

/// chat-service that is down — its port refuses connections — and comes back on the same port: a
/// TCP relay on a fixed loopback port in front of a stand-in server, listening only while open.
/// (A stand-in server's port is the kernel's choice and goes with it.)
///
/// As in `StandInListener`, a listening socket is closed by its own accept thread once `accept`
/// fails after the shutdown, never under it (its number could be reused meanwhile).
final class ChatServiceGate: @unchecked Sendable {
    let port: UInt16
    private let target: UInt16
    private let lock = NSLock()
    private var listener: Int32 = -1
    /// Both ends of every relayed connection still open.
    private var relayed: Set<Int32> = []

    /// Closed at first.
    init(target: UInt16) throws {
        self.target = target
        port = try RedisServerProcess.freePort()
    }

    /// `http://127.0.0.1:<port>`.
    var url: String { "http://127.0.0.1:\(port)" }

    /// Starts listening (the port may take a moment to be free again after `close()`).
    func open() throws {
        var fd: Int32 = -1
        let end = Date().addingTimeInterval(5)
        while true {
            fd = try Self.bind(port)
            if fd >= 0 { break }
            guard Date() < end else { throw POSIXError(.EADDRINUSE) }
            usleep(20_000)
        }
        lock.withLock { listener = fd }
        let socket = fd
        Thread { [self] in
            while true {
                let client = accept(socket, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    Glibc.close(socket)
                    return
                }
                relay(client)
            }
        }.start()
    }

    /// Stops listening (connecting is refused from now on) and cuts every relayed connection.
    func close() {
        lock.withLock {
            if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }
            listener = -1
            for fd in relayed { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func relay(_ client: Int32) {
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = Self.loopback(target)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let open = lock.withLock { () -> Bool in
            guard listener >= 0, upstream >= 0, connected == 0 else { return false }
            relayed.formUnion([client, upstream])
            return true
        }
        guard open else {
            Glibc.close(client)
            if upstream >= 0 { Glibc.close(upstream) }
            return
        }
        let ends = RelayEnds(client: client, upstream: upstream)
        Thread { [self] in
            Self.copy(from: client, to: upstream)
            if ends.directionEnded() { closeRelayed(ends) }
        }.start()
        Thread { [self] in
            Self.copy(from: upstream, to: client)
            if ends.directionEnded() { closeRelayed(ends) }
        }.start()
    }

    private func closeRelayed(_ ends: RelayEnds) {
        lock.withLock { relayed.subtract([ends.client, ends.upstream]) }
        Glibc.close(ends.client)
        Glibc.close(ends.upstream)
    }

    /// Bytes from `source` to `sink` until the end (then the end is passed on).
    private static func copy(from source: Int32, to sink: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            var offset = 0
            while offset < n {
                let sent = buffer.withUnsafeBytes { send(sink, $0.baseAddress! + offset, n - offset, Int32(MSG_NOSIGNAL)) }
                if sent < 0 && errno == EINTR { continue }
                guard sent > 0 else {
                    shutdown(source, Int32(SHUT_RDWR))
                    return
                }
                offset += sent
            }
        }
        shutdown(sink, Int32(SHUT_WR))
    }

    /// A listening socket on 127.0.0.1:`port`, or -1 while the port is still taken.
    private static func bind(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = errno
            Glibc.close(fd)
            if e == EADDRINUSE { return -1 }
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
        }
        return fd
    }

    private static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

/// The two sockets of one relayed connection: closed once both directions have ended.
private final class RelayEnds: @unchecked Sendable {
    let client: Int32
    let upstream: Int32
    private let lock = NSLock()
    private var running = 2

    init(client: Int32, upstream: Int32) {
        self.client = client
        self.upstream = upstream
    }

    /// One direction is done; true for the second (the sockets may be closed now).
    func directionEnded() -> Bool {
        lock.withLock {
            running -= 1
            return running == 0
        }
    }
}
