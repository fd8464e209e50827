extension RedisConnection {
    /// Runs a script with `EVALSHA`; when the server answers `NOSCRIPT` (after a restart or
    /// `SCRIPT FLUSH`) it retries once with `EVAL`, which also caches the script again.
    public func evalScript(_ script: RedisScript, keys: [String] = [], args: [String] = [],
                           _ completion: @escaping (Result<RedisValue, RedisError>) -> Void) {
        var tail = [String(keys.count)]
        tail.append(contentsOf: keys)
        tail.append(contentsOf: args)
        send(RedisCommand(["EVALSHA", script.sha1] + tail)) { [weak self] result in
            if case .failure(.server(let message)) = result, message.hasPrefix("NOSCRIPT"), let self {
                self.stats.scriptFallbacks += 1
                self.send(RedisCommand(["EVAL", script.source] + tail), completion)
            } else {
                completion(result)
            }
        }
    }
}
