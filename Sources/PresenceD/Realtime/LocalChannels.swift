/// The channel memberships of one loop's connections: per channel a dense array of member
/// connections (8 bytes each, iterated on every fan-out) and a slot → position index for O(1) removal.
struct LocalChannels {
    /// The members of one channel on this loop.
    final class Channel {
        private(set) var members: [ConnectionID] = []
        private var position: [UInt32: Int] = [:]

        var isEmpty: Bool { members.isEmpty }

        func contains(_ id: ConnectionID) -> Bool {
            guard let p = position[id.slot] else { return false }
            return members[p] == id
        }

        func add(_ id: ConnectionID) {
            guard !contains(id) else { return }
            position[id.slot] = members.count
            members.append(id)
        }

        func remove(_ id: ConnectionID) {
            guard let p = position[id.slot], members[p] == id else { return }
            let last = members.count - 1
            if p != last {
                members[p] = members[last]
                position[members[p].slot] = p
            }
            members.removeLast()
            position[id.slot] = nil
        }
    }

    private(set) var channels: [String: Channel] = [:]

    func channel(_ name: String) -> Channel? { channels[name] }

    /// Adds a member; true when the channel had none on this loop before.
    @discardableResult
    mutating func add(_ id: ConnectionID, to name: String) -> Bool {
        if let c = channels[name] {
            c.add(id)
            return false
        }
        let c = Channel()
        c.add(id)
        channels[name] = c
        return true
    }

    /// Removes a member; true when it was the channel's last one on this loop.
    @discardableResult
    mutating func remove(_ id: ConnectionID, from name: String) -> Bool {
        guard let c = channels[name] else { return false }
        c.remove(id)
        guard c.isEmpty else { return false }
        channels[name] = nil
        return true
    }
}
