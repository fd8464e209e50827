import PresenceLoop
import Synchronization
import WSCore

/// Fan-out between the loops of one process without locks: one single-producer single-consumer
/// ring per (sending loop, receiving loop) pair carries each delivery — the channel and the
/// frame encoded once, shared by every loop. A sender whose ring to a slow loop is full keeps
/// the rest in order in its own overflow list and retries every turn; receivers are woken once
/// per sender turn, and only when they sleep.
final class CrossLoopFanOut: @unchecked Sendable {
    /// One frame for the members of a channel on another loop.
    struct Delivery {
        var channel: String
        var frame: SharedBytes
        var exceptUser: String?
        var droppable: Bool
        /// A chat message's offset and epoch (history on).
        var position: StreamPosition?
    }

    /// What one sending loop keeps for itself (touched by its thread only).
    private final class Sender {
        /// Per receiving loop: deliveries that did not fit in the ring yet, in order.
        var overflow: [[Delivery]]
        var overflowing = false
        /// Receivers pushed to this turn (to wake each once).
        var touched: [Bool]
        init(loops: Int) {
            overflow = Array(repeating: [], count: loops)
            touched = Array(repeating: false, count: loops)
        }
    }

    let loopCount: Int
    private let rings: [SPSCRing<Delivery>]
    private let senders: [Sender]
    /// Written once per loop at registration (one loop at a time, under RealtimeHub's lock), before any turn.
    private var loops: [EventLoop?]

    init(loops count: Int, ringCapacity: Int = 4096) {
        loopCount = count
        rings = (0..<(count * count)).map { _ in SPSCRing<Delivery>(capacity: ringCapacity) }
        senders = (0..<count).map { _ in Sender(loops: count) }
        loops = Array(repeating: nil, count: count)
    }

    /// Called by each loop on its own thread before the group reports ready.
    func register(_ loop: EventLoop) {
        loops[loop.index] = loop
    }

    /// On loop `from`'s thread: sends `delivery` to every other loop.
    func publish(_ delivery: Delivery, from: Int) {
        let sender = senders[from]
        for to in 0..<loopCount where to != from {
            if !sender.overflow[to].isEmpty || !rings[from * loopCount + to].push(delivery) {
                sender.overflow[to].append(delivery)
                sender.overflowing = true
            }
            sender.touched[to] = true
        }
    }

    /// On loop `to`'s thread: hands every waiting delivery to `body`, sender by sender.
    func drain(into to: Int, _ body: (Delivery) -> Void) {
        for from in 0..<loopCount where from != to {
            rings[from * loopCount + to].drain { body($0) }
        }
    }

    /// On loop `index`'s thread, at the end of its turn: moves overflow into the rings and wakes
    /// the loops that got work.
    func endTurn(of index: Int) {
        let sender = senders[index]
        if sender.overflowing { retryOverflow(sender, from: index) }
        guard sender.touched.contains(true) else { return }
        // Pairs with the receiver's sequentially consistent `sleeping` store before its last check.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        for to in 0..<loopCount where sender.touched[to] {
            sender.touched[to] = false
            loops[to]?.wakeIfSleeping()
        }
    }

    /// Whether loop `index` has deliveries waiting for it, or overflow of its own to retry.
    func hasWork(for index: Int) -> Bool {
        if senders[index].overflowing { return true }
        for from in 0..<loopCount where from != index && rings[from * loopCount + index].hasElements { return true }
        return false
    }

    private func retryOverflow(_ sender: Sender, from: Int) {
        var left = false
        for to in 0..<loopCount where !sender.overflow[to].isEmpty {
            let ring = rings[from * loopCount + to]
            var moved = 0
            for delivery in sender.overflow[to] {
                guard ring.push(delivery) else { break }
                moved += 1
            }
            sender.overflow[to].removeFirst(moved)
            if moved > 0 { sender.touched[to] = true }
            if !sender.overflow[to].isEmpty { left = true }
        }
        sender.overflowing = left
    }
}
