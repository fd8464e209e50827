import Glibc
import WSCore

@testable import PresenceD
@testable import PresenceLoop

/// A blocking loopback TCP client with a receive timeout, for tests.
final class TestSocket: @unchecked Sendable {
    let fd: Int32

    /// `source`, when given, is the local address to connect from (e.g. 127.0.0.2).
    init(port: UInt16, host: String = "127.0.0.1", source: String? = nil, receiveTimeoutMillis: Int = 5000) throws {
        var storage = sockaddr_storage()
        let length = try Sockets.fillAddress(host, port: port, into: &storage)
        fd = socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_storage()
            let localLength = try Sockets.fillAddress(source, port: 0, into: &local)
            let rc = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, localLength) } }
            guard rc == 0 else {
                let e = errno
                close(fd)
                throw SystemError(call: "bind", errno: e)
            }
        }
        var tv = timeval(tv_sec: receiveTimeoutMillis / 1000, tv_usec: (receiveTimeoutMillis % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw SystemError(call: "connect", errno: e)
        }
    }

    deinit { close(fd) }

    func setReceiveBuffer(_ bytes: Int32) {
        var v = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SystemError(call: "send", errno: errno) }
            offset += n
        }
    }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// Reads once; [] on EOF; throws on timeout or error.
    func read(max: Int = 65536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        var n: Int
        repeat {
            n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
        } while n < 0 && errno == EINTR
        if n < 0 { throw SystemError(call: "recv", errno: errno) }
        return Array(buffer[0..<n])
    }

    /// Reads until EOF (or timeout); returns everything read.
    func readToEnd() throws -> [UInt8] {
        var all: [UInt8] = []
        while true {
            let chunk = try read()
            if chunk.isEmpty { return all }
            all += chunk
        }
    }

    /// Reads a whole HTTP response (head + Content-Length body).
    func readHTTPResponse() throws -> (head: HTTPResponseHead, body: [UInt8]) {
        var parser = HTTPResponseParser()
        var pending: [UInt8] = []
        while true {
            let chunk = try read()
            if chunk.isEmpty { throw SystemError(call: "recv (EOF before response)", errno: 0) }
            let result = chunk.withUnsafeBytes { parser.feed($0) }
            switch result {
            case .needMoreData: continue
            case .failure(let e): throw SystemError(call: "response parse \(e)", errno: 0)
            case .complete(let head, let used):
                pending = Array(chunk[used...])
                let length = Int(head.headers["content-length"] ?? "0") ?? 0
                while pending.count < length {
                    let more = try read()
                    if more.isEmpty { break }
                    pending += more
                }
                return (head, pending)
            }
        }
    }
}

/// What a test client decoded from the server.
enum ReceivedFrame: Equatable {
    case text(String), binary([UInt8]), ping([UInt8]), pong([UInt8]), close(UInt16?), failure(UInt16), eof
}

/// A WebSocket client over `TestSocket`, using WSCore's client handshake and codec.
final class TestWebSocket: @unchecked Sendable {
    let socket: TestSocket
    private var decoder = FrameDecoder(role: .client, maxMessageSize: 64 << 20)
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var mask: UInt32 = 0x1234_5678

    init(
        port: UInt16, path: String = "/", headers: HTTPHeaders = HTTPHeaders(), source: String? = nil,
        receiveTimeoutMillis: Int = 5000
    ) throws {
        socket = try TestSocket(port: port, source: source, receiveTimeoutMillis: receiveTimeoutMillis)
        let handshake = ClientHandshake(host: "127.0.0.1:\(port)", path: path, extraHeaders: headers)
        try socket.write(handshake.requestBytes())
        let (head, rest) = try TestWebSocket.readHead(socket)
        guard case .success = handshake.verify(head) else {
            throw SystemError(call: "handshake: status \(head.status)", errno: 0)
        }
        pending = rest
    }

    private static func readHead(_ socket: TestSocket) throws -> (HTTPResponseHead, [UInt8]) {
        var parser = HTTPResponseParser()
        while true {
            let chunk = try socket.read()
            if chunk.isEmpty { throw SystemError(call: "handshake EOF", errno: 0) }
            switch chunk.withUnsafeBytes({ parser.feed($0) }) {
            case .needMoreData: continue
            case .failure(let e): throw SystemError(call: "handshake parse \(e)", errno: 0)
            case .complete(let head, let used): return (head, Array(chunk[used...]))
            }
        }
    }

    func send(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true) throws {
        mask = mask &* 1_103_515_245 &+ 12345
        try socket.write(FrameEncoder.clientFrame(opcode, payload: payload, maskKey: mask, fin: fin))
    }

    func sendText(_ text: String) throws { try send(.text, Array(text.utf8)) }

    /// The next frame from the server (control frames included).
    func receive() throws -> ReceivedFrame {
        while true {
            if pendingOffset < pending.count {
                var consumed = pendingOffset
                let output = pending.withUnsafeMutableBytes { decoder.next($0, consumed: &consumed) }
                pendingOffset = consumed
                switch output {
                case .needMoreData: break
                case .text(let p): return .text(String(decoding: p, as: UTF8.self))
                case .binary(let p): return .binary(Array(p))
                case .ping(let p): return .ping(Array(p))
                case .pong(let p): return .pong(Array(p))
                case .close(let code, _): return .close(code)
                case .failure(let code): return .failure(code.rawValue)
                }
                if pendingOffset >= pending.count {
                    pending = []
                    pendingOffset = 0
                } else {
                    continue
                }
            }
            let chunk = try socket.read()
            if chunk.isEmpty { return .eof }
            pending = chunk
            pendingOffset = 0
        }
    }

    /// The next data message, answering nothing and skipping pings.
    func receiveMessage() throws -> ReceivedFrame {
        while true {
            let frame = try receive()
            if case .ping = frame { continue }
            return frame
        }
    }
}
