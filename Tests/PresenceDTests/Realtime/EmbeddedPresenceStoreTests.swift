import XCTest

@testable import PresenceD
@testable import PresenceLoop
@testable import PresenceRealtime

/// EmbeddedPresenceStore on its own, with a fake loop clock: first connections, counts, grace
/// periods (a return within one, a later leave superseding an earlier one), departures through
/// `offlineSink` exactly once, user presence, and the size of its table entries (issue 19).
final class EmbeddedPresenceStoreTests: XCTestCase {
    static let grace: Int64 = 1_000

    /// The departures a store announced.
    private final class Departures: Sendable {
        private let list = Lock([PresenceDeparture]())
        func append(_ departure: PresenceDeparture) { list.withLock { $0.append(departure) } }
        /// Those since the previous call.
        func take() -> [PresenceDeparture] {
            list.withLock { list in
                defer { list = [] }
                return list
            }
        }
    }

    private func store(grace: Int64 = grace) -> (EmbeddedPresenceStore, Departures) {
        let store = EmbeddedPresenceStore(graceMillis: grace)
        let departures = Departures()
        store.offlineSink = { departures.append($0) }
        return (store, departures)
    }

    private func join(
        _ store: EmbeddedPresenceStore, _ channel: String, _ user: String, name: String? = nil,
        now: Int64
    ) -> PresenceJoin {
        var answer: PresenceJoin?
        store.join(channel: channel, user: user, name: name, now: now) { answer = $0 }
        return answer!
    }

    private func members(_ store: EmbeddedPresenceStore, _ channel: String) -> [PresenceMember] {
        var answer: [PresenceMember]?
        store.members(channel: channel) { answer = $0 }
        return answer!
    }

    private func users(_ store: EmbeddedPresenceStore, _ users: [String]) -> [UserPresence] {
        var answer: [UserPresence]?
        store.users(users) { answer = $0 }
        return answer!
    }

    private func online(_ join: PresenceJoin) -> [PresenceUser] {
        join.online.sorted { $0.userID < $1.userID }
    }

    func testEntryStrides() {
        XCTAssertEqual(EmbeddedPresenceStore.entryStride, 24)
        XCTAssertEqual(EmbeddedPresenceStore.userEntryStride, 8)
        XCTAssertEqual(EmbeddedPresenceStore.channelTableStride, 8)
    }

    /// A channel of 40 users — past the 32 that a channel's table keeps as pairs, and back below
    /// 16 — behaves as a small one: first connections, counts, snapshots with every name, grace
    /// periods, returns, departures once each.
    func testChannelOfFortyUsers() {
        let (store, departures) = store()
        let users = (0..<40).map { "user-\($0)" }
        func name(_ i: Int) -> String { "Name \(i)" }
        for (i, user) in users.enumerated() {
            let joined = join(store, "big", user, name: name(i), now: 0)
            XCTAssertTrue(joined.firstConnection, user)
            XCTAssertEqual(
                online(joined),
                users.prefix(i + 1).enumerated()
                    .map { PresenceUser(userID: $0.element, name: name($0.offset)) }
                    .sorted { $0.userID < $1.userID })
        }
        // Second connections for the even ones.
        for (i, user) in users.enumerated() where i % 2 == 0 {
            XCTAssertFalse(join(store, "big", user, now: 10).firstConnection, user)
        }
        XCTAssertEqual(
            members(store, "big"),
            users.enumerated()
                .map { PresenceMember(userID: $0.element, name: name($0.offset), connections: 2 - $0.offset % 2) }
                .sorted { $0.userID < $1.userID })

        // Each leaves once: the odd ones are then in their grace period, user-1 comes back.
        for user in users { store.leave(channel: "big", user: user, now: 100) }
        XCTAssertFalse(join(store, "big", "user-1", now: 200).firstConnection)
        XCTAssertEqual(
            members(store, "big").map(\.userID),
            users.enumerated().filter { $0.offset % 2 == 0 || $0.offset == 1 }.map(\.element).sorted())
        store.tick(now: 100 + Self.grace - 1)
        XCTAssertEqual(departures.take(), [])
        store.tick(now: 100 + Self.grace)
        let odd = users.enumerated().filter { $0.offset % 2 == 1 && $0.offset != 1 }
        XCTAssertEqual(
            departures.take().map { "\($0.channel) \($0.userID) \($0.name ?? "-")" }.sorted(),
            odd.map { "big \($0.element) \(name($0.offset))" }.sorted())
        XCTAssertEqual(online(join(store, "big", "user-0", now: 1_200)).count, 21)

        // The rest leave (below 16 users on the way): all depart, and the channel is gone.
        for (i, user) in users.enumerated() where i % 2 == 0 || i == 1 {
            store.leave(channel: "big", user: user, now: 1_300)
            if i == 0 { store.leave(channel: "big", user: user, now: 1_300) }  // its third connection
        }
        XCTAssertEqual(members(store, "big"), [])
        store.tick(now: 1_300 + Self.grace)
        XCTAssertEqual(
            departures.take().map(\.userID).sorted(),
            users.enumerated().filter { $0.offset % 2 == 0 || $0.offset == 1 }.map(\.element).sorted())
        store.tick(now: 10 * Self.grace)
        XCTAssertEqual(departures.take(), [])
        XCTAssertEqual(
            online(join(store, "big", "user-39", now: 20_000)),
            [PresenceUser(userID: "user-39", name: nil)])
    }

    /// Without a grace period, 40 users joining one at a time and every tenth join letting the
    /// earliest go (past 32 users and back below 16, three times): each leave departs at once with
    /// its name, and each snapshot holds exactly those in the channel.
    func testFortyUsersInAndOutWithoutGrace() {
        let (store, departures) = store(grace: 0)
        var inside: [String: String] = [:]  // user → name
        var order: [String] = []
        func leave(_ user: String) {
            store.leave(channel: "big", user: user, now: 0)
            XCTAssertEqual(
                departures.take().map { "\($0.channel) \($0.userID) \($0.name ?? "-")" },
                ["big \(user) \(inside[user]!)"])
            inside[user] = nil
        }
        for round in 0..<3 {
            for i in 0..<40 {
                let user = "u\(i)"
                let joined = join(store, "big", user, name: "\(user) r\(round)", now: 0)
                XCTAssertTrue(joined.firstConnection, user)
                inside[user] = "\(user) r\(round)"
                order.append(user)
                XCTAssertEqual(joined.online.count, inside.count)
                let online = joined.online.map { ($0.userID, $0.name ?? "-") }
                XCTAssertEqual(Dictionary(online, uniquingKeysWith: { first, _ in first }), inside)
                if i % 10 == 9 { leave(order.removeFirst()) }
            }
            XCTAssertEqual(members(store, "big").map(\.userID), inside.keys.sorted())
            while !order.isEmpty {
                leave(order.removeFirst())
                XCTAssertEqual(members(store, "big").map(\.userID), inside.keys.sorted())
            }
        }
        XCTAssertEqual(departures.take(), [])
    }

    func testFirstConnectionSecondConnectionAndReturnWithinGrace() {
        let (store, departures) = store()
        let first = join(store, "room", "alice", name: "Alice", now: 0)
        XCTAssertTrue(first.firstConnection)
        XCTAssertEqual(first.online, [PresenceUser(userID: "alice", name: "Alice")])

        let second = join(store, "room", "alice", now: 10)  // no name: keeps the one it has
        XCTAssertFalse(second.firstConnection)
        XCTAssertEqual(second.online, [PresenceUser(userID: "alice", name: "Alice")])
        XCTAssertEqual(members(store, "room"), [PresenceMember(userID: "alice", name: "Alice", connections: 2)])

        store.leave(channel: "room", user: "alice", now: 20)
        XCTAssertEqual(members(store, "room"), [PresenceMember(userID: "alice", name: "Alice", connections: 1)])
        store.leave(channel: "room", user: "alice", now: 30)
        // In its grace period: not a member (no connection), still in a joiner's snapshot.
        XCTAssertEqual(members(store, "room"), [])
        let bob = join(store, "room", "bob", now: 40)
        XCTAssertTrue(bob.firstConnection)
        XCTAssertEqual(online(bob), [PresenceUser(userID: "alice", name: "Alice"), PresenceUser(userID: "bob", name: nil)])

        // Back within the grace period: not a first connection, and it never departs.
        let back = join(store, "room", "alice", name: "Alice B.", now: 500)
        XCTAssertFalse(back.firstConnection)
        XCTAssertEqual(
            members(store, "room"),
            [
                PresenceMember(userID: "alice", name: "Alice B.", connections: 1),
                PresenceMember(userID: "bob", name: nil, connections: 1),
            ])
        store.tick(now: 30 + Self.grace)
        store.tick(now: 10 * Self.grace)
        XCTAssertEqual(departures.take(), [])
        XCTAssertEqual(members(store, "room").map(\.userID), ["alice", "bob"])
    }

    func testDepartureAfterGraceOnce() {
        let (store, departures) = store()
        _ = join(store, "room", "alice", name: "Alice", now: 0)
        _ = join(store, "room", "bob", now: 0)
        let before = UnixTime.nowMillis()
        store.leave(channel: "room", user: "alice", now: 100)
        let after = UnixTime.nowMillis()

        store.tick(now: 100 + Self.grace - 1)
        XCTAssertEqual(departures.take(), [])
        store.tick(now: 100 + Self.grace)
        let gone = departures.take()
        XCTAssertEqual(gone.count, 1)
        XCTAssertEqual(gone.first?.channel, "room")
        XCTAssertEqual(gone.first?.userID, "alice")
        XCTAssertEqual(gone.first?.name, "Alice")
        XCTAssertGreaterThanOrEqual(gone.first?.lastSeen ?? 0, before)  // when it left, not the grace's end
        XCTAssertLessThanOrEqual(gone.first?.lastSeen ?? .max, after)
        store.tick(now: 100 + Self.grace)
        store.tick(now: 10 * Self.grace)
        XCTAssertEqual(departures.take(), [])

        // Gone from the snapshot, and the next join is a first connection again.
        XCTAssertEqual(
            online(join(store, "room", "carol", now: 2_000)),
            [PresenceUser(userID: "bob", name: nil), PresenceUser(userID: "carol", name: nil)])
        XCTAssertTrue(join(store, "room", "alice", now: 2_000).firstConnection)

        // The last user of a channel departing leaves nothing behind.
        store.leave(channel: "solo", user: "dave", now: 2_000)  // never joined: ignored
        _ = join(store, "solo", "dave", now: 2_000)
        store.leave(channel: "solo", user: "dave", now: 2_000)
        store.leave(channel: "solo", user: "dave", now: 2_001)  // no connection left: ignored
        store.tick(now: 2_000 + Self.grace)
        XCTAssertEqual(departures.take().map(\.userID), ["dave"])
        XCTAssertEqual(members(store, "solo"), [])
        XCTAssertTrue(join(store, "solo", "dave", now: 3_500).firstConnection)
    }

    /// Left, back and left again within the grace period: the first leave's deadline passes while
    /// the user is again without a connection, but only the second leave's deadline departs it.
    func testOnlyTheLatestLeaveDeparts() {
        let (store, departures) = store()
        _ = join(store, "room", "alice", name: "Alice", now: 0)
        store.leave(channel: "room", user: "alice", now: 100)
        XCTAssertFalse(join(store, "room", "alice", now: 500).firstConnection)
        let before = UnixTime.nowMillis()
        store.leave(channel: "room", user: "alice", now: 900)
        let after = UnixTime.nowMillis()

        store.tick(now: 100 + Self.grace)
        XCTAssertEqual(departures.take(), [], "the first leave's deadline must not depart the user")
        XCTAssertEqual(
            online(join(store, "room", "bob", now: 1_200)),
            [PresenceUser(userID: "alice", name: "Alice"), PresenceUser(userID: "bob", name: nil)])
        store.tick(now: 900 + Self.grace - 1)
        XCTAssertEqual(departures.take(), [])
        store.tick(now: 900 + Self.grace)
        let gone = departures.take()
        XCTAssertEqual(gone.map(\.userID), ["alice"])
        XCTAssertEqual(gone.first?.name, "Alice")
        XCTAssertGreaterThanOrEqual(gone.first?.lastSeen ?? 0, before)
        XCTAssertLessThanOrEqual(gone.first?.lastSeen ?? .max, after)
        store.tick(now: 10 * Self.grace)
        XCTAssertEqual(departures.take(), [])
    }

    func testZeroGraceDepartsAtOnce() {
        let (store, departures) = store(grace: 0)
        XCTAssertTrue(join(store, "room", "alice", name: "Alice", now: 0).firstConnection)
        XCTAssertFalse(join(store, "room", "alice", now: 0).firstConnection)
        store.leave(channel: "room", user: "alice", now: 5)
        XCTAssertEqual(departures.take(), [])
        let before = UnixTime.nowMillis()
        store.leave(channel: "room", user: "alice", now: 6)
        let after = UnixTime.nowMillis()
        let gone = departures.take()
        XCTAssertEqual(gone.map(\.userID), ["alice"])
        XCTAssertEqual(gone.first?.channel, "room")
        XCTAssertEqual(gone.first?.name, "Alice")
        XCTAssertGreaterThanOrEqual(gone.first?.lastSeen ?? 0, before)
        XCTAssertLessThanOrEqual(gone.first?.lastSeen ?? .max, after)
        XCTAssertEqual(members(store, "room"), [])
        XCTAssertTrue(join(store, "room", "alice", now: 7).firstConnection)
        store.tick(now: 100)
        XCTAssertEqual(departures.take(), [])

        store.connected(user: "bob", now: 0)
        XCTAssertEqual(users(store, ["bob"]), [UserPresence(userID: "bob", online: true, lastSeen: nil)])
        let bobBefore = UnixTime.nowMillis()
        store.disconnected(user: "bob", now: 10)
        let bobAfter = UnixTime.nowMillis()
        assertOffline(users(store, ["bob"]), lastSeenFrom: bobBefore, to: bobAfter)
        XCTAssertEqual(departures.take(), [])
    }

    func testUserPresence() {
        let (store, departures) = store()
        XCTAssertEqual(
            users(store, ["alice", "nobody"]),
            [
                UserPresence(userID: "alice", online: false, lastSeen: nil),
                UserPresence(userID: "nobody", online: false, lastSeen: nil),
            ])
        store.disconnected(user: "alice", now: 0)  // never connected: ignored
        store.connected(user: "alice", now: 0)
        store.connected(user: "alice", now: 10)
        XCTAssertEqual(
            users(store, ["nobody", "alice"]),
            [
                UserPresence(userID: "nobody", online: false, lastSeen: nil),
                UserPresence(userID: "alice", online: true, lastSeen: nil),
            ])
        store.disconnected(user: "alice", now: 20)
        XCTAssertEqual(users(store, ["alice"]), [UserPresence(userID: "alice", online: true, lastSeen: nil)])
        let before = UnixTime.nowMillis()
        store.disconnected(user: "alice", now: 100)
        let after = UnixTime.nowMillis()
        store.disconnected(user: "alice", now: 101)  // no connection left: ignored
        // Within the grace period: online.
        store.tick(now: 100 + Self.grace - 1)
        XCTAssertEqual(users(store, ["alice"]), [UserPresence(userID: "alice", online: true, lastSeen: nil)])
        store.tick(now: 100 + Self.grace)
        assertOffline(users(store, ["alice"]), lastSeenFrom: before, to: after)
        // Never a channel departure, never a channel.
        XCTAssertEqual(departures.take(), [])
        XCTAssertEqual(members(store, UserPresence.channelPrefix), [])

        // Back: online again, without a last-seen time.
        store.connected(user: "alice", now: 2_000)
        XCTAssertEqual(users(store, ["alice"]), [UserPresence(userID: "alice", online: true, lastSeen: nil)])
    }

    func testUserPresenceOnlyTheLatestDisconnectionDeparts() {
        let (store, departures) = store()
        store.connected(user: "alice", now: 0)
        store.disconnected(user: "alice", now: 100)
        store.connected(user: "alice", now: 500)
        let before = UnixTime.nowMillis()
        store.disconnected(user: "alice", now: 900)
        let after = UnixTime.nowMillis()
        store.tick(now: 100 + Self.grace)
        XCTAssertEqual(
            users(store, ["alice"]), [UserPresence(userID: "alice", online: true, lastSeen: nil)],
            "the first disconnection's deadline must not take the user offline")
        store.tick(now: 900 + Self.grace)
        assertOffline(users(store, ["alice"]), lastSeenFrom: before, to: after)
        XCTAssertEqual(departures.take(), [])
    }

    /// A user's channel presence and its user presence have their own grace periods.
    func testChannelAndUserPresenceApart() {
        let (store, departures) = store()
        store.connected(user: "alice", now: 0)
        _ = join(store, "room", "alice", name: "Alice", now: 0)
        _ = join(store, "hall", "alice", now: 0)
        store.leave(channel: "room", user: "alice", now: 100)
        store.tick(now: 100 + Self.grace)
        XCTAssertEqual(departures.take().map(\.channel), ["room"])
        XCTAssertEqual(users(store, ["alice"]), [UserPresence(userID: "alice", online: true, lastSeen: nil)])
        XCTAssertEqual(members(store, "hall").map(\.userID), ["alice"])

        store.disconnected(user: "alice", now: 200)
        store.leave(channel: "hall", user: "alice", now: 300)
        store.tick(now: 200 + Self.grace)
        XCTAssertEqual(departures.take(), [])
        XCTAssertEqual(users(store, ["alice"]).first?.online, false)
        store.tick(now: 300 + Self.grace)
        XCTAssertEqual(departures.take().map(\.channel), ["hall"])
    }

    /// The one user asked about is offline, last seen between `from` and `to` (wall clock).
    private func assertOffline(
        _ presence: [UserPresence], lastSeenFrom from: Int64, to: Int64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(presence.first?.online, false, file: file, line: line)
        XCTAssertGreaterThanOrEqual(presence.first?.lastSeen ?? 0, from, file: file, line: line)
        XCTAssertLessThanOrEqual(presence.first?.lastSeen ?? .max, to, file: file, line: line)
    }
}
