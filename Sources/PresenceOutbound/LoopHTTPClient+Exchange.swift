extension LoopHTTPClient {
    /// One request from `send` until its `done` has run: the encoded bytes, the callback, the
    /// overall timer, and where it is (waiting in its origin's queue, or on a connection).
    final class Exchange {
        /// The request method (a HEAD response has no body).
        let method: String
        /// The encoded request (head and body).
        let request: [UInt8]
        /// The origin the request goes to.
        let origin: Origin.Key
        /// The overall timeout (`EventLoop.schedule` id), until the exchange finishes.
        var timer: UInt64?
        /// The connection carrying the request now (nil while it waits in the queue).
        var connection: Connection?
        /// Already retried once on a fresh connection (a reused connection failed before answering).
        var retried = false
        /// Must go on a newly opened connection, not an idle one (set for the retry).
        var needsFreshConnection = false
        private var done: ((Result<Response, Failure>) -> Void)?

        init(
            method: String, request: [UInt8], origin: Origin.Key,
            done: @escaping (Result<Response, Failure>) -> Void
        ) {
            self.method = method
            self.request = request
            self.origin = origin
            self.done = done
        }

        /// True once `complete` has run.
        var isFinished: Bool { done == nil }

        /// Runs `done` with `result` (only the first time).
        func complete(_ result: Result<Response, Failure>) {
            guard let done else { return }
            self.done = nil
            connection = nil
            done(result)
        }
    }
}
