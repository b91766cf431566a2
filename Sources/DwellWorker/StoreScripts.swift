import DwellRedis

/// The Lua scripts that read and write the message logs.
///
/// Publishing is one script so that taking the id, storing the message and
/// notifying workers happen atomically: no reader can see id N+1 stored while
/// N is not, and pub/sub carries messages in id order.
enum StoreScripts {
    /// Takes an id, stores the message and trims the log; shared by both publish
    /// scripts, which differ only in whom they notify.
    /// KEYS: counter, channel log, idempotency key.
    /// ARGV: channel, data JSON, retention count, retention ms, "1" when the
    /// idempotency key applies.
    private static let store = """
        if ARGV[5] == '1' then
          local previous = redis.call('GET', KEYS[3])
          if previous then return {tonumber(previous), 1, 0} end
        end
        local id = redis.call('INCR', KEYS[1])
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        local message = string.format('{"id":%d,"channel":"%s","data":%s,"timestamp":%d}',
          id, ARGV[1], ARGV[2], ms)
        redis.call('ZADD', KEYS[2], id, message)
        local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
        if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1) end
        -- Age trimming is bounded per publish; the key's expiry removes the
        -- rest of a channel that stops receiving messages.
        local cutoff = ms - tonumber(ARGV[4])
        for _ = 1, 100 do
          local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
          if #oldest == 0 then break end
          local stamp = tonumber(string.match(oldest[1], '"timestamp":(%d+)}$'))
          if stamp == nil or stamp >= cutoff then break end
          redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        if ARGV[5] == '1' then redis.call('SET', KEYS[3], id, 'PX', ARGV[4]) end

        """

    /// Publishes to a channel: stores the message, then notifies every worker
    /// subscribed to the channel's notifications.
    /// KEYS and ARGV as `store`, plus KEYS[4]: the notification channel.
    /// Returns {id, 1 when the id is an earlier publish's under the same key, receivers}.
    static let publish = RedisScript(
        source: store + """
            local receivers = redis.call('PUBLISH', KEYS[4], message)
            return {id, 0, receivers}
            """)

    /// Publishes to a user's channel: stores the message, then sends it only to
    /// the live servers that hold the user's polls, on each server's own channel,
    /// as "<channel>\n<message>". Mappings of dead servers are removed on the way.
    /// KEYS and ARGV as `store`, plus KEYS[4]: the user's mapping hash, KEYS[5]:
    /// the server registry. Returns {id, repeated flag, servers notified}.
    static let publishToUser = RedisScript(
        source: store + """
            local fields = redis.call('HGETALL', KEYS[4])
            local notified = 0
            for i = 1, #fields, 2 do
              local deadline = redis.call('ZSCORE', KEYS[5], fields[i])
              if deadline and tonumber(deadline) >= ms then
                redis.call('PUBLISH', 'dwell:server:' .. fields[i], ARGV[1] .. '\\n' .. message)
                notified = notified + 1
              else
                redis.call('HDEL', KEYS[4], fields[i])
              end
            end
            return {id, 0, notified}
            """)

    /// KEYS: counter, then one log per channel.
    /// ARGV: cursor ("" for none), limit, upper id bound ("+inf" for none).
    /// Returns {current counter, 1 when more messages than the limit exist, messages...},
    /// the messages oldest first. With no cursor it returns no messages, and the
    /// counter becomes the caller's cursor.
    static let read = RedisScript(
        source: """
            local current = tonumber(redis.call('GET', KEYS[1]) or '0')
            if ARGV[1] == '' then return {current, 0} end
            local limit = tonumber(ARGV[2])
            local found = {}
            for i = 2, #KEYS do
              local rows = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. ARGV[1], ARGV[3],
                'WITHSCORES', 'LIMIT', 0, limit + 1)
              for j = 1, #rows, 2 do
                found[#found + 1] = {tonumber(rows[j + 1]), rows[j]}
              end
            end
            if #KEYS > 2 then
              table.sort(found, function(a, b) return a[1] < b[1] end)
            end
            local reply = {current, #found > limit and 1 or 0}
            for k = 1, math.min(#found, limit) do reply[#reply + 1] = found[k][2] end
            return reply
            """)
}
