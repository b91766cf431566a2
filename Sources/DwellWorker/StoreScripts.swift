import DwellRedis

/// The Lua scripts that read and write the message logs.
///
/// Publishing is one script so that taking the id, storing the message and
/// notifying workers happen atomically: no reader can see id N+1 stored while
/// N is not, and pub/sub carries messages in id order.
enum StoreScripts {
    /// KEYS: counter, channel log, idempotency key.
    /// ARGV: channel, data JSON, retention count, retention ms, notification channel,
    /// "1" when the idempotency key applies.
    /// Returns {id, 1 when the id is an earlier publish's under the same key}.
    static let publish = RedisScript(
        source: """
            if ARGV[6] == '1' then
              local previous = redis.call('GET', KEYS[3])
              if previous then return {tonumber(previous), 1} end
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
            if ARGV[6] == '1' then redis.call('SET', KEYS[3], id, 'PX', ARGV[4]) end
            redis.call('PUBLISH', ARGV[5], message)
            return {id, 0}
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
