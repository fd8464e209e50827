import CSystem
import Glibc
import PresenceLoop
import PresenceOutbound
import RedisShim
import WSCore

/// RedisShim's host on one event loop: Redis connections are the loop's own outbound sockets
/// (io_uring or epoll, like client connections), timers are the loop's one-shot timers, and
/// every callback runs on the loop's thread. Host names are resolved on a helper thread so a
/// slow resolver never stalls the loop.
package final class LoopRedisHost: RedisHost {
    unowned(unsafe) let loop: EventLoop

    init(loop: EventLoop) {
        self.loop = loop
    }

    package var nowMillis: Int64 { loop.now }

    package func openConnection(to endpoint: RedisEndpoint, events: RedisTransportEvents) -> RedisTransport {
        let transport = LoopRedisTransport(loop: loop, endpoint: endpoint, events: events)
        transport.start()
        return transport
    }

    package func schedule(afterMillis millis: Int64, _ work: @escaping () -> Void) -> RedisTimer {
        LoopRedisTimer(loop: loop, id: loop.schedule(after: millis, work))
    }
}

/// A pending `LoopRedisHost.schedule`.
final class LoopRedisTimer: RedisTimer {
    unowned(unsafe) let loop: EventLoop
    let id: UInt64
    init(loop: EventLoop, id: UInt64) {
        self.loop = loop
        self.id = id
    }
    func cancel() { loop.cancelScheduled(id) }
}

/// One Redis connection on a loop: RedisShim's transport over a `LoopStream` (resolve →
/// connect → TLS → bytes both ways).
final class LoopRedisTransport: RedisTransport, LoopStreamDelegate {
    private var stream: LoopStream?
    /// Held until the transport closes (RedisShim passes a small forwarding object).
    private var events: RedisTransportEvents?

    init(loop: EventLoop, endpoint: RedisEndpoint, events: RedisTransportEvents) {
        self.events = events
        stream = LoopStream(loop: loop, host: endpoint.host, port: UInt16(clamping: endpoint.port), tls: endpoint.tls, delegate: self)
    }

    /// Starts resolving and connecting; every outcome reaches `events` later, from the loop.
    func start() { stream?.start() }

    func write(_ bytes: [UInt8]) { stream?.write(bytes) }

    func close() {
        stream?.close()
        stream = nil
        events = nil
    }

    func streamConnected(_ stream: LoopStream) { events?.transportConnected() }

    func streamReceived(_ stream: LoopStream, _ bytes: UnsafeRawBufferPointer) { events?.transportReceived(bytes) }

    func streamClosed(_ stream: LoopStream, _ reason: LoopStream.Failure) {
        let events = self.events
        self.stream = nil
        self.events = nil
        events?.transportClosed(reason.description)
    }
}
