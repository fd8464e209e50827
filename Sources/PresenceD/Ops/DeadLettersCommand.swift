import Glibc

/// `presenced dead-letters list|retry [ID]`: the chat messages chat-service refused for good
/// (CONTRACT §7), kept in the embedded forward queue under `STATE_DIRECTORY`.
///
/// `list` prints one JSON line per dead letter (queue index, id, channel, sender, reason, time,
/// attempts) and works while presenced runs. `retry` moves one dead letter (by id) or all of them
/// back to the end of their queue; it needs the state directory's lock, so it runs while
/// presenced is stopped (it says so otherwise) — the next start delivers them.
/// Exit codes: 0 done, 64 bad arguments, 1 the queue could not be read or changed, 75 busy.
enum DeadLettersCommand {
    static let usage = """
        usage: presenced dead-letters list
               presenced dead-letters retry [ID]     (with presenced stopped)
          dead letters of the embedded forward queue in STATE_DIRECTORY (default ./state)
        """

    static func run(arguments: [String], environment: [String: String], output: (String) -> Void,
                    errorOutput: (String) -> Void) -> Int32 {
        let directory = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "./state"
        switch arguments.first {
        case "list" where arguments.count == 1:
            do {
                for (index, letter) in try FileForwardQueue.readDeadLetters(directory: directory) {
                    output("{\"queue\":\(index),\"id\":\(JSONWriter.quoted(letter.entry.id)),\"channel\":\(JSONWriter.quoted(letter.entry.channel)),"
                        + "\"sender\":\(JSONWriter.quoted(letter.entry.sender)),\"reason\":\(JSONWriter.quoted(letter.reason)),"
                        + "\"at\":\(JSONWriter.quoted(letter.at)),\"attempts\":\(letter.entry.attempts)}")
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
}
