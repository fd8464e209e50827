import Glibc
import PresenceForwarding
import PresenceJSON
import PresenceRealtime
import RedisShim

/// `presenced dead-letters list|retry [ID]`: the chat messages chat-service refused for good
/// (docs/operations.md, "Forward queue and dead letters").
///
/// Embedded mode (no REDIS_URL): the forward queues under `STATE_DIRECTORY`. `list` works while
/// presenced runs; `retry` needs the state directory's lock, so it runs while presenced is
/// stopped (it says so otherwise) and the next start delivers them.
/// Redis mode: the shared dead-letter stream; both work while presenced runs, and the instance
/// reading the forward stream delivers retried letters within a poll interval.
///
/// `list` prints one JSON line per dead letter (queue, id, channel, sender, reason, time,
/// attempts); `retry` moves one dead letter (by id) or all of them back to the end of the queue.
/// Exit codes: 0 done, 64 bad arguments, 1 the queue could not be read or changed, 75 busy.
enum DeadLettersCommand {
    static let usage = """
        usage: presenced dead-letters list
               presenced dead-letters retry [ID]     (embedded mode: with presenced stopped)
          dead letters of the forward queue: in Redis when REDIS_URL is set, else in
          STATE_DIRECTORY (default ./state)
        """

    static func run(
        arguments: [String], environment: [String: String], output: (String) -> Void,
        errorOutput: (String) -> Void
    ) -> Int32 {
        let valid = (arguments.first == "list" && arguments.count == 1) || (arguments.first == "retry" && arguments.count <= 2)
        if valid, let url = environment["REDIS_URL"], !url.isEmpty {
            return runOnRedis(url: url, arguments: arguments, environment: environment, output: output, errorOutput: errorOutput)
        }
        let directory = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "./state"
        switch arguments.first {
        case "list" where arguments.count == 1:
            do {
                for (index, letter) in try FileForwardQueue.readDeadLetters(directory: directory) {
                    output(line(queue: "\(index)", letter))
                }
                return 0
            } catch {
                errorOutput("presenced dead-letters: cannot read \(directory): \(error)")
                return 1
            }
        case "retry" where arguments.count <= 2:
            let wanted = arguments.count == 2 ? arguments[1] : nil
            let lock: Int32
            do {
                lock = try FileForwardQueue.lockDirectory(directory)
            } catch {
                errorOutput("presenced dead-letters: \(directory) is in use (stop presenced first): \(error)")
                return 75
            }
            defer { close(lock) }
            var moved = 0
            do {
                for index in FileForwardQueue.existingIndices(in: directory) {
                    let queue = try FileForwardQueue.open(directory: directory, index: index)
                    if let wanted {
                        if try queue.retryDeadLetter(wanted) { moved += 1 }
                    } else {
                        moved += try queue.retryAllDeadLetters()
                    }
                    try queue.closeQueue()
                }
            } catch {
                errorOutput("presenced dead-letters: \(error)")
                return 1
            }
            if let wanted, moved == 0 {
                errorOutput("presenced dead-letters: no dead letter \(wanted)")
                return 1
            }
            output("\(moved) moved back to the forward queue; presenced delivers them at its next start")
            return 0
        case "--help", "-h":
            output(usage)
            return 0
        default:
            errorOutput("presenced dead-letters: expected list or retry [ID]\n" + usage)
            return 64
        }
    }

    /// One dead letter as a JSON line; `queue` is already JSON (a loop index, or "redis").
    static func line(queue: String, _ letter: DeadLetter) -> String {
        "{\"queue\":\(queue),\"id\":\(JSONWriter.quoted(letter.entry.id)),\"channel\":\(JSONWriter.quoted(letter.entry.channel)),"
            + "\"sender\":\(JSONWriter.quoted(letter.entry.sender)),\"reason\":\(JSONWriter.quoted(letter.reason)),"
            + "\"at\":\(JSONWriter.quoted(letter.at)),\"attempts\":\(letter.entry.attempts)}"
    }

    /// Redis mode: the shared dead-letter stream, through a queue object of the daemon's kind.
    private static func runOnRedis(
        url: String, arguments: [String], environment: [String: String],
        output: (String) -> Void, errorOutput: (String) -> Void
    ) -> Int32 {
        var options = RedisStreamForwardQueue.Options()
        if let max = environment["FORWARD_QUEUE_MAX"].flatMap(Int.init), max > 0 { options.maxEntries = max }
        var lines: [String] = [], failure: String?
        let code: Int32?
        do {
            let endpoint = try RedisEndpoint.parse(url)
            code = try OneShotRedis.run(endpoint: endpoint, timeoutMillis: 5_000) { redis, finish in
                let queue = RedisStreamForwardQueue(redis: redis, consumer: "presenced-cli", options: options)
                func failed(_ error: ForwardQueueError) {
                    failure = "\(error)"
                    finish(1)
                }
                switch (arguments[0], arguments.count == 2 ? arguments[1] : nil) {
                case ("list", _):
                    queue.deadLetters(limit: 1_000_000) { result in
                        switch result {
                        case .success(let letters):
                            lines = letters.map { line(queue: "\"redis\"", $0) }
                            finish(0)
                        case .failure(let error): failed(error)
                        }
                    }
                case (_, let wanted?):
                    queue.retryDeadLetter(wanted) { result in
                        switch result {
                        case .success(true):
                            lines = ["1 moved back to the forward queue"]
                            finish(0)
                        case .success(false):
                            failure = "no dead letter \(wanted)"
                            finish(1)
                        case .failure(let error): failed(error)
                        }
                    }
                case (_, nil):
                    queue.retryAllDeadLetters { result in
                        switch result {
                        case .success(let moved):
                            lines = ["\(moved) moved back to the forward queue"]
                            finish(0)
                        case .failure(let error): failed(error)
                        }
                    }
                }
            }
        } catch {
            errorOutput("presenced dead-letters: \(error)")
            return 1
        }
        guard let code else {
            errorOutput("presenced dead-letters: Redis at \((try? RedisEndpoint.parse(url)).map { "\($0)" } ?? "REDIS_URL") did not answer")
            return 1
        }
        if let failure { errorOutput("presenced dead-letters: \(failure)") }
        for l in lines { output(l) }
        return code
    }
}
