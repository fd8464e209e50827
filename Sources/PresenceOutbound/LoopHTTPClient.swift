import PresenceLoop
import WSCore

/// HTTP/1.1 client on one event loop: a keep-alive pool per origin, one request per connection
/// at a time. No threads and no blocking (host names are resolved on `LoopStream.resolverPool`);
/// everything runs on the loop's thread, where `send` and `shutdown` must be called and where
/// every `done` runs.
///
/// - **Pool.** Connections are keyed by origin (scheme, host, port). A request takes the most
///   recently used idle connection, else opens a new one while the origin has fewer than
///   `maxConnectionsPerOrigin`, else waits in the origin's queue (first come, first served).
///   A connection goes back to the pool after a response unless the response was HTTP/1.0, said
///   `Connection: close`, was read until close, or was followed by stray bytes. Idle connections
///   are closed after `idleTimeoutMillis` (default 4 s, below the 5 s keep-alive timeout of
///   Node's HTTP server, so the server rarely closes first) and as soon as the server closes them.
/// - **Timeout.** One timer per request covers everything: waiting in the queue, resolving,
///   connecting, TLS, sending and the whole response. When it fires, `done` gets `.timeout` and
///   the connection carrying the request is closed, never reused.
/// - **Retry.** A request whose *reused* connection breaks before any byte of the response has
///   arrived (the server closed it while idle, and the close crossed the request) is sent once more
///   on a newly opened connection, under the same timer. The request may then reach the server
///   twice: send only requests that are safe to repeat (the forwarder's carry an Idempotency-Key).
///   A fresh connection is never retried; the failure goes to `done`.
/// - **https.** TLS ≥ 1.2 through `TLSClientEngine`: certificate chain (system store or
///   `caFile`) and host name (or IP literal) checked, SNI sent.
/// - **Responses.** Interim 1xx answers are skipped; bodies by Content-Length, chunked, or until
///   close, at most `maxResponseBytes` (default 1 MiB; more is `.protocolError`), heads at most
///   64 KiB (`maxHeadBytes`).
package final class LoopHTTPClient {
    /// A complete response: status, header fields, body.
    package typealias Response = OutboundResponse

    /// The largest response body accepted unless `init` is told otherwise (`maxResponseBytes`).
    static let defaultMaxResponseBytes = 1 << 20
    /// The largest response head (status line and header fields) accepted.
    static let maxHeadBytes = 64 * 1024

    /// Why a request failed. Messages never carry request headers or bodies.
    package enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// Resolving, connecting, or a connection that failed (reset, closed) before the response began.
        case connect(String)
        /// The request's overall timeout passed.
        case timeout
        /// The TLS handshake or the certificate checks failed, or the TLS stream broke.
        case tls(String)
        /// The request cannot be sent, or the response breaks HTTP/1.1, is cut short, or is too large.
        case protocolError(String)
        /// The client was shut down before the request finished.
        case closed

        package var description: String {
            switch self {
            case .connect(let message): return "connection failed: \(message)"
            case .timeout: return "timed out"
            case .tls(let message): return "TLS failed: \(message)"
            case .protocolError(let message): return "HTTP protocol error: \(message)"
            case .closed: return "client shut down"
            }
        }
    }

    package unowned(unsafe) let loop: EventLoop
    /// PEM bundle trusted for https instead of the system store (nil: the system store).
    package let caFile: String?
    let maxConnectionsPerOrigin: Int
    /// The overall time one request may take, queueing included.
    package let timeoutMillis: Int64
    /// How long a connection may wait in the pool for its next request.
    let idleTimeoutMillis: Int64
    /// The largest response body accepted.
    let maxResponseBytes: Int
    private var origins: [Origin.Key: Origin] = [:]
    private var isShutDown = false

    package init(
        loop: EventLoop, caFile: String? = nil, maxConnectionsPerOrigin: Int = 8, timeoutMillis: Int64 = 10_000,
        idleTimeoutMillis: Int64 = 4_000, maxResponseBytes: Int = defaultMaxResponseBytes
    ) {
        precondition(maxConnectionsPerOrigin > 0)
        self.loop = loop
        self.caFile = caFile
        self.maxConnectionsPerOrigin = maxConnectionsPerOrigin
        self.timeoutMillis = timeoutMillis
        self.idleTimeoutMillis = idleTimeoutMillis
        self.maxResponseBytes = maxResponseBytes
    }

    /// Like `shutdown` (so drop the last reference on the loop's thread).
    deinit {
        shutdown()
    }

    /// Open connections (busy, idle or connecting), over every origin.
    var connectionCount: Int { origins.values.reduce(0) { $0 + $1.connections.count } }
    /// Connections waiting in the pool for a request.
    var idleConnectionCount: Int { origins.values.reduce(0) { $0 + $1.idle.count } }
    /// Requests waiting for a connection.
    var queuedCount: Int { origins.values.reduce(0) { $0 + $1.waiting.count } }

    /// Sends `method url.path+path` with `headers` and `body`; `done` runs once, on the loop's
    /// thread, from a later loop event (never inside `send`), with the response or a failure.
    ///
    /// `path` is appended to `url.path` and must start with `/` (empty means `url.path` or `/`);
    /// it may carry a query. `Host` and (when there is a body, or for POST/PUT/PATCH)
    /// `Content-Length` are set here (by `HTTPRequestEncoder`); `Host`, `Connection`,
    /// `Content-Length` and `Transfer-Encoding` in `headers` are ignored, as are fields whose name
    /// is not a token; CR, LF and NUL in values become spaces. Any status is a response (`done`
    /// decides what a 5xx means). `timeoutMillis` replaces the client's overall timeout for this
    /// request.
    package func send(
        method: String, url: OutboundURL, path: String, headers: HTTPHeaders, body: [UInt8],
        timeoutMillis: Int64? = nil, _ done: @escaping (Result<Response, Failure>) -> Void
    ) {
        assert(EventLoop.current == nil || EventLoop.current === loop, "LoopHTTPClient.send off its loop's thread")
        guard !isShutDown else { return later(done, .closed) }
        let request: [UInt8]
        do {
            request = try HTTPRequestEncoder.encode(method: method, url: url, path: path, headers: headers, body: body)
        } catch {
            return later(done, Self.failure(error))
        }
        let key = Origin.Key(url)
        let exchange = Exchange(method: method, request: request, origin: key, done: done)
        exchange.timer = loop.schedule(after: timeoutMillis ?? self.timeoutMillis) { [weak self, weak exchange] in
            guard let self, let exchange else { return }
            self.timedOut(exchange)
        }
        let origin: Origin
        if let existing = origins[key] {
            origin = existing
        } else {
            origin = Origin(key: key)
            origins[key] = origin
        }
        origin.waiting.append(exchange)
        dispatch(origin)
    }

    /// Closes every connection; every request not finished yet gets `.closed` (before `shutdown`
    /// returns), and so does every later `send`.
    package func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        let all = Array(origins.values)
        origins = [:]
        var unfinished: [Exchange] = []
        for origin in all {
            for connection in origin.connections {
                if let exchange = connection.exchange { unfinished.append(exchange) }
                cancelIdleTimer(connection)
                connection.close()
            }
            unfinished += origin.waiting
        }
        for exchange in unfinished { finish(exchange, .failure(.closed)) }
    }

    // MARK: - Pool

    /// Hands waiting requests to idle connections, or to new ones while the origin has room.
    private func dispatch(_ origin: Origin) {
        while let exchange = origin.waiting.first {
            if !exchange.needsFreshConnection, let connection = origin.idle.popLast() {
                origin.waiting.removeFirst()
                cancelIdleTimer(connection)
                connection.start(exchange)
            } else if origin.connections.count < maxConnectionsPerOrigin {
                origin.waiting.removeFirst()
                let connection = Connection(client: self, origin: origin.key, caFile: caFile)
                origin.connections.append(connection)
                connection.start(exchange)
                connection.open()
            } else if exchange.needsFreshConnection, let stale = origin.idle.popLast() {
                // Make room for the retry's fresh connection.
                remove(stale, from: origin)
                stale.close()
            } else {
                break
            }
        }
        if origin.isUnused, origins[origin.key] === origin { origins[origin.key] = nil }
    }

    private func remove(_ connection: Connection, from origin: Origin) {
        cancelIdleTimer(connection)
        origin.connections.removeAll { $0 === connection }
        origin.idle.removeAll { $0 === connection }
    }

    private func cancelIdleTimer(_ connection: Connection) {
        if let timer = connection.idleTimer {
            loop.cancelScheduled(timer)
            connection.idleTimer = nil
        }
    }

    /// Runs `done` (after the exchange's timer is cancelled).
    private func finish(_ exchange: Exchange, _ result: Result<Response, Failure>) {
        if let timer = exchange.timer {
            loop.cancelScheduled(timer)
            exchange.timer = nil
        }
        exchange.complete(result)
    }

    private func later(_ done: @escaping (Result<Response, Failure>) -> Void, _ failure: Failure) {
        _ = loop.schedule(after: 0) { done(.failure(failure)) }
    }

    private static func failure(_ error: OutboundError) -> Failure {
        switch error {
        case .connect(let message): return .connect(message)
        case .tls(let message): return .tls(message)
        case .protocolError(let message): return .protocolError(message)
        case .timeout: return .timeout
        }
    }

    // MARK: - Events from connections and timers

    /// `exchange`'s response is complete on `connection`.
    func connectionCompleted(_ connection: Connection, _ exchange: Exchange, _ response: Response, reusable: Bool) {
        if let origin = origins[connection.origin] {
            if reusable && !isShutDown {
                origin.idle.append(connection)
                connection.idleTimer = loop.schedule(after: idleTimeoutMillis) { [weak self, weak connection] in
                    guard let self, let connection else { return }
                    connection.idleTimer = nil
                    self.connectionLost(connection)
                }
            } else {
                remove(connection, from: origin)
                connection.close()
            }
            dispatch(origin)
        } else {
            connection.close()
        }
        finish(exchange, .success(response))
    }

    /// `exchange` failed on `connection` (now closed); `retry`: the connection was reused and
    /// broke before any response byte.
    func connectionFailed(_ connection: Connection, _ exchange: Exchange, _ failure: Failure, retry: Bool) {
        connection.close()
        guard let origin = origins[connection.origin] else { return finish(exchange, .failure(failure)) }
        remove(connection, from: origin)
        if retry && !exchange.retried && !exchange.isFinished {
            exchange.retried = true
            exchange.needsFreshConnection = true
            exchange.connection = nil
            origin.waiting.insert(exchange, at: 0)
            dispatch(origin)
            return
        }
        dispatch(origin)
        finish(exchange, .failure(failure))
    }

    /// A connection without a request ended or became unusable (closed by the server while idle,
    /// idle too long, unexpected bytes): it leaves the pool.
    package func connectionLost(_ connection: Connection) {
        connection.close()
        guard let origin = origins[connection.origin] else { return }
        remove(connection, from: origin)
        dispatch(origin)
    }

    /// The overall timer of `exchange` fired.
    private func timedOut(_ exchange: Exchange) {
        exchange.timer = nil
        guard !exchange.isFinished else { return }
        if let origin = origins[exchange.origin] {
            if let connection = exchange.connection {
                remove(connection, from: origin)
                connection.close()
            } else {
                origin.waiting.removeAll { $0 === exchange }
            }
            dispatch(origin)
        }
        finish(exchange, .failure(.timeout))
    }
}
