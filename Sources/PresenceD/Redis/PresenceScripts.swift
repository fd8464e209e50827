import RedisShim

/// The Lua scripts behind Redis presence (CONTRACT §6). Every script touches the four keys of
/// ONE channel, all hash-tagged `{channel}` so they live in one Redis Cluster slot:
///
/// - `presenced:presence:{c}:conns` — sorted set: one member per (user, instance loop) holding
///   connections, `user \x1f instance.loop`, scored by its expiry (ms). Heartbeats push the
///   expiry forward; an instance that dies stops them and its members fall behind the clock.
/// - `presenced:presence:{c}:k` — hash: member → connections it holds (for `GET /api/v1/presence`).
/// - `presenced:presence:{c}:n` — hash: user → members it has (so a leave knows whether it was the last).
/// - `presenced:presence:{c}:users` — sorted set: users online or in their grace period, scored
///   `live` (9e15) while they hold a member, else the end of the grace period.
///
/// Going offline happens only in `sweep`, atomically: the one caller that removes a user from
/// `users` gets it in its result and announces `online:false` — exactly once across instances.
enum PresenceScripts {
    /// The score of a user who holds at least one live member.
    static let live = "9000000000000000"

    /// Every script, for `SCRIPT LOAD` when a connection comes up (so the first refresh of a
    /// thousand channels does not meet a thousand `NOSCRIPT`s).
    static var all: [RedisScript] { [join, leave, heartbeat, sweep, members] }

    static func keys(channel: String) -> [String] {
        let tag = "{" + channel + "}"
        return ["presenced:presence:\(tag):conns", "presenced:presence:\(tag):k", "presenced:presence:\(tag):n", "presenced:presence:\(tag):users"]
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

    /// ARGV: member, user, expiry, connections. Returns {first (0/1), online users…}.
    static let join = RedisScript("""
    local added = redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
    local first = 0
    if added == 1 then
      if redis.call('HINCRBY', KEYS[3], ARGV[2], 1) == 1 then
        if not redis.call('ZSCORE', KEYS[4], ARGV[2]) then first = 1 end
        redis.call('ZADD', KEYS[4], '\(live)', ARGV[2])
      end
    end
    local out = redis.call('ZRANGE', KEYS[4], 0, -1)
    table.insert(out, 1, first)
    return out
    """)

    /// ARGV: member, user, connections left on this loop, grace end (ms). When none are left the
    /// member goes; a user with no member left stays in `users` until the grace end.
    static let leave = RedisScript("""
    if tonumber(ARGV[3]) > 0 then
      redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
      return 0
    end
    redis.call('HDEL', KEYS[2], ARGV[1])
    if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
      if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then
        redis.call('HDEL', KEYS[3], ARGV[2])
        redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
        return 1
      end
    end
    return 0
    """)

    /// ARGV: expiry, then (member, user, connections)…: refreshes this loop's members; a member
    /// that had been swept meanwhile (Redis was unreachable) is added back. Returns the users that
    /// came back online (to announce), then — as the last element — the earliest expiry in the channel.
    static let heartbeat = RedisScript("""
    local back = {}
    for i = 2, #ARGV, 3 do
      local member, user = ARGV[i], ARGV[i + 1]
      if redis.call('ZADD', KEYS[1], ARGV[1], member) == 1 then
        if redis.call('HINCRBY', KEYS[3], user, 1) == 1 then
          if not redis.call('ZSCORE', KEYS[4], user) then table.insert(back, user) end
          redis.call('ZADD', KEYS[4], '\(live)', user)
        end
      end
      redis.call('HSET', KEYS[2], member, ARGV[i + 2])
    end
    table.insert(back, string.format('%d', \(nextExpiry)))
    return back
    """)

    /// ARGV: now (ms). Drops expired members (their users go offline at once: the grace period
    /// has long passed), then every user whose grace period ended. Returns those users, then —
    /// as the last element — the next time anything in the channel can expire (0: nothing).
    static let sweep = RedisScript("""
    local now = tonumber(ARGV[1])
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
      redis.call('ZREM', KEYS[1], member)
      redis.call('HDEL', KEYS[2], member)
      local user = string.match(member, '^(.*)\\31[^\\31]*$')
      if user and redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
        redis.call('HDEL', KEYS[3], user)
        redis.call('ZADD', KEYS[4], now, user)
      end
    end
    local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
    for _, user in ipairs(gone) do redis.call('ZREM', KEYS[4], user) end
    table.insert(gone, string.format('%d', \(nextExpiry)))
    return gone
    """)

    /// ARGV: now (ms). Users with live members and their connection counts: {user, count, …}.
    static let members = RedisScript("""
    local counts, order = {}, {}
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
      local user = string.match(member, '^(.*)\\31[^\\31]*$')
      if user then
        if not counts[user] then counts[user] = 0; table.insert(order, user) end
        counts[user] = counts[user] + (tonumber(redis.call('HGET', KEYS[2], member)) or 0)
      end
    end
    local out = {}
    for _, user in ipairs(order) do table.insert(out, user); table.insert(out, counts[user]) end
    return out
    """)
}
