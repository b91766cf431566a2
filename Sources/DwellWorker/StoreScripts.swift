import DwellRedis

/// The Lua scripts that read and write the message logs.
///
/// Publishing is one script so that taking the id, storing the message and
/// notifying workers happen atomically: no reader can see id N+1 stored while
/// N is not, and pub/sub carries messages in id order.
///
/// Every key of a log lives under the current epoch (`dwell:log:<epoch>:<channel>`).
/// When Redis loses the id counter (a flush, a restart without persistence, an
/// old snapshot), the next script starts a new epoch, so ids restart in a fresh
/// namespace and no retained message is ever answered under a reused id.
enum StoreScripts {
    /// Finds the current epoch, or starts one with the caller's random candidate.
    /// KEYS[1]: `dwell:epoch`, KEYS[2]: the id counter.
    private static let epochPrelude = """
        local function current_epoch(candidate)
          local epoch = redis.call('GET', KEYS[1])
          local counter = redis.call('GET', KEYS[2])
          if epoch and counter then return epoch end
          redis.call('SET', KEYS[1], candidate)
          if not counter then redis.call('SET', KEYS[2], 0) end
          return candidate
        end

        """

    /// Takes an id, stores the message and trims the log; shared by both publish
    /// scripts, which differ only in whom they notify.
    /// KEYS: epoch, counter. ARGV: channel, data JSON, retention count, retention ms,
    /// idempotency key ("" for none), candidate epoch.
    /// The channel metadata hash keeps the last id and the highest trimmed id, for
    /// telling readers that messages after their cursor are gone.
    private static let store =
        epochPrelude + """
            local epoch = current_epoch(ARGV[6])
            local log = 'dwell:log:' .. epoch .. ':' .. ARGV[1]
            local meta = 'dwell:meta:' .. epoch .. ':' .. ARGV[1]
            local idempotency = 'dwell:idem:' .. epoch .. ':' .. ARGV[5]
            if ARGV[5] ~= '' then
              local previous = redis.call('GET', idempotency)
              if previous then return {tonumber(previous), 1, 0, epoch} end
            end
            local id = redis.call('INCR', KEYS[2])
            local clock = redis.call('TIME')
            local ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
            local message = string.format('{"id":%d,"channel":"%s","data":%s,"timestamp":%d}',
              id, ARGV[1], ARGV[2], ms)
            local trimmed = 0
            if redis.call('EXISTS', log) == 0 then
              -- The log expired as a whole: every id up to the channel's last is gone.
              trimmed = tonumber(redis.call('HGET', meta, 'last') or '0')
            end
            redis.call('ZADD', log, id, message)
            local excess = redis.call('ZCARD', log) - tonumber(ARGV[3])
            if excess > 0 then
              local last = redis.call('ZRANGE', log, excess - 1, excess - 1, 'WITHSCORES')
              trimmed = tonumber(last[2])
              redis.call('ZREMRANGEBYRANK', log, 0, excess - 1)
            end
            -- Age trimming is bounded per publish; the log's expiry removes the rest
            -- of a channel that stops receiving messages.
            local cutoff = ms - tonumber(ARGV[4])
            for _ = 1, 100 do
              local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
              if #oldest == 0 then break end
              local stamp = tonumber(string.match(oldest[1], '"timestamp":(%d+)}$'))
              if stamp == nil or stamp >= cutoff then break end
              trimmed = tonumber(oldest[2])
              redis.call('ZREMRANGEBYRANK', log, 0, 0)
            end
            redis.call('PEXPIRE', log, ARGV[4])
            redis.call('HSET', meta, 'last', id)
            if trimmed > 0 then redis.call('HSET', meta, 'trimmed', trimmed) end
            -- The metadata outlives the log, so a reader learns that an expired log
            -- held messages after its cursor.
            redis.call('PEXPIRE', meta, math.max(tonumber(ARGV[4]) * 2, 604800000))
            if ARGV[5] ~= '' then redis.call('SET', idempotency, id, 'PX', ARGV[4]) end

            """

    /// Publishes to a channel: stores the message, then notifies the workers
    /// subscribed to the channel with "<epoch>\n<message>".
    /// KEYS and ARGV as `store`, plus ARGV[7]: the notification channel.
    /// Returns {id, 1 when the id is an earlier publish's under the same key,
    /// receivers, epoch}.
    static let publish = RedisScript(
        source: store + """
            local receivers = redis.call('PUBLISH', ARGV[7], epoch .. '\\n' .. message)
            return {id, 0, receivers, epoch}
            """)

    /// Publishes to a user's channel: stores the message, then sends it only to
    /// the live servers that hold the user's polls, on each server's own channel,
    /// as "<epoch>\n<channel>\n<message>". Mappings of dead servers are removed.
    /// KEYS as `store`, plus KEYS[3]: the user's mapping hash, KEYS[4]: the server
    /// registry. ARGV as `store`. Returns as `publish`, with servers notified.
    static let publishToUser = RedisScript(
        source: store + """
            local fields = redis.call('HGETALL', KEYS[3])
            local notified = 0
            for i = 1, #fields, 2 do
              local deadline = redis.call('ZSCORE', KEYS[4], fields[i])
              if deadline and tonumber(deadline) >= ms then
                redis.call('PUBLISH', 'dwell:server:' .. fields[i], epoch .. '\\n' .. ARGV[1] .. '\\n' .. message)
                notified = notified + 1
              else
                redis.call('HDEL', KEYS[3], fields[i])
              end
            end
            return {id, 0, notified, epoch}
            """)

    /// KEYS: epoch, counter. ARGV: cursor ("" for none), limit, upper id bound
    /// ("+inf" for none), the client's epoch ("" for none), candidate epoch, then
    /// the channels.
    /// Returns {current counter, more flag, epoch, reset flag, first retained id,
    /// messages...}, the messages oldest first. Reset means the cursor belongs to
    /// another epoch (or is ahead of the counter, which only a lost counter
    /// explains). The first retained id is one past the highest id trimmed from
    /// these channels: a cursor below it may have missed messages.
    static let read = RedisScript(
        source: epochPrelude + """
            local epoch = current_epoch(ARGV[5])
            local current = tonumber(redis.call('GET', KEYS[2]))
            if ARGV[4] ~= '' and ARGV[4] ~= epoch then return {current, 0, epoch, 1, 0} end
            if ARGV[1] == '' then return {current, 0, epoch, 0, 0} end
            if tonumber(ARGV[1]) > current then return {current, 0, epoch, 1, 0} end
            local limit = tonumber(ARGV[2])
            local found = {}
            local trimmed = 0
            for i = 6, #ARGV do
              local log = 'dwell:log:' .. epoch .. ':' .. ARGV[i]
              local meta = 'dwell:meta:' .. epoch .. ':' .. ARGV[i]
              local gone = tonumber(redis.call('HGET', meta, 'trimmed') or '0')
              if redis.call('EXISTS', log) == 0 then
                gone = math.max(gone, tonumber(redis.call('HGET', meta, 'last') or '0'))
              end
              trimmed = math.max(trimmed, gone)
              local rows = redis.call('ZRANGEBYSCORE', log, '(' .. ARGV[1], ARGV[3],
                'WITHSCORES', 'LIMIT', 0, limit + 1)
              for j = 1, #rows, 2 do
                found[#found + 1] = {tonumber(rows[j + 1]), rows[j]}
              end
            end
            if #ARGV > 6 then
              table.sort(found, function(a, b) return a[1] < b[1] end)
            end
            local reply = {current, #found > limit and 1 or 0, epoch, 0, trimmed + 1}
            for k = 1, math.min(#found, limit) do reply[#reply + 1] = found[k][2] end
            return reply
            """)

    static let epochKeys: [String] = [RedisKeys.epoch, RedisKeys.messageCounter]
}
