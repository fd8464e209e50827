import RedisShim

/// The Lua scripts behind Redis presence (docs/operations.md, "Scaling out"). Every script touches
/// the keys of ONE channel, all hash-tagged `{channel}` so they live in one Redis Cluster slot:
///
/// - `presenced:presence:{c}:conns` — sorted set: one member per (user, instance loop) holding
///   connections, `user \x1f instance.loop`, scored by its expiry (ms). Heartbeats push the
///   expiry forward; an instance that dies stops them and its members fall behind the clock.
/// - `presenced:presence:{c}:k` — hash: member → connections it holds (for `GET /api/v1/presence`).
/// - `presenced:presence:{c}:n` — hash: user → members it has (so a leave knows whether it was the last).
/// - `presenced:presence:{c}:users` — sorted set: users online or in their grace period, scored
///   `live` (9e15) while they hold a member, else the end of the grace period.
/// - `presenced:presence:{c}:names` — hash: user → display name (the token's `name` claim), for
///   users in `users` whose name is known; dropped with the user.
/// - `presenced:presence:{c}:left` — hash: user → when its last member went (ms), while its grace
///   period runs: the `last_seen` of its `online:false`, the same for every instance.
///
/// User presence (`UserPresence`) uses the same scripts on the pseudo-channels `!users:0` …
/// `!users:15` (users spread by a hash of their id), with one more key:
///
/// - `presenced:presence:{!users:b}:seen` — sorted set: user → when its last connection closed
///   (ms), written when it goes offline, kept `UserPresence.retentionMillis` and for at most
///   `maxRemembered / redisBuckets` users per bucket (the oldest dropped first).
///
/// Going offline happens only in `sweep`, atomically: the one caller that removes a user from
/// `users` gets it in its result and announces `online:false` — exactly once across instances.
enum PresenceScripts {
    /// The score of a user who holds at least one live member.
    static let live = "9000000000000000"

    /// Every script, for `SCRIPT LOAD` when a connection comes up (so the first refresh of a
    /// thousand channels does not meet a thousand `NOSCRIPT`s).
    static var all: [RedisScript] { [join, leave, heartbeat, sweep, members, users] }

    /// The last two arguments of `sweep` and `users`: how many users a bucket's `seen` keeps, and
    /// for how long (ms).
    static let sweepBounds = [String(UserPresence.maxRemembered / UserPresence.redisBuckets), String(UserPresence.retentionMillis)]

    static func keys(channel: String) -> [String] {
        let prefix = "presenced:presence:{" + channel + "}:"
        return [prefix + "conns", prefix + "k", prefix + "n", prefix + "users", prefix + "names", prefix + "left"]
    }

    /// The keys of a user-presence bucket: a channel's, and `seen`.
    static func userKeys(bucket: String) -> [String] {
        keys(channel: bucket) + ["presenced:presence:{" + bucket + "}:seen"]
    }

    /// A Lua expression: the next time anything in the channel can expire — a member's expiry or
    /// a grace period's end — or 0 when nothing can.
    private static let nextExpiry = """
        (function()
          local a = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
          local b = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(\(live)', 'WITHSCORES', 'LIMIT', 0, 1)[2]
          a = a and tonumber(a) or 0
          b = b and tonumber(b) or 0
          if a == 0 then return b elseif b == 0 then return a else return math.min(a, b) end
        end)()
        """

    /// A Lua function `sweep(now, ttl, grace, cap, retention)`: drops expired members (their
    /// users go offline at once: the grace period has long passed; their `last_seen` is the
    /// member's last refresh, when its instance was last alive), then every user whose grace
    /// period ended. Returns those users as {user, name or false, last seen (ms)}… . In a
    /// user-presence bucket (KEYS[7]) it writes their last seen times to `seen` and keeps that set
    /// within `retention` ms and `cap` users (arguments, not constants, so a test can check the
    /// bound on a few entries).
    ///
    /// Only commands of the documented ACL line (docs/operations.md) are used: the bound is kept
    /// with ZRANGE/ZREM rather than ZCARD/ZREMRANGEBY*.
    private static let sweepFunction = """
        local function trimSeen(now, extra, cap, retention)
          local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now - retention, 'LIMIT', 0, extra)
          for _, user in ipairs(old) do redis.call('ZREM', KEYS[7], user) end
          local over = #redis.call('ZRANGE', KEYS[7], cap, cap + extra - 1)
          if over > 0 then
            for _, user in ipairs(redis.call('ZRANGE', KEYS[7], 0, over - 1)) do redis.call('ZREM', KEYS[7], user) end
          end
        end
        local function sweep(now, ttl, grace, cap, retention)
          local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
          for i = 1, #expired, 2 do
            local member = expired[i]
            redis.call('ZREM', KEYS[1], member)
            redis.call('HDEL', KEYS[2], member)
            local user = string.match(member, '^(.*)\\31[^\\31]*$')
            if user and redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
              redis.call('HDEL', KEYS[3], user)
              redis.call('ZADD', KEYS[4], now, user)
              redis.call('HSET', KEYS[6], user, string.format('%d', tonumber(expired[i + 1]) - ttl))
            end
          end
          local gone = {}
          local ended = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'WITHSCORES')
          for i = 1, #ended, 2 do
            local user = ended[i]
            redis.call('ZREM', KEYS[4], user)
            -- Written by the leave; a grace period begun by an older script has none: its end minus ours.
            local left = tonumber(redis.call('HGET', KEYS[6], user)) or (tonumber(ended[i + 1]) - grace)
            local name = redis.call('HGET', KEYS[5], user)
            redis.call('HDEL', KEYS[6], user)
            redis.call('HDEL', KEYS[5], user)
            if KEYS[7] then redis.call('ZADD', KEYS[7], string.format('%d', left), user) end
            table.insert(gone, user)
            table.insert(gone, name)
            table.insert(gone, left)
          end
          if KEYS[7] and #gone > 0 then trimSeen(now, #gone / 3 + 16, cap, retention) end
          return gone
        end
        """

    /// ARGV: member, user, expiry, connections, snapshot (1/0), name ('' = unknown). Returns
    /// {first (0/1)} and, with a snapshot, then {online user, its name or false}… .
    static let join = RedisScript(
        """
        local added = redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
        local first = 0
        if added == 1 then
          if redis.call('HINCRBY', KEYS[3], ARGV[2], 1) == 1 then
            if not redis.call('ZSCORE', KEYS[4], ARGV[2]) then first = 1 end
            redis.call('ZADD', KEYS[4], '\(live)', ARGV[2])
            redis.call('HDEL', KEYS[6], ARGV[2])
          end
        end
        if ARGV[6] ~= '' then redis.call('HSET', KEYS[5], ARGV[2], ARGV[6]) end
        local out = {first}
        if ARGV[5] == '1' then
          for _, user in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
            table.insert(out, user)
            table.insert(out, redis.call('HGET', KEYS[5], user))
          end
        end
        return out
        """)

    /// ARGV: member, user, connections left on this loop, grace end (ms), now (ms). When none are
    /// left the member goes; a user with no member left stays in `users` until the grace end, and
    /// `left` remembers when.
    static let leave = RedisScript(
        """
        if tonumber(ARGV[3]) > 0 then
          redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
          return 0
        end
        redis.call('HDEL', KEYS[2], ARGV[1])
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
          if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then
            redis.call('HDEL', KEYS[3], ARGV[2])
            redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
            redis.call('HSET', KEYS[6], ARGV[2], ARGV[5])
            return 1
          end
        end
        return 0
        """)

    /// ARGV: expiry, then (member, user, connections, name or '')…: refreshes this loop's members;
    /// a member that had been swept meanwhile (Redis was unreachable) is added back, with its name.
    /// Returns the users that came back online (to announce), then — as the last element — the
    /// earliest expiry in the channel.
    static let heartbeat = RedisScript(
        """
        local back = {}
        for i = 2, #ARGV, 4 do
          local member, user = ARGV[i], ARGV[i + 1]
          if redis.call('ZADD', KEYS[1], ARGV[1], member) == 1 then
            if redis.call('HINCRBY', KEYS[3], user, 1) == 1 then
              if not redis.call('ZSCORE', KEYS[4], user) then table.insert(back, user) end
              redis.call('ZADD', KEYS[4], '\(live)', user)
              redis.call('HDEL', KEYS[6], user)
            end
            if ARGV[i + 3] ~= '' then redis.call('HSET', KEYS[5], user, ARGV[i + 3]) end
          end
          redis.call('HSET', KEYS[2], member, ARGV[i + 2])
        end
        table.insert(back, string.format('%d', \(nextExpiry)))
        return back
        """)

    /// ARGV: now, TTL, grace (ms), then `seen`'s bound (`sweepBounds`). Returns the users that
    /// went offline as {user, name or false, last seen}…, then — as the last element — the next
    /// time anything in the channel can expire (0: nothing).
    static let sweep = RedisScript(
        """
        \(sweepFunction)
        local gone = sweep(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
        table.insert(gone, string.format('%d', \(nextExpiry)))
        return gone
        """)

    /// ARGV: now (ms). Users with live members, their connection counts and names:
    /// {user, count, name or false, …}.
    static let members = RedisScript(
        """
        local counts, order = {}, {}
        for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
          local user = string.match(member, '^(.*)\\31[^\\31]*$')
          if user then
            if not counts[user] then counts[user] = 0; table.insert(order, user) end
            counts[user] = counts[user] + (tonumber(redis.call('HGET', KEYS[2], member)) or 0)
          end
        end
        local out = {}
        for _, user in ipairs(order) do
          table.insert(out, user)
          table.insert(out, counts[user])
          table.insert(out, redis.call('HGET', KEYS[5], user))
        end
        return out
        """)

    /// On a user-presence bucket (7 keys). ARGV: now, TTL, grace (ms), `seen`'s bound
    /// (`sweepBounds`), then user ids. Sweeps the bucket first — so a crashed instance's members
    /// and ended grace periods count as gone even when no sweep has run yet — then answers, per
    /// user, {online (1/0), last seen (ms) or false}.
    static let users = RedisScript(
        """
        \(sweepFunction)
        local now, retention = tonumber(ARGV[1]), tonumber(ARGV[5])
        sweep(now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), retention)
        local out = {}
        for i = 6, #ARGV do
          if redis.call('ZSCORE', KEYS[4], ARGV[i]) then
            table.insert(out, 1)
            table.insert(out, false)
          else
            local seen = tonumber(redis.call('ZSCORE', KEYS[7], ARGV[i]))
            if seen and seen < now - retention then seen = nil end
            table.insert(out, 0)
            table.insert(out, seen or false)
          end
        end
        return out
        """)
}
