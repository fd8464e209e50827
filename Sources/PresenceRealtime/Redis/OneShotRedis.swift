import PresenceLoop
import RedisShim

/// Redis for a command-line command (`presenced dead-letters` in Redis mode): a private epoll
/// loop on the calling thread, the same clients the daemon uses (one node, or a cluster when
/// `INFO` says so), `body` run once the client is ready, the loop ended by `finish`.
package enum OneShotRedis {
    /// Runs `body` with a ready client and returns the code it passes to `finish`; nil when
    /// Redis cannot be reached within `timeoutMillis`.
    package static func run(
        endpoint: RedisEndpoint, timeoutMillis: Int64,
        _ body: @escaping (any RedisCommanding, _ finish: @escaping (Int32) -> Void) -> Void
    ) throws -> Int32? {
        let loop = EventLoop(index: 0, backend: try EpollBackend())
        let host = LoopRedisHost(loop: loop)
        let options = RedisOptions(commandTimeoutMillis: timeoutMillis, clientName: "presenced-cli")
        var code: Int32?
        var started = false
        var client: (any RedisCommanding)?
        let finish: (Int32) -> Void = { result in
            code = result
            client?.shutdown()
            loop.stop()
        }
        func use(_ ready: any RedisCommanding) {
            client = ready
            ready.onReady = { [unowned ready] in
                ready.onReady = nil
                started = true
                body(ready, finish)
            }
            ready.start()
        }
        let probe = RedisConnection(endpoint: endpoint, host: host, options: options)
        probe.onReady = { [unowned probe] in
            probe.onReady = nil
            probe.send(RedisCommand("INFO"), routingKey: nil) { result in
                guard case .success(let value) = result, let text = value.string else { return finish(1) }
                if RedisServerInfo(info: text).isCluster {
                    probe.shutdown()
                    use(RedisCluster(seed: endpoint, host: host, options: options))
                } else {
                    client = probe
                    started = true
                    body(probe, finish)
                }
            }
        }
        client = probe
        probe.start()
        // Only reaching Redis is timed here: once `body` runs, its commands time out on their own.
        _ = loop.schedule(after: timeoutMillis) {
            if !started {
                client?.shutdown()
                loop.stop()
            }
        }
        loop.run()
        return code
    }
}
