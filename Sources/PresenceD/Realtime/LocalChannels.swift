/// The channel memberships of one loop's connections: per channel a dense array of members
/// (iterated on every fan-out) and a slot → position index for O(1) removal.
struct LocalChannels {
    /// One member connection and its user.
    struct Member {
        var id: ConnectionID
        var user: String
    }

    /// The members of one channel on this loop.
    final class Channel {
        private(set) var members: [Member] = []
        private var position: [UInt32: Int] = [:]

        var isEmpty: Bool { members.isEmpty }

        func contains(_ id: ConnectionID) -> Bool {
            guard let p = position[id.slot] else { return false }
            return members[p].id == id
        }

        func add(_ member: Member) {
            guard !contains(member.id) else { return }
            position[member.id.slot] = members.count
            members.append(member)
        }

        func remove(_ id: ConnectionID) {
            guard let p = position[id.slot], members[p].id == id else { return }
            let last = members.count - 1
            if p != last {
                members[p] = members[last]
                position[members[p].id.slot] = p
            }
            members.removeLast()
            position[id.slot] = nil
        }
    }

    private(set) var channels: [String: Channel] = [:]

    func channel(_ name: String) -> Channel? { channels[name] }

    mutating func add(_ id: ConnectionID, user: String, to name: String) {
        if let c = channels[name] {
            c.add(Member(id: id, user: user))
        } else {
            let c = Channel()
            c.add(Member(id: id, user: user))
            channels[name] = c
        }
    }

    mutating func remove(_ id: ConnectionID, from name: String) {
        guard let c = channels[name] else { return }
        c.remove(id)
        if c.isEmpty { channels[name] = nil }
    }
}
