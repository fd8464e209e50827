import PresenceLoop
import WSCore

/// The channel memberships of one loop's connections: per channel a dense array of member
/// connections (8 bytes each, iterated on every fan-out) and, for large channels, a slot →
/// position index for O(1) removal; the channel's message order on this loop; and the joins that
/// are not live yet.
struct LocalChannels {
    /// A join whose snapshot, replay and `joined` are not out yet (`waiting`: every frame for it
    /// is kept back), or whose replay covered messages this loop has not delivered yet
    /// (`catchingUp`: those skip it). It becomes a member once the loop has caught up.
    struct Joining {
        enum Stage {
            case waiting
            case catchingUp(through: StreamPosition)
        }
        let id: ConnectionID
        var stage = Stage.waiting
        /// Frames kept back while waiting, with their positions (messages) or nil.
        var kept: [(frame: SharedBytes, position: StreamPosition?)] = []
        /// More arrived while waiting than `keptLimit`: the join cannot be told everything in order.
        var overflowed = false

        static let keptLimit = 4_096
    }

    /// The members of one channel on this loop.
    final class Channel {
        private(set) var members: [ConnectionID] = []
        /// Slot → index in `members`, kept only while the channel has more than `indexedAbove`
        /// members. A family's channel has a handful: a scan of a few cache lines finds one, and a
        /// dictionary per channel cost ~22 B per idle connection (issue 19, 19 members a channel).
        private var position: [UInt32: UInt32]?
        static let indexedAbove = 32
        /// Chat messages in offset order here (history on).
        var order = MessageOrder<SharedBytes>()
        /// Joins not live yet (usually none).
        var joining: [Joining] = []
        /// The channel's place in this process's history (embedded mode), found on its first message.
        var history: EmbeddedHistory.Handle?

        var isEmpty: Bool { members.isEmpty && joining.isEmpty }
        /// Whether the slot index exists (for tests).
        var isIndexed: Bool { position != nil }

        func contains(_ id: ConnectionID) -> Bool { index(of: id) != nil }

        private func index(of id: ConnectionID) -> Int? {
            guard let position else { return members.firstIndex(of: id) }
            guard let p = position[id.slot], members[Int(p)] == id else { return nil }
            return Int(p)
        }

        func add(_ id: ConnectionID) {
            guard !contains(id) else { return }
            position?[id.slot] = UInt32(members.count)
            members.append(id)
            if position == nil && members.count > Self.indexedAbove {
                var index = [UInt32: UInt32](minimumCapacity: members.count)
                for (p, member) in members.enumerated() { index[member.slot] = UInt32(p) }
                position = index
            }
        }

        func remove(_ id: ConnectionID) {
            removeJoining(id)
            guard let p = index(of: id) else { return }
            let last = members.count - 1
            if p != last {
                members[p] = members[last]
                position?[members[p].slot] = UInt32(p)
            }
            members.removeLast()
            position?[id.slot] = nil
            // Half the threshold before the index goes: a channel hovering at it does not rebuild.
            if members.count <= Self.indexedAbove / 2 { position = nil }
        }

        /// The index of `id` among the joining, if it is one.
        func joiningIndex(_ id: ConnectionID) -> Int? { joining.firstIndex { $0.id == id } }

        /// Takes the joiner at `index` out. The array's storage goes with the last one: almost
        /// every channel has nobody joining, and an emptied array would keep its buffer.
        func takeJoining(at index: Int) -> Joining {
            let joiner = joining.remove(at: index)
            if joining.isEmpty { joining = [] }
            return joiner
        }

        /// Takes `id` out of the joining, if it is there.
        func removeJoining(_ id: ConnectionID) {
            if let index = joiningIndex(id) { _ = takeJoining(at: index) }
        }
    }

    private(set) var channels: [String: Channel] = [:]

    func channel(_ name: String) -> Channel? { channels[name] }

    /// Adds a connection that is joining (not a member yet); true when the channel had nobody
    /// on this loop before.
    @discardableResult
    mutating func addJoining(_ id: ConnectionID, to name: String) -> Bool {
        let created = channels[name] == nil
        let c = channels[name] ?? Channel()
        channels[name] = c
        if c.joiningIndex(id) == nil && !c.contains(id) { c.joining.append(Joining(id: id)) }
        return created
    }

    /// Removes a member or joiner; true when it was the channel's last one on this loop.
    @discardableResult
    mutating func remove(_ id: ConnectionID, from name: String) -> Bool {
        guard let c = channels[name] else { return false }
        c.remove(id)
        guard c.isEmpty else { return false }
        channels[name] = nil
        return true
    }
}
