import RedisShim

/// The Lua scripts behind Redis history (docs/protocol.md, "Recovery and nonces"). Every script
/// touches the keys of ONE channel, hash-tagged `{channel}` (one Redis Cluster slot):
///
/// - `presenced:history:{c}:meta` — hash: `epoch` (set once, from the caller's candidate, when the
///   channel has none) and `latest` (the last offset given out).
/// - `presenced:history:{c}:log` — stream: the last HISTORY_SIZE frames, entry id `<offset>-0`,
///   fields `f` (the frame) and `t` (wall ms). Both keys expire HISTORY_TTL after the last
///   message: the channel then starts again at 1 in a new epoch.
/// - `presenced:history:{c}:nonce:<sender>\x1f<nonce>` — the frame a (sender, nonce) produced, for
///   NONCE_WINDOW.
///
/// `append` assigns the offset, completes the frame (the caller sends its JSON up to `"offset":`),
/// stores it and publishes it to the other instances — all in one call, so every instance's
/// subscriber sees a channel's messages in offset order.
enum HistoryScripts {
    static var all: [RedisScript] { [append, read] }

    /// An `EVALSHA` of `append` or `read` with its three keys — log, meta, nonce key (a
    /// placeholder when the message has no nonce) — appended; the arguments follow.
    static func command(
        _ head: RedisCommand, channel: String, sender: String = "", nonce: String? = nil,
        argumentBytes: Int = 0
    ) -> RedisCommand {
        var command = head
        command.reserve(
            arguments: 13,
            bytes: 3 * (channel.utf8.count + 32) + sender.utf8.count + (nonce?.utf8.count ?? 0)
                + argumentBytes)
        command.append(joining: "presenced:history:{", channel, "}:log")
        command.append(joining: "presenced:history:{", channel, "}:meta")
        if let nonce {
            command.append(joining: "presenced:history:{", channel, "}:nonce:", sender, "\u{1F}", nonce)
        } else {
            command.append(joining: "presenced:history:{", channel, "}:nonce")
        }
        return command
    }

    /// `EVALSHA <append> 3` and `EVALSHA <read> 3`, encoded once.
    static let appendHead = append.command(keyCount: 3)
    static let readHead = read.command(keyCount: 3)

    /// The key that routes a channel's scripts in a cluster (all its keys share its hash slot).
    static func routingKey(channel: String) -> String { "presenced:history:{" + channel + "}" }

    /// ARGV: text (the message JSON up to `"offset":`, or whole when size is 0), candidate epoch,
    /// now ms, pub/sub channel ('' = do not publish), has nonce ('1'/'0'), then what is the same
    /// for every message of an instance: size, ttl ms, nonce window ms, envelope head, publish
    /// command (PUBLISH/SPUBLISH).
    /// → {0, frame} for a nonce seen before, else {1, offset, epoch} (0 and '' without history): the
    /// caller completes the frame itself (`ServerMessage.message(text:position:)`).
    static let append = RedisScript(
        """
        local size = tonumber(ARGV[6])
        if ARGV[5] == '1' then
          local seen = redis.call('GET', KEYS[3])
          if seen then return {0, seen} end
        end
        local payload, offset, epoch = ARGV[1], 0, ''
        if size > 0 then
          epoch = redis.call('HGET', KEYS[2], 'epoch')
          if not epoch then
            epoch = ARGV[2]
            redis.call('HSET', KEYS[2], 'epoch', epoch)
          end
          offset = redis.call('HINCRBY', KEYS[2], 'latest', 1)
          payload = payload .. offset .. ',"epoch":"' .. epoch .. '"}'
        end
        local n = #payload
        local header
        if n < 126 then
          header = string.char(129, n)
        elseif n < 65536 then
          header = string.char(129, 126, math.floor(n / 256), n % 256)
        else
          header = string.char(129, 127, 0, 0, 0, 0, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                               math.floor(n / 256) % 256, n % 256)
        end
        local frame = header .. payload
        if size > 0 then
          redis.call('XADD', KEYS[1], 'MAXLEN', size, offset .. '-0', 'f', frame, 't', ARGV[3])
          redis.call('PEXPIRE', KEYS[1], ARGV[7])
          redis.call('PEXPIRE', KEYS[2], ARGV[7])
        end
        if ARGV[5] == '1' then redis.call('SET', KEYS[3], frame, 'PX', ARGV[8]) end
        if ARGV[4] ~= '' then
          local position = ''
          if size > 0 then position = offset .. ' ' .. epoch end
          redis.call(ARGV[10], ARGV[4], ARGV[9] .. string.char(#position) .. position .. frame)
        end
        return {1, offset, epoch}
        """)

    /// ARGV: since offset ('-1' = no since), since epoch, now ms, ttl ms, candidate epoch.
    /// → {latest, epoch} without since; {latest, epoch, 0} when not recoverable;
    /// {latest, epoch, 1, frames} when every message after since is there.
    static let read = RedisScript(
        """
        local epoch = redis.call('HGET', KEYS[2], 'epoch')
        if not epoch then
          epoch = ARGV[5]
          redis.call('HSET', KEYS[2], 'epoch', epoch, 'latest', 0)
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
        end
        local latest = tonumber(redis.call('HGET', KEYS[2], 'latest') or '0')
        if ARGV[1] == '-1' then return {latest, epoch} end
        local since = tonumber(ARGV[1])
        if ARGV[2] ~= epoch or since > latest then return {latest, epoch, 0} end
        if since == latest then return {latest, epoch, 1, {}} end
        local entries = redis.call('XRANGE', KEYS[1], (since + 1) .. '-0', '+')
        if #entries ~= latest - since or entries[1][1] ~= (since + 1) .. '-0' then return {latest, epoch, 0} end
        local oldest = tonumber(entries[1][2][4])
        if oldest <= tonumber(ARGV[3]) - tonumber(ARGV[4]) then return {latest, epoch, 0} end
        local frames = {}
        for i, e in ipairs(entries) do frames[i] = e[2][2] end
        return {latest, epoch, 1, frames}
        """)
}
