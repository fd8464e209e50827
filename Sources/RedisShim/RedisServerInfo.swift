/// What a Redis server says about itself in `INFO server` and `INFO cluster`: enough to choose
/// between ``RedisConnection``/``RedisSubscriber`` and ``RedisCluster``/``RedisClusterSubscriber``,
/// and between classic and sharded pub/sub.
public struct RedisServerInfo: Hashable, Sendable {
    /// `cluster_enabled:1`.
    public var isCluster: Bool
    /// `redis_version`, e.g. `7.0.15`; empty when the server did not say.
    public var version: String

    public init(isCluster: Bool, version: String) {
        self.isCluster = isCluster
        self.version = version
    }

    /// Reads the fields from `INFO` text (`field:value` lines; other lines ignored).
    public init(info: String) {
        var isCluster = false
        var version = ""
        for line in info.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("cluster_enabled:") {
                isCluster = line.dropFirst("cluster_enabled:".count) == "1"
            } else if line.hasPrefix("redis_version:") {
                version = String(line.dropFirst("redis_version:".count))
            }
        }
        self.init(isCluster: isCluster, version: version)
    }

    /// The leading number of ``version`` (0 when unknown).
    public var majorVersion: Int {
        Int(version.prefix { $0.isASCII && $0.isNumber }) ?? 0
    }

    /// Sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`) exists from Redis 7.0.
    public var supportsShardedPubSub: Bool { majorVersion >= 7 }
}

extension RedisCluster {
    /// Connects once to `endpoint` (database 0), reads `INFO server` and `INFO cluster`, closes
    /// the connection and reports what it found; fails with the first connection error (refused,
    /// timeout after `options.connectTimeoutMillis`, authentication…) — the caller retries.
    ///
    /// presenced's choice at start: `isCluster` → ``RedisCluster`` + ``RedisClusterSubscriber``;
    /// otherwise ``RedisConnection`` + ``RedisSubscriber`` (sharded when
    /// ``RedisServerInfo/supportsShardedPubSub``).
    public static func detect(
        endpoint: RedisEndpoint, host: RedisHost, options: RedisOptions = RedisOptions(),
        _ completion: @escaping (Result<RedisServerInfo, RedisError>) -> Void
    ) {
        var endpoint = endpoint
        endpoint.database = 0
        let connection = RedisConnection(endpoint: endpoint, host: host, options: options)
        var done = false
        // The callbacks hold the connection until the answer; finishing breaks the cycle.
        let finish: (Result<RedisServerInfo, RedisError>) -> Void = { result in
            guard !done else { return }
            done = true
            connection.onReady = nil
            connection.onDown = nil
            connection.shutdown()
            completion(result)
        }
        connection.onDown = { error in finish(.failure(error)) }
        connection.onReady = {
            var text = ""
            connection.send(RedisCommand("INFO", "server")) { result in
                switch result {
                case .success(let value): text = value.string ?? ""
                case .failure(let error): finish(.failure(error))
                }
            }
            connection.send(RedisCommand("INFO", "cluster")) { result in
                switch result {
                case .success(let value): finish(.success(RedisServerInfo(info: text + "\n" + (value.string ?? ""))))
                case .failure(let error): finish(.failure(error))
                }
            }
        }
        connection.start()
    }
}
