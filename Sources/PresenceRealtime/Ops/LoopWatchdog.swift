import PresenceLoop
import Synchronization

/// Loop liveness for the systemd watchdog: each round posts a job to every loop's mailbox; the
/// round passes only when every loop ran it. A loop stuck in a long computation or a blocking
/// call never answers, so `WATCHDOG=1` stops and systemd restarts the service.
final class LoopWatchdog: Sendable {
    private let answered = Atomic<Int>(0)
    private let expected: Int

    init(loops: Int) { expected = loops }

    /// Starts a round: every loop answers at its next turn.
    func probe(_ group: LoopGroup) {
        answered.store(0, ordering: .sequentiallyConsistent)
        group.broadcast { [self] _ in answered.add(1, ordering: .sequentiallyConsistent) }
    }

    /// Whether every loop answered the last round.
    var allAnswered: Bool { answered.load(ordering: .sequentiallyConsistent) >= expected }
}
