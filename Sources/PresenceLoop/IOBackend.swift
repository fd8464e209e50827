import CSystem
import Glibc

/// Which kernel interface the loops run on.
package enum IOBackendKind: String, Sendable {
    case uring, epoll
}

/// How a backend started a send.
package enum SendStart {
    /// Written synchronously (epoll) and consumed from the queue; anything left means the socket is full.
    case wrote
    /// Submitted asynchronously (io_uring) covering this many frames; completion follows.
    case submitted(frames: Int)
    /// The socket failed.
    case failed(Int32)
}

/// The kernel side of one event loop: io_uring (completions) or epoll (readiness).
///
/// A backend reports what happened by calling the loop's `backend…` methods from inside `poll`;
/// it knows sockets and buffers, never protocols.
package protocol IOBackend: AnyObject {
    var kind: IOBackendKind { get }
    /// Starts accepting on a listening socket.
    func addListener(_ fd: Int32, index: Int) throws
    /// Pauses (true) or resumes (false) accepting, e.g. while out of file descriptors.
    func setListenerPaused(_ index: Int, _ paused: Bool)
    /// Starts delivering received bytes for a newly accepted connection.
    func startReceiving(slot: UInt32, generation: UInt32, fd: Int32) -> Bool
    /// Sends what is queued: synchronously as far as the socket takes it (consuming the queue), or
    /// by submitting an asynchronous send that leaves the queue untouched until it completes.
    func send(slot: UInt32, generation: UInt32, fd: Int32, queue: inout SendQueue, pool: FramePool) -> SendStart
    /// Asks to be told (`backendWritable`) when a blocked socket can take more (epoll).
    func setWantsWritable(slot: UInt32, generation: UInt32, fd: Int32, _ wants: Bool)
    /// Whether receives and sends complete asynchronously (a closing socket must wait for them).
    var hasAsyncOperations: Bool { get }
    /// Waits at most `timeoutMillis` (-1 = forever) and reports every event to `loop`.
    func poll(timeoutMillis: Int64, loop: EventLoop)
    /// Makes a blocked `poll` return soon; callable from any thread.
    func wake()
    /// Watches a socket whose non-blocking connect is in progress; reports `backendWritable` when it ends.
    func startConnecting(slot: UInt32, generation: UInt32, fd: Int32)
    /// Stops watching a connect that is being abandoned (io_uring cancels its poll).
    func cancelConnect(slot: UInt32, generation: UInt32)
    /// The connect succeeded: start delivering received bytes.
    func connectCompleted(slot: UInt32, generation: UInt32, fd: Int32)
    /// Re-arms a receive that the kernel ended (io_uring multishot without F_MORE).
    func rearmReceive(slot: UInt32, generation: UInt32, fd: Int32) -> Bool
}

/// Packs what a completion or readiness event refers to into 64 bits:
/// 4 bits of operation, 28 bits of generation, 32 bits of index (slot, listener or send block).
struct EventTag {
    enum Operation: UInt64 {
        case accept = 1, receive, send, wake
        /// An outbound connect finished (io_uring poll for POLLOUT).
        case connect
        /// A send of one frame (index = slot, no send block).
        case sendOne
    }
    package static func make(_ op: Operation, index: UInt32, generation: UInt32 = 0) -> UInt64 {
        (op.rawValue << 60) | (UInt64(generation & 0x0FFF_FFFF) << 32) | UInt64(index)
    }
    package static func operation(_ tag: UInt64) -> Operation? { Operation(rawValue: tag >> 60) }
    package static func index(_ tag: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: tag) }
    package static func generation(_ tag: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: tag >> 32) & 0x0FFF_FFFF }
}
