import WSCore

extension LoopHTTPClient {
    /// One keep-alive HTTP/1.1 connection of the pool: a `LoopStream` carrying one exchange at a
    /// time (no pipelining). It reads the response (head with `HTTPResponseParser`, interim 1xx
    /// answers skipped, body with `HTTPBodyDecoder`) and tells the client how the exchange ended
    /// and whether the connection may carry another request.
    package final class Connection: LoopStreamDelegate {
        let origin: Origin.Key
        /// The client; weak so a connection the loop still holds never reaches a freed client.
        weak var client: LoopHTTPClient?
        /// Set right after init (the stream needs the connection as its delegate).
        private(set) var stream: LoopStream!
        /// The exchange in progress (nil while idle).
        private(set) var exchange: Exchange?
        /// Responses completed on this connection (a reused connection has served at least one).
        private(set) var served = 0
        /// The idle timeout (`EventLoop.schedule` id) while the connection waits in the pool.
        var idleTimer: UInt64?
        private var parser = HTTPResponseParser(maxHeadSize: LoopHTTPClient.maxHeadBytes)
        private var head: HTTPResponseHead?
        private var decoder: HTTPBodyDecoder?
        /// Whether the response so far allows another request on this connection.
        private var persistent = true
        /// Any byte of the current exchange's response has arrived.
        private var answered = false
        private var isClosed = false

        init(client: LoopHTTPClient, origin: Origin.Key, caFile: String?) {
            self.client = client
            self.origin = origin
            stream = LoopStream(
                loop: client.loop, host: origin.host, port: origin.port, tls: origin.isTLS,
                caFile: caFile, delegate: self)
        }

        /// Opens the stream (resolve, connect, TLS); requests may be started before it is ready.
        func open() { stream.start() }

        /// Sends `exchange`'s request and starts reading its response.
        func start(_ exchange: Exchange) {
            self.exchange = exchange
            exchange.connection = self
            parser.reset()
            head = nil
            decoder = nil
            persistent = true  // until the response says otherwise
            answered = false
            stream.write(exchange.request)
        }

        /// Closes the stream at once; nothing is reported afterwards.
        func close() {
            isClosed = true
            exchange = nil
            stream.close()
        }

        // MARK: - LoopStreamDelegate

        package func streamConnected(_ stream: LoopStream) {}

        package func streamReceived(_ stream: LoopStream, _ bytes: UnsafeRawBufferPointer) {
            guard !isClosed, let client else { return }
            guard let exchange else {
                // Bytes while idle (a 408 before closing, garbage): the connection is unusable.
                return client.connectionLost(self)
            }
            answered = true
            do {
                try consume(bytes, for: exchange, client: client)
            } catch {
                client.connectionFailed(self, exchange, .protocolError(Self.message(error)), retry: false)
            }
        }

        package func streamClosed(_ stream: LoopStream, _ reason: LoopStream.Failure) {
            guard !isClosed, let client else { return }
            isClosed = true
            guard let exchange else { return client.connectionLost(self) }
            if reason == .eof, head != nil, decoder != nil {
                // The end of a read-until-close body (or a body cut short).
                do {
                    try decoder!.finish()
                    return complete(exchange, client: client, reusable: false)
                } catch {
                    return client.connectionFailed(self, exchange, .protocolError(Self.message(error)), retry: false)
                }
            }
            let failure: Failure
            switch reason {
            case .resolve(let message), .connect(let message): failure = .connect(message)
            case .tls(let message): failure = .tls(message)
            case .eof:
                failure =
                    answered
                    ? .protocolError("connection closed before the response was complete")
                    : .connect("connection closed before a response")
            case .io:
                failure =
                    answered
                    ? .protocolError("connection failed inside the response: \(reason)")
                    : .connect(reason.description)
            }
            // A reused connection that broke before answering was most likely closed by the server
            // while idle: the client may send the request again on a fresh connection.
            client.connectionFailed(self, exchange, failure, retry: served > 0 && !answered)
        }

        // MARK: - Response

        /// Feeds response bytes; completes the exchange when the response is whole.
        private func consume(_ bytes: UnsafeRawBufferPointer, for exchange: Exchange, client: LoopHTTPClient) throws(OutboundError) {
            var offset = 0
            while true {
                if head == nil {
                    guard offset < bytes.count else { return }
                    switch parser.feed(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
                    case .needMoreData:
                        return
                    case .failure(let error):
                        throw .protocolError("malformed response head: \(error)")
                    case .complete(let parsed, let consumed):
                        offset += consumed
                        if parsed.status == 101 { throw .protocolError("unexpected 101 Switching Protocols") }
                        if parsed.status < 200 {
                            parser.reset()  // an interim answer (100 Continue, 103 Early Hints)
                            continue
                        }
                        let framing = try HTTPBodyDecoder.framing(
                            status: parsed.status, headers: parsed.headers,
                            isHeadRequest: exchange.method == "HEAD",
                            limit: client.maxResponseBytes)
                        head = parsed
                        decoder = HTTPBodyDecoder(framing: framing, limit: client.maxResponseBytes)
                        if parsed.versionMinor == 0 || parsed.headers.containsToken("close", in: "Connection")
                            || framing == .untilClose
                            || (parsed.headers.contains("transfer-encoding") && parsed.headers.contains("content-length"))
                        {
                            persistent = false
                        }
                    }
                }
                if offset < bytes.count {
                    offset += try decoder!.feed(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                }
                if decoder!.isComplete {
                    // Bytes after the response: the server is not speaking one-request-at-a-time HTTP.
                    if offset < bytes.count { persistent = false }
                    return complete(exchange, client: client, reusable: persistent)
                }
                if offset >= bytes.count { return }
            }
        }

        private func complete(_ exchange: Exchange, client: LoopHTTPClient, reusable: Bool) {
            let response = Response(status: head!.status, headers: head!.headers, body: decoder!.takeBody())
            self.exchange = nil
            head = nil
            decoder = nil
            served += 1
            client.connectionCompleted(self, exchange, response, reusable: reusable && !isClosed)
        }

        private static func message(_ error: OutboundError) -> String {
            switch error {
            case .connect(let message), .tls(let message), .protocolError(let message): return message
            case .timeout: return "timed out"
            }
        }
    }
}
