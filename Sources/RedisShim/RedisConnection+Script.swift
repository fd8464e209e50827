extension RedisConnection {
    /// Runs `command`, an `EVALSHA` of `script`; when the server answers `NOSCRIPT` (after a
    /// restart or `SCRIPT FLUSH`) it retries once with `EVAL`, which also caches the script again.
    /// A single node serves every key, so `routingKey` is ignored.
    public func evalScript(
        _ script: RedisScript, command: RedisCommand, routingKey: String? = nil,
        _ completion: @escaping (Result<RedisValue, RedisError>) -> Void
    ) {
        send(command) { [weak self] result in
            if case .failure(.server(let message)) = result, message.hasPrefix("NOSCRIPT"), let self {
                self.stats.scriptFallbacks += 1
                self.send(script.bySource(command), completion)
            } else {
                completion(result)
            }
        }
    }
}
