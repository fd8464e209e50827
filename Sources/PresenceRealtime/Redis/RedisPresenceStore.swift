import Glibc
import PresenceLoop
import RedisShim

/// Presence in Redis, shared by every instance (docs/operations.md, "Scaling out"; data layout in
/// `PresenceScripts`).
///
/// Each loop talks to Redis over its own connection and owns one member per (channel, user) it
/// holds connections for, named `user \x1f instance.loop`. Every `PRESENCE_TTL`/3 a loop
/// refreshes all its members — one script call per channel, all written in one loop turn — and
/// learns the channel's earliest expiry, when it sweeps that channel; a leave that starts a grace
/// period sweeps at its end. Sweeps are atomic scripts, so a user going offline is returned to
/// exactly one caller, which announces it (`offlineSink`) on every instance.
///
/// Scores and sweep times are wall-clock milliseconds (instances compare them), never the
/// loops' monotonic clocks.
///
/// When Redis cannot be reached, joins answer from this loop's own view and the refresh after
/// Redis returns puts every member back (announcing users that had been swept meanwhile).
///
/// User presence (`UserPresence`) is the same machinery on the pseudo-channels
/// `UserPresence.redisBucket(of:)`: a connection's open is one join script (without a snapshot)
/// and its close one leave script; nothing is announced for them, and their sweeps are spaced out
/// (`userSweepSpacingMillis`) since the query sweeps its buckets itself.
final class RedisPresenceStore: PresenceStore, @unchecked Sendable {
    /// A user's connections on one loop in one channel, and its name (put back with the member
    /// when a refresh finds it swept).
    private struct LocalUser {
        var connections: Int
        var name: String?
    }

    /// One loop's connection and memberships (touched on that loop's thread only).
    private final class LoopState {
        unowned(unsafe) let loop: EventLoop
        /// Nil until Redis mode is set up on this loop (`attach`).
        var redis: (any RedisCommanding)?
        /// channel → user → connections on this loop.
        var local: [String: [String: LocalUser]] = [:]
        /// channel → (time, timer) of the next sweep scheduled here.
        var sweeps: [String: (at: Int64, timer: UInt64)] = [:]
        var nextRefresh: Int64 = 0
        init(loop: EventLoop) {
            self.loop = loop
        }
    }

    let instanceID: String
    let ttlMillis: Int64
    let graceMillis: Int64
    /// The least time between two sweeps of one user-presence bucket from one loop: they only
    /// tidy up (and write `seen`), so under churn they must not run once per close on every loop.
    let userSweepSpacingMillis: Int64
    var offlineSink: (@Sendable (PresenceDeparture) -> Void)?
    /// Users that came back online in a refresh (after Redis was unreachable): announce `online:true`.
    var onlineSink: (@Sendable (_ channel: String, _ user: PresenceUser) -> Void)?
    /// Written once per loop before any turn (`register`, one loop at a time under RealtimeHub's lock), then only read.
    private var loops: [LoopState?]

    init(instanceID: String, loops: Int, ttlMillis: Int64, graceMillis: Int64) {
        self.instanceID = instanceID
        self.ttlMillis = ttlMillis
        self.graceMillis = graceMillis
        userSweepSpacingMillis = max(1_000, ttlMillis / 3)
        self.loops = Array(repeating: nil, count: loops)
    }

    var loopCount: Int { loops.count }

    /// Called on each loop's thread at its start (memberships are tracked from then on).
    func register(loop: EventLoop) {
        loops[loop.index] = LoopState(loop: loop)
    }

    /// On the loop's thread: its Redis connection, once the server is known.
    func attach(loop: EventLoop, redis: any RedisCommanding) {
        guard let state = loops[loop.index] else { return }
        state.redis = redis
        let previous = redis.onReady
        redis.onReady = { [unowned state, unowned redis] in
            previous?()
            for script in PresenceScripts.all {
                redis.send(RedisCommand("SCRIPT", "LOAD", script.source), routingKey: nil) { _ in }
            }
            state.nextRefresh = 0  // Redis (back): put every member back at the next tick
        }
    }

    private var current: LoopState {
        guard let loop = EventLoop.current, let state = loops[loop.index] else {
            preconditionFailure("RedisPresenceStore used outside a registered loop")
        }
        return state
    }

    private func member(_ user: String, _ state: LoopState) -> String {
        user + "\u{1F}" + instanceID + "." + String(state.loop.index)
    }

    private static func keys(_ channel: String) -> [String] {
        UserPresence.isReserved(channel) ? PresenceScripts.userKeys(bucket: channel) : PresenceScripts.keys(channel: channel)
    }

    /// This loop's own view of `channel` (while Redis cannot be asked).
    private static func localView(_ channel: String, _ state: LoopState) -> [PresenceUser] {
        (state.local[channel] ?? [:]).map { PresenceUser(userID: $0.key, name: $0.value.name) }
    }

    // MARK: PresenceStore

    func join(channel: String, user: String, name: String?, now: Int64, _ done: @escaping (PresenceJoin) -> Void) {
        joinMember(channel: channel, user: user, name: name, snapshot: true, done)
    }

    func connected(user: String, now: Int64) {
        joinMember(channel: UserPresence.redisBucket(of: user), user: user, name: nil, snapshot: false) { _ in }
    }

    private func joinMember(
        channel: String, user: String, name: String?, snapshot: Bool,
        _ done: @escaping (PresenceJoin) -> Void
    ) {
        let state = current
        var entry = state.local[channel]?[user] ?? LocalUser(connections: 0, name: nil)
        entry.connections += 1
        if let name { entry.name = name }
        state.local[channel, default: [:]][user] = entry
        let count = entry.connections
        let wall = UnixTime.nowMillis()
        let args = [member(user, state), user, String(wall + ttlMillis), String(count), snapshot ? "1" : "0", name ?? ""]
        guard let redis = state.redis, redis.isReady else {
            return done(PresenceJoin(firstConnection: count == 1, online: snapshot ? Self.localView(channel, state) : []))
        }
        redis.evalScript(PresenceScripts.join, keys: Self.keys(channel), args: args) { [unowned self] result in
            if case .success(.array(let items)) = result, let first = items.first?.int {
                var online: [PresenceUser] = []
                var i = 1
                while i + 1 < items.count {
                    if let id = items[i].string { online.append(PresenceUser(userID: id, name: items[i + 1].string)) }
                    i += 2
                }
                done(PresenceJoin(firstConnection: first == 1, online: online))
            } else {
                // Redis unreachable: this loop's view; the refresh after its return corrects Redis.
                done(PresenceJoin(firstConnection: count == 1, online: snapshot ? Self.localView(channel, state) : []))
            }
            self.scheduleSweep(channel, at: wall + self.ttlMillis, state)
        }
    }

    func disconnected(user: String, now: Int64) {
        leave(channel: UserPresence.redisBucket(of: user), user: user, now: now)
    }

    func leave(channel: String, user: String, now: Int64) {
        let state = current
        guard let entry = state.local[channel]?[user] else { return }
        let left = entry.connections - 1
        if left > 0 {
            state.local[channel]![user]!.connections = left
        } else {
            state.local[channel]![user] = nil
            if state.local[channel]!.isEmpty { state.local[channel] = nil }
        }
        let wall = UnixTime.nowMillis()
        let graceEnd = wall + graceMillis
        let args = [member(user, state), user, String(left), String(graceEnd), String(wall)]
        guard let redis = state.redis else { return }
        redis.evalScript(PresenceScripts.leave, keys: Self.keys(channel), args: args) { [unowned self] result in
            // The user's last member went: it goes offline when the grace period ends, unless back.
            if case .success(.integer(1)) = result { self.scheduleSweep(channel, at: graceEnd, state) }
        }
    }

    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void) {
        let state = current
        guard let redis = state.redis, redis.isReady else { return done(nil) }
        redis.evalScript(
            PresenceScripts.members, keys: PresenceScripts.keys(channel: channel),
            args: [String(UnixTime.nowMillis())]
        ) { result in
            guard case .success(.array(let items)) = result else { return done(nil) }
            var list: [PresenceMember] = []
            var i = 0
            while i + 2 < items.count {
                if let user = items[i].string, let n = items[i + 1].int {
                    list.append(PresenceMember(userID: user, name: items[i + 2].string, connections: Int(n)))
                }
                i += 3
            }
            done(list.sorted { $0.userID < $1.userID })
        }
    }

    func users(_ users: [String], _ done: @escaping ([UserPresence]?) -> Void) {
        let state = current
        guard let redis = state.redis, redis.isReady else { return done(nil) }
        guard !users.isEmpty else { return done([]) }
        // One script call per bucket asked about, all written together; answered in request order.
        var byBucket: [String: [Int]] = [:]
        for (i, user) in users.enumerated() { byBucket[UserPresence.redisBucket(of: user), default: []].append(i) }
        final class Answers {
            var list: [UserPresence?]
            var pending: Int
            var failed = false
            init(count: Int, pending: Int) {
                list = Array(repeating: nil, count: count)
                self.pending = pending
            }
        }
        let answers = Answers(count: users.count, pending: byBucket.count)
        let head = [String(UnixTime.nowMillis()), String(ttlMillis), String(graceMillis)] + PresenceScripts.sweepBounds
        for (bucket, indices) in byBucket {
            redis.evalScript(
                PresenceScripts.users, keys: PresenceScripts.userKeys(bucket: bucket),
                args: head + indices.map { users[$0] }
            ) { result in
                if case .success(.array(let items)) = result, items.count == 2 * indices.count {
                    for (j, i) in indices.enumerated() {
                        answers.list[i] = UserPresence(userID: users[i], online: items[2 * j].int == 1, lastSeen: items[2 * j + 1].int)
                    }
                } else {
                    answers.failed = true
                }
                answers.pending -= 1
                if answers.pending == 0 { done(answers.failed ? nil : answers.list.compactMap { $0 }) }
            }
        }
    }

    /// On every loop: refreshes this loop's members every TTL/3 (one script call per channel,
    /// written together).
    func tick(now: Int64) {
        let state = current
        guard now >= state.nextRefresh, let redis = state.redis, redis.isReady else { return }
        state.nextRefresh = now + max(1, ttlMillis / 3)
        let expiry = String(UnixTime.nowMillis() + ttlMillis)
        for (channel, users) in state.local {
            var args = [expiry]
            args.reserveCapacity(1 + users.count * 4)
            for (user, entry) in users {
                args.append(member(user, state))
                args.append(user)
                args.append(String(entry.connections))
                args.append(entry.name ?? "")
            }
            redis.evalScript(PresenceScripts.heartbeat, keys: Self.keys(channel), args: args) { [unowned self] result in
                guard case .success(.array(let items)) = result, let earliest = items.last?.string.flatMap({ Int64($0) }) else { return }
                if !UserPresence.isReserved(channel) {
                    for case .bulk(let bytes) in items.dropLast() {
                        let user = String(decoding: bytes, as: UTF8.self)
                        self.onlineSink?(channel, PresenceUser(userID: user, name: state.local[channel]?[user]?.name))
                    }
                }
                if earliest > 0 { self.scheduleSweep(channel, at: earliest, state) }
            }
        }
    }

    // MARK: Sweeps

    /// Sweeps `channel` from this loop at `at` (or earlier if one is already due sooner); a
    /// user-presence bucket no sooner than `userSweepSpacingMillis` from now.
    private func scheduleSweep(_ channel: String, at: Int64, _ state: LoopState) {
        let at = UserPresence.isReserved(channel) ? max(at, UnixTime.nowMillis() + userSweepSpacingMillis) : at
        if let existing = state.sweeps[channel], existing.at <= at { return }
        if let existing = state.sweeps[channel] { state.loop.cancelScheduled(existing.timer) }
        let timer = state.loop.schedule(after: at - UnixTime.nowMillis() + 5) { [unowned self] in
            state.sweeps[channel] = nil
            self.sweep(channel, state)
        }
        state.sweeps[channel] = (at, timer)
    }

    private func sweep(_ channel: String, _ state: LoopState) {
        guard let redis = state.redis else { return }
        let args = [String(UnixTime.nowMillis()), String(ttlMillis), String(graceMillis)] + PresenceScripts.sweepBounds
        redis.evalScript(PresenceScripts.sweep, keys: Self.keys(channel), args: args) { [unowned self] result in
            guard case .success(.array(let items)) = result, let next = items.last?.string.flatMap({ Int64($0) }) else { return }
            // User-presence buckets announce nothing: the script wrote their `seen` times.
            if !UserPresence.isReserved(channel) {
                var i = 0
                while i + 2 < items.count {
                    if let user = items[i].string, let left = items[i + 2].int {
                        self.offlineSink?(PresenceDeparture(channel: channel, userID: user, name: items[i + 1].string, lastSeen: left))
                    }
                    i += 3
                }
            }
            // Keep watching while this loop has members here (others' expiries matter to them).
            if next > 0, state.local[channel] != nil { self.scheduleSweep(channel, at: next, state) }
        }
    }
}
