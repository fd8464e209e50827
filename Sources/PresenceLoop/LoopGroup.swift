import CSystem
import Glibc
import Synchronization

/// One event loop per thread, each with its own SO_REUSEPORT listener on the same port, so the
/// kernel spreads connections over the loops and no lock sits between a connection and its loop.
/// With a listening socket passed in (systemd socket activation) every loop accepts from it.
package final class LoopGroup: Sendable {
    /// What a loop thread reports once it has started (or failed to).
    private enum Startup: Sendable { case pending, ready, failed(String) }

    let backendKind: IOBackendKind
    /// The bound port (the real one when 0 was asked for).
    package let port: UInt16
    private let listenerFDs: [Int32]
    /// Every loop accepts from one passed socket (its own duplicate): the backends take turns.
    private let sharesListener: Bool
    private let states: Lock<[Startup]>
    private let mailboxes = Lock<[Mailbox?]>([])
    private let threads = Lock<[pthread_t]>([])

    /// Binds one listener per loop. `handlerFactory` makes each loop's connection handler on its thread.
    package init(threads count: Int, backend: IOBackendKind, address: String, port: UInt16) throws {
        precondition(count > 0)
        backendKind = backend
        var fds: [Int32] = []
        var bound = port
        do {
            for _ in 0..<count {
                let fd = try Sockets.listen(address: address, port: bound)
                if bound == 0 { bound = Sockets.localPort(fd) }
                fds.append(fd)
            }
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
        listenerFDs = fds
        sharesListener = false
        self.port = bound
        states = Lock([Startup](repeating: .pending, count: count))
        mailboxes.withLock { $0 = [Mailbox?](repeating: nil, count: count) }
    }

    /// Every loop accepts from `inherited`, a listening socket passed in: each loop gets its own
    /// duplicate of the descriptor (the group closes those; `inherited` stays open).
    package init(threads count: Int, backend: IOBackendKind, inherited: Int32) throws {
        precondition(count > 0)
        backendKind = backend
        Sockets.setNonBlocking(inherited)
        var one: Int32 = 1
        setsockopt(inherited, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var fds: [Int32] = []
        for _ in 0..<count {
            let copy = fcntl(inherited, F_DUPFD_CLOEXEC, 3)
            guard copy >= 0 else {
                let e = errno
                for fd in fds { close(fd) }
                throw SystemError(call: "dup of the passed socket", errno: e)
            }
            fds.append(copy)
        }
        listenerFDs = fds
        sharesListener = count > 1
        port = Sockets.localPort(inherited)
        states = Lock([Startup](repeating: .pending, count: count))
        mailboxes.withLock { $0 = [Mailbox?](repeating: nil, count: count) }
    }

    package var count: Int { listenerFDs.count }

    /// Starts every loop thread and waits until each is running; throws the first start failure.
    /// `connectionsPerIP`, when given, caps each client address's open connections over all loops.
    package func start(
        connectionsPerIP: ConnectionsPerIP? = nil,
        handlerFactory: @escaping @Sendable (EventLoop) -> any ConnectionHandler
    ) throws {
        for i in 0..<count {
            let fd = listenerFDs[i]
            let kind = backendKind, shared = sharesListener
            let body: @Sendable () -> Void = { [self] in
                let backend: any IOBackend
                do {
                    switch kind {
                    case .uring:
                        let uring = try UringBackend()
                        uring.singleShotAccept = shared
                        backend = uring
                    case .epoll:
                        let epoll = try EpollBackend()
                        epoll.rotatesSharedListeners = shared
                        backend = epoll
                    }
                    try backend.addListener(fd, index: 0)
                } catch {
                    self.states.withLock { $0[i] = .failed("\(kind.rawValue) loop \(i): \(error)") }
                    return
                }
                let loop = EventLoop(index: i, backend: backend)
                loop.connectionsPerIP = connectionsPerIP
                let handler = handlerFactory(loop)
                loop.handler = handler
                self.mailboxes.withLock { $0[i] = loop.mailbox }
                self.states.withLock { $0[i] = .ready }
                // `handlerFactory` registers each loop in tables the loops share (RealtimeHub,
                // CrossLoopFanOut, RedisPresenceStore); no loop runs a turn, and reads them, before
                // every loop has (or one failed: `start` then stops the others).
                while !self.everyLoopStarted() { usleep(200) }
                withExtendedLifetime(handler) { loop.run() }
            }
            let thread = try LoopThread.spawn(name: "loop-\(i)", body)
            threads.withLock { $0.append(thread) }
        }
        while true {
            let snapshot = states.withLock { $0 }
            for case .failed(let message) in snapshot {
                stop()
                throw LoopGroupError(message: message)
            }
            if snapshot.allSatisfy({ if case .ready = $0 { true } else { false } }) { return }
            usleep(1000)
        }
    }

    /// Whether every loop is ready, or one failed to start.
    private func everyLoopStarted() -> Bool {
        states.withLock { states in
            states.allSatisfy { if case .pending = $0 { false } else { true } }
        }
    }

    /// Runs `job` on loop `index`'s thread at its next turn.
    package func post(to index: Int, _ job: @escaping Mailbox.Job) {
        mailboxes.withLock { $0[index] }?.post(job)
    }

    /// Runs `job` on every loop's thread at its next turn.
    package func broadcast(_ job: @escaping Mailbox.Job) {
        for case let mailbox? in mailboxes.withLock({ $0 }) { mailbox.post(job) }
    }

    /// Asks every loop to stop after its current turn.
    package func stop() {
        broadcast { $0.stop() }
    }

    /// Waits for every loop thread to end, then closes the listeners.
    package func join() {
        for thread in threads.withLock({ $0 }) { pthread_join(thread, nil) }
        for fd in listenerFDs { close(fd) }
    }
}

/// A loop thread that could not start.
package struct LoopGroupError: Error, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}

/// Plain pthreads for loop threads: no executor, no scheduler between a loop and its core.
package enum LoopThread {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ b: @escaping @Sendable () -> Void) { body = b }
    }

    package static func spawn(name: String, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        var thread = pthread_t()
        let threadName = String(name.prefix(15))
        let box = Unmanaged.passRetained(
            Box({
                _ = cs_set_thread_name(threadName)
                body()
            })
        ).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError(call: "pthread_create", errno: rc)
        }
        return thread
    }
}
