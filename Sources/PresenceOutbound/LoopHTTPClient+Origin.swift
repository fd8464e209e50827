extension LoopHTTPClient {
    /// The connections to one origin (scheme, host, port) and the requests waiting for one.
    package final class Origin {
        /// What identifies an origin: connections are shared by every URL with the same key.
        struct Key: Hashable {
            var isTLS: Bool
            var host: String
            var port: UInt16

            init(_ url: OutboundURL) {
                isTLS = url.isTLS
                host = url.host
                port = url.port
            }
        }

        let key: Key
        /// Every open connection (busy, idle or still connecting), at most `maxConnectionsPerOrigin`.
        var connections: [Connection] = []
        /// Connections waiting for a request, most recently used last (taken from the end).
        var idle: [Connection] = []
        /// Requests waiting for a connection, oldest first.
        var waiting: [Exchange] = []

        init(key: Key) { self.key = key }

        /// Nothing open and nothing waiting: the origin can be forgotten.
        var isUnused: Bool { connections.isEmpty && waiting.isEmpty }
    }
}
