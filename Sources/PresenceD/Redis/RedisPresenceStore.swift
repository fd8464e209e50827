import Glibc
import RedisShim

/// Presence in Redis, shared by every instance (CONTRACT §6; data layout in `PresenceScripts`).
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
final class RedisPresenceStore: PresenceStore, @unchecked Sendable {
    /// One loop's connection and memberships (touched on that loop's thread only).
    private final class LoopState {
        unowned(unsafe) let loop: EventLoop
        /// Nil until Redis mode is set up on this loop (`attach`).
        var redis: (any RedisCommanding)?
        /// channel → user → connections on this loop.
        var local: [String: [String: Int]] = [:]
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
    var offlineSink: (@Sendable (String, String) -> Void)?
    /// Users that came back online in a refresh (after Redis was unreachable): announce `online:true`.
    var onlineSink: (@Sendable (String, String) -> Void)?
    /// Written once per loop before any turn (`register`, one loop at a time under RealtimeHub's lock), then only read.
    private var loops: [LoopState?]

    init(instanceID: String, loops: Int, ttlMillis: Int64, graceMillis: Int64) {
        self.instanceID = instanceID
        self.ttlMillis = ttlMillis
        self.graceMillis = graceMillis
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
            state.nextRefresh = 0 // Redis (back): put every member back at the next tick
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

    // MARK: PresenceStore

    func join(channel: String, user: String, now: Int64, _ done: @escaping (PresenceJoin) -> Void) {
        let state = current
        let count = (state.local[channel]?[user] ?? 0) + 1
        state.local[channel, default: [:]][user] = count
        let wall = UnixTime.nowMillis()
        let args = [member(user, state), user, String(wall + ttlMillis), String(count)]
        guard let redis = state.redis, redis.isReady else {
            return done(PresenceJoin(firstConnection: count == 1, online: Array(state.local[channel]?.keys ?? [:].keys)))
        }
        redis.evalScript(PresenceScripts.join, keys: PresenceScripts.keys(channel: channel), args: args) { [unowned self] result in
            if case .success(.array(let items)) = result, let first = items.first?.int {
                done(PresenceJoin(firstConnection: first == 1, online: items.dropFirst().compactMap(\.string)))
            } else {
                // Redis unreachable: this loop's view; the refresh after its return corrects Redis.
                done(PresenceJoin(firstConnection: count == 1, online: Array(state.local[channel]?.keys ?? [:].keys)))
            }
            self.scheduleSweep(channel, at: wall + self.ttlMillis, state)
        }
    }

    func leave(channel: String, user: String, now: Int64) {
        let state = current
        guard let count = state.local[channel]?[user] else { return }
        let left = count - 1
        if left > 0 {
            state.local[channel]![user] = left
        } else {
            state.local[channel]![user] = nil
            if state.local[channel]!.isEmpty { state.local[channel] = nil }
        }
        let graceEnd = UnixTime.nowMillis() + graceMillis
        let args = [member(user, state), user, String(left), String(graceEnd)]
        guard let redis = state.redis else { return }
        redis.evalScript(PresenceScripts.leave, keys: PresenceScripts.keys(channel: channel), args: args) { [unowned self] result in
            // The user's last member went: it goes offline when the grace period ends, unless back.
            if case .success(.integer(1)) = result { self.scheduleSweep(channel, at: graceEnd, state) }
        }
    }

    func members(channel: String, _ done: @escaping ([PresenceMember]?) -> Void) {
        let state = current
        guard let redis = state.redis, redis.isReady else { return done(nil) }
        redis.evalScript(PresenceScripts.members, keys: PresenceScripts.keys(channel: channel),
                               args: [String(UnixTime.nowMillis())]) { result in
            guard case .success(.array(let items)) = result else { return done(nil) }
            var list: [PresenceMember] = []
            var i = 0
            while i + 1 < items.count {
                if let user = items[i].string, let n = items[i + 1].int { list.append(PresenceMember(userID: user, connections: Int(n))) }
                i += 2
            }
            done(list.sorted { $0.userID < $1.userID })
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
            args.reserveCapacity(1 + users.count * 3)
            for (user, count) in users {
                args.append(member(user, state))
                args.append(user)
                args.append(String(count))
            }
            redis.evalScript(PresenceScripts.heartbeat, keys: PresenceScripts.keys(channel: channel), args: args) { [unowned self] result in
                guard case .success(.array(let items)) = result, let earliest = items.last?.string.flatMap({ Int64($0) }) else { return }
                for case .bulk(let name) in items.dropLast() {
                    self.onlineSink?(channel, String(decoding: name, as: UTF8.self))
                }
                if earliest > 0 { self.scheduleSweep(channel, at: earliest, state) }
            }
        }
    }

    // MARK: Sweeps

    /// Sweeps `channel` from this loop at `at` (or earlier if one is already due sooner).
    private func scheduleSweep(_ channel: String, at: Int64, _ state: LoopState) {
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
        redis.evalScript(PresenceScripts.sweep, keys: PresenceScripts.keys(channel: channel),
                               args: [String(UnixTime.nowMillis())]) { [unowned self] result in
            guard case .success(.array(let items)) = result, let next = items.last?.string.flatMap({ Int64($0) }) else { return }
            for case .bulk(let name) in items.dropLast() {
                self.offlineSink?(channel, String(decoding: name, as: UTF8.self))
            }
            // Keep watching while this loop has members here (others' expiries matter to them).
            if next > 0, state.local[channel] != nil { self.scheduleSweep(channel, at: next, state) }
        }
    }
}
