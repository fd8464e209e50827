import CSystem
import PresenceLoop
import PresenceOutbound
import WSCore

/// The protocol layer of one loop: reads HTTP request heads, answers plain requests, performs
/// the WebSocket upgrade, then decodes frames, answers pings and closes, keeps the connection
/// alive with server pings, and hands complete messages to the application.
package final class WebSocketServer: ConnectionHandler {
    let config: Config
    /// The WebSocket application; nil serves plain HTTP endpoints only.
    let application: (any WebSocketApplication)?
    let endpoints: HTTPEndpoints
    unowned(unsafe) let loop: EventLoop
    private var states: [ConnectionState] = []
    /// The request parsers of the connections in their HTTP phase, by slot.
    private var parsers: [UInt32: HTTPParserBox] = [:]
    /// Parsers of finished HTTP phases, reset for the next connections: a connection storm then
    /// allocates no parser per connection (fewer short-lived allocations between the long-lived
    /// ones a connection leaves behind).
    private var spareParsers: [HTTPParserBox] = []
    private static let maxSpareParsers = 256
    /// Request ids for requests that bring none (this loop's thread only).
    private let requestIDs = RequestIDSource()

    init(config: Config, application: (any WebSocketApplication)?, endpoints: HTTPEndpoints, loop: EventLoop) {
        self.config = config
        self.application = application
        self.endpoints = endpoints
        self.loop = loop
        loop.closeLingerMillis = config.closeTimeoutMillis
    }

    // MARK: Sending (for applications)

    /// Queues a frame for a connection; a connection whose backlog is over the outbound cap is
    /// closed as a slow consumer (4008). `droppable` frames (typing) are skipped instead while
    /// the backlog is over half the cap.
    @inline(__always)
    func send(_ id: ConnectionID, _ frame: SharedBytes, droppable: Bool = false) {
        if queue(id, frame, droppable: droppable) { loop.counters.sent(frame) }
    }

    /// `send` without counting the frame as sent (a fan-out counts its recipients in bulk):
    /// true when the frame was queued.
    @inline(__always)
    func queue(_ id: ConnectionID, _ frame: SharedBytes, droppable: Bool) -> Bool {
        let cap = config.maxOutboundBytes
        switch loop.enqueue(id, frame, limit: droppable ? cap / 2 : cap) {
        case .queued:
            return true
        case .overLimit:
            if droppable { loop.counters.droppedFrames &+= 1 } else { closeSlowConsumer(id) }
            return false
        case .closed:
            return false
        }
    }

    /// Sends a close frame with `code` and closes the connection gracefully.
    func close(_ id: ConnectionID, code: CloseCode, reason: String = "") {
        guard loop.isOpen(id) else { return }
        loop.send(id, FrameEncoder.closeFrame(code, reason: reason))
        loop.counters.framesOut.add(.close)
        loop.close(id)
    }

    /// Closes a connection whose backlog passed the outbound cap with 4008, dropping what waits
    /// (the frame that did not fit counts as dropped).
    func closeSlowConsumer(_ id: ConnectionID) {
        guard loop.isOpen(id) else { return }
        Log.debug("closing slow consumer", ["connection": "\(id)", "queued_bytes": "\(loop.queuedBytes(id))"])
        loop.counters.droppedFrames &+= 1
        loop.counters.slowConsumerCloses &+= 1
        loop.discardQueued(id)
        close(id, code: .slowConsumer, reason: "slow consumer")
    }

    // MARK: ConnectionHandler

    package func connectionOpened(_ id: ConnectionID, loop: EventLoop) {
        let s = Int(id.slot)
        states.extendForSlot(s, with: ConnectionState())
        states[s].phase = .http
        parsers[id.slot] = spareParsers.popLast() ?? HTTPParserBox()
        states[s].unansweredPings = 0
        loop.setDeadline(id, at: loop.now + config.handshakeTimeoutMillis)
    }

    package func connectionReceived(_ id: ConnectionID, _ bytes: UnsafeMutableRawBufferPointer, loop: EventLoop) {
        let s = Int(id.slot)
        switch states[s].phase {
        case .http:
            let consumed = readHTTP(id, bytes)
            // The upgrade's 101 may share a segment with the first frames.
            if loop.isOpen(id), states[s].phase == .websocket { readFrames(id, bytes, from: consumed) }
        case .websocket:
            readFrames(id, bytes, from: 0)
        case .responding, .free:
            break  // an answer is still pending (ws-token): input meanwhile is dropped, never parsed as frames
        }
    }

    package func connectionDeadline(_ id: ConnectionID, loop: EventLoop) {
        let s = Int(id.slot)
        switch states[s].phase {
        case .http, .responding:
            // Handshake (or keep-alive) timeout: a slowloris gets nothing more.
            loop.abort(id)
        case .websocket:
            if states[s].unansweredPings >= 2 {
                close(id, code: .policyViolation, reason: "no pong")
                return
            }
            states[s].unansweredPings += 1
            loop.send(id, ControlFrames.ping)
            loop.counters.framesOut.add(.ping)
            loop.setDeadline(id, at: loop.now + config.pingIntervalMillis)
        case .free:
            break
        }
    }

    package func connectionClosed(_ id: ConnectionID, loop: EventLoop) {
        let s = Int(id.slot)
        let wasWebSocket = states[s].phase == .websocket
        states[s] = ConnectionState()
        if !wasWebSocket { recycleParser(of: id) }
        if wasWebSocket { application?.closed(id, server: self) }
    }

    // MARK: HTTP phase

    /// Takes the connection's parser out of the side table and keeps it, reset, for a next one.
    private func recycleParser(of id: ConnectionID) {
        guard let box = parsers.removeValue(forKey: id.slot), spareParsers.count < Self.maxSpareParsers else { return }
        box.parser.reset()
        box.bodyHead = nil
        box.body = []
        box.bodyLeft = 0
        spareParsers.append(box)
    }

    /// Parses request heads (several, when pipelined); returns the bytes consumed before the
    /// WebSocket phase began (all of them otherwise).
    private func readHTTP(_ id: ConnectionID, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        let s = Int(id.slot)
        var offset = 0
        while offset < bytes.count && loop.isOpen(id) && states[s].phase == .http {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard let http = parsers[id.slot] else { return bytes.count }
            if let head = http.bodyHead {
                let take = min(http.bodyLeft, rest.count)
                http.body += UnsafeRawBufferPointer(rebasing: rest[..<take])
                http.bodyLeft -= take
                offset += take
                if http.bodyLeft == 0 {
                    let body = http.body
                    http.bodyHead = nil
                    http.body = []
                    handleRequest(id, head, body: body)
                }
                continue
            }
            switch http.parser.feed(rest) {
            case .needMoreData:
                return bytes.count
            case .failure(let error):
                respond(
                    id, error: error.status, code: error == .headTooLarge ? "header_too_large" : "bad_request",
                    message: "\(error)", requestID: nil, keepAlive: false)
                return bytes.count
            case .complete(let head, let used):
                offset += used
                http.parser.reset()
                if let length = WebSocketServer.smallBodyLength(head), application?.acceptsUpgrade(path: head.path) != true {
                    // A small POST body (dev-token's JSON) is read before the request is answered.
                    http.bodyHead = head
                    http.body.reserveCapacity(length)
                    http.bodyLeft = length
                    continue
                }
                handleRequest(id, head)
            }
        }
        return offset
    }

    /// Request bodies up to this size are read (the JSON of dev-token, disconnect and publish:
    /// a 4096-byte content can take six times that once escaped).
    static let maxBodyBytes = 32 * 1024

    /// The Content-Length of a POST whose body is read before answering: 1...maxBodyBytes and no
    /// Transfer-Encoding. Other bodies are not read (the connection closes after the answer).
    static func smallBodyLength(_ head: HTTPRequestHead) -> Int? {
        guard head.method == "POST", head.headers["transfer-encoding"] == nil,
            let length = head.headers["content-length"].flatMap({ Int($0) }), length > 0, length <= maxBodyBytes
        else { return nil }
        return length
    }

    private func handleRequest(_ id: ConnectionID, _ head: HTTPRequestHead, body: [UInt8]? = nil) {
        let requestID = requestIDs.accept(head.headers["x-request-id"])
        if let application, application.acceptsUpgrade(path: head.path) {
            upgrade(id, head, requestID: requestID)
            return
        }
        // A request with a body is answered, then the connection closes: a large or chunked
        // body is not read at all, and input that arrives while an answer is pending is dropped.
        let hasBody = (head.headers["content-length"].flatMap { Int($0) } ?? 0) > 0 || head.headers["transfer-encoding"] != nil
        let keepAlive = head.keepAlive && !hasBody
        let s = Int(id.slot)
        // Until the answer is out (it may come later, from another thread's work), input waits.
        states[s].phase = .responding
        loop.setDeadline(id, at: loop.now + config.handshakeTimeoutMillis + 5_000)
        endpoints.respond(to: head, body: body, requestID: requestID, connection: id, loop: loop) { [unowned self] response in
            guard self.loop.isOpen(id), self.states[s].phase == .responding else { return }
            self.states[s].phase = .http
            self.send(response, to: id, keepAlive: keepAlive)
        }
    }

    private func upgrade(_ id: ConnectionID, _ head: HTTPRequestHead, requestID: String) {
        switch ServerHandshake.validate(head) {
        case .failure(let rejection):
            loop.counters.upgrades.add(rejection.status == 426 ? .upgradeRequired : .badRequest)
            Log.debug("upgrade refused", requestID: requestID, ["status": "\(rejection.status)", "reason": rejection.reason])
            var headers = rejection.headers
            headers.add("X-Request-ID", requestID)
            respond(
                id, error: rejection.status, code: rejection.status == 426 ? "upgrade_required" : "bad_upgrade",
                message: rejection.reason, requestID: requestID, keepAlive: false, headers: headers)
        case .success(let accepted):
            guard let application else { return }
            let s = Int(id.slot)
            // Until the decision (it may wait for Redis), input is not parsed: a client sends
            // frames only after the 101.
            states[s].phase = .responding
            application.authorize(head, requestID: requestID, server: self) { [unowned self] decision in
                guard self.loop.isOpen(id), self.states[s].phase == .responding else {
                    if case .success(let grant) = decision { application.abandoned(grant: grant, server: self) }
                    return
                }
                switch decision {
                case .success(let grant):
                    self.accept(id, accepted, grant: grant, requestID: requestID)
                case .failure(let refusal):
                    self.loop.counters.upgrades.add(UpgradeResult.of(refusal: refusal.status, code: refusal.code))
                    Log.debug("upgrade refused", requestID: requestID, ["status": "\(refusal.status)", "code": refusal.code])
                    self.states[s].phase = .http
                    var headers = HTTPHeaders()
                    headers.add("X-Request-ID", requestID)
                    self.respond(
                        id, error: refusal.status, code: refusal.code, message: refusal.message,
                        requestID: requestID, keepAlive: false, headers: headers)
                }
            }
        }
    }

    private func accept(_ id: ConnectionID, _ accepted: ServerHandshake.Accepted, grant: UpgradeGrant, requestID: String) {
        guard let application else { return }
        let s = Int(id.slot)
        var headers = HTTPHeaders()
        headers.add("X-Request-ID", requestID)
        loop.send(id, SharedBytes.copying(accepted.response(extraHeaders: headers)))
        loop.counters.upgrades.add(.ok)
        Log.debug("upgraded", requestID: requestID, ["user": grant.claims?.userID ?? ""])
        states[s].phase = .websocket
        recycleParser(of: id)
        states[s].frames = FrameDecoder(role: .server, maxMessageSize: config.maxMessageBytes)
        loop.setDeadline(id, at: loop.now + config.pingIntervalMillis)
        application.opened(id, grant: grant, server: self)
    }

    private func respond(
        _ id: ConnectionID, error status: Int, code: String, message: String,
        requestID: String?, keepAlive: Bool, headers: HTTPHeaders = HTTPHeaders()
    ) {
        var headers = headers
        if requestID == nil { headers.add("X-Request-ID", requestIDs.make()) }
        let response = HTTPEndpoints.errorResponse(status: status, code: code, message: message, headers: headers)
        send(response, to: id, keepAlive: keepAlive)
    }

    private func send(_ response: HTTPResponse, to id: ConnectionID, keepAlive: Bool) {
        var response = response
        response.headers.add("Connection", keepAlive ? "keep-alive" : "close")
        loop.send(id, SharedBytes.copying(response.serialized()))
        if keepAlive {
            loop.setDeadline(id, at: loop.now + config.handshakeTimeoutMillis)
        } else {
            loop.close(id)
        }
    }

    // MARK: WebSocket phase

    private func readFrames(_ id: ConnectionID, _ bytes: UnsafeMutableRawBufferPointer, from start: Int) {
        let s = Int(id.slot)
        var consumed = start
        while true {
            let output = states[s].frames.next(bytes, consumed: &consumed)
            switch output {
            case .needMoreData:
                return
            case .text(let payload):
                loop.counters.framesIn.add(.text)
                states[s].unansweredPings = 0
                application?.received(id, text: true, payload: payload, server: self)
            case .binary(let payload):
                loop.counters.framesIn.add(.binary)
                states[s].unansweredPings = 0
                application?.received(id, text: false, payload: payload, server: self)
            case .ping(let payload):
                loop.counters.framesIn.add(.ping)
                // Under the outbound cap like any frame: a ping flood from a client that does
                // not read its pongs ends as a slow consumer (4008), not as unbounded memory.
                send(id, FrameEncoder.serverFrame(.pong, payload: payload))
            case .pong:
                loop.counters.framesIn.add(.pong)
                states[s].unansweredPings = 0
            case .close(let code, _):
                loop.counters.framesIn.add(.close)
                // Answer with the same code (an empty close answers an empty close).
                if let code {
                    loop.send(id, FrameEncoder.closeFrame(CloseCode(rawValue: code)))
                } else {
                    loop.send(id, ControlFrames.emptyClose)
                }
                loop.counters.framesOut.add(.close)
                loop.close(id)
                return
            case .failure(let code):
                close(id, code: code)
                return
            }
            guard loop.isOpen(id) else { return }
        }
    }
}

/// Control frames that never change, encoded once for every connection.
enum ControlFrames {
    static let ping = FrameEncoder.serverFrame(.ping, payload: UnsafeRawBufferPointer(start: nil, count: 0))
    static let emptyClose = FrameEncoder.serverFrame(.close, payload: UnsafeRawBufferPointer(start: nil, count: 0))
}

/// Request ids (`X-Request-ID`) for this loop's requests: the caller's when it is usable
/// (`RequestID.accept`'s rule), otherwise 128 bits of a ChaCha20 key stream keyed once per loop
/// from OpenSSL's CSPRNG, as 32 lowercase hex digits (the format of `RequestID.make`).
///
/// `RequestID.make` reads `SystemRandomNumberGenerator` twice per id, and each read is a
/// `getrandom` system call: 2 per upgrade (38,000 per 19,000 set-ups, perf stat). `RAND_bytes`
/// in 4 KiB batches removed the calls but cost 4,100 instructions per id in OpenSSL's DRBG
/// (callgrind); the key stream costs a few per byte.
final class RequestIDSource {
    private var pool = [UInt8](repeating: 0, count: 4096)
    private var used = 4096
    private let zeros = [UInt8](repeating: 0, count: 4096)
    /// ChaCha20 encrypting zeros; nil when OpenSSL refused it (then `RequestID.make`).
    private let cipher: OpaquePointer?

    init() {
        var key = [UInt8](repeating: 0, count: 48)  // 32-byte key, 16-byte counter + nonce
        let keyed = RAND_bytes(&key, 48) == 1
        let ctx = keyed ? EVP_CIPHER_CTX_new() : nil
        if let ctx, EVP_EncryptInit_ex(ctx, EVP_chacha20(), nil, key, Array(key[32...])) == 1 {
            cipher = ctx
        } else {
            if let ctx { EVP_CIPHER_CTX_free(ctx) }
            cipher = nil
        }
        for i in key.indices { key[i] = 0 }
    }

    deinit {
        if let cipher { EVP_CIPHER_CTX_free(cipher) }
    }

    func accept(_ given: String?) -> String {
        if let given, !given.isEmpty { return RequestID.accept(given) }
        return make()
    }

    func make() -> String {
        guard let cipher else { return RequestID.make() }
        if used + 16 > pool.count {
            var written: Int32 = 0
            let ok = pool.withUnsafeMutableBufferPointer { out in
                EVP_EncryptUpdate(cipher, out.baseAddress, &written, zeros, Int32(zeros.count))
            }
            guard ok == 1, written == Int32(pool.count) else { return RequestID.make() }
            used = 0
        }
        let start = used
        used += 16
        return pool.withUnsafeBufferPointer { bytes in
            String(unsafeUninitializedCapacity: 32) { out in
                let digits: StaticString = "0123456789abcdef"
                let hex = digits.utf8Start
                for i in 0..<16 {
                    let b = bytes[start + i]
                    out[2 * i] = hex[Int(b >> 4)]
                    out[2 * i + 1] = hex[Int(b & 0xF)]
                }
                return 32
            }
        }
    }
}
