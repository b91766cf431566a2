import DwellRedis

/// The Lua scripts of the server registry and the user mappings.
///
/// Times come from Redis (`TIME`), so machines with skewed clocks agree on
/// which servers are alive. A server counts as alive while its score in
/// `dwell:servers` is not in the past; each heartbeat pushes the score 2.5
/// intervals ahead, so a server that stops beating is dead before its hash
/// expires at 3 intervals.
///
/// NOTE: some scripts build key names from data (`dwell:user:<id>`), which a
/// Redis Cluster would reject; Dwell expects a single Redis or a replica set.
enum RegistryScripts {
    private static let now = """
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

        """

    /// KEYS: server registry, server hash, epoch key. ARGV: interval ms, then
    /// field/value pairs of which the first is `id` and the server id.
    /// Returns {1 when the server was unregistered or already counted as dead,
    /// Redis time, the current epoch or "" when there is none}. A lapsed server
    /// may have lost user mappings and targeted messages meanwhile.
    static let heartbeat = RedisScript(
        source: now + """
            local interval = tonumber(ARGV[1])
            local fields = {}
            for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
            local previous = redis.call('ZSCORE', KEYS[1], ARGV[3])
            local lapsed = (not previous or tonumber(previous) < now) and 1 or 0
            redis.call('HSET', KEYS[2], 'heartbeatAt', now, unpack(fields))
            redis.call('PEXPIRE', KEYS[2], interval * 3)
            redis.call('ZADD', KEYS[1], now + math.floor(interval * 5 / 2), ARGV[3])
            local epoch = redis.call('GET', KEYS[3]) or ''
            if redis.call('EXISTS', 'dwell:id') == 0 then epoch = '' end
            return {lapsed, now, epoch}
            """)

    /// KEYS: user hash, this server's user set, server registry, user set.
    /// ARGV: server id, maximum polls per user, user id.
    /// Counts the user's polls on live servers (removing dead servers' fields) and
    /// adds one for this server unless that would pass the maximum.
    /// Returns {1 admitted or 0 rejected, the user's polls counted}.
    static let acquireUser = RedisScript(
        source: now + """
            local fields = redis.call('HGETALL', KEYS[1])
            local total = 0
            for i = 1, #fields, 2 do
              local deadline = redis.call('ZSCORE', KEYS[3], fields[i])
              if fields[i] == ARGV[1] or (deadline and tonumber(deadline) >= now) then
                total = total + tonumber(fields[i + 1])
              else
                redis.call('HDEL', KEYS[1], fields[i])
              end
            end
            if total >= tonumber(ARGV[2]) then return {0, total} end
            redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
            redis.call('SADD', KEYS[2], ARGV[3])
            redis.call('SADD', KEYS[4], ARGV[3])
            return {1, total + 1}
            """)

    /// KEYS: user hash. ARGV: server id. Takes one poll off the count; the field
    /// stays at 0 for a grace period, so an immediate reconnect still finds it.
    static let releaseUser = RedisScript(
        source: """
            local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
            if left < 0 then redis.call('HSET', KEYS[1], ARGV[1], 0) end
            return left
            """)

    /// KEYS: user hash, this server's user set, user set. ARGV: server id, user id.
    /// Removes the mapping when its count is still 0 after the grace period.
    static let expireUser = RedisScript(
        source: """
            local count = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
            if count > 0 then return 0 end
            redis.call('HDEL', KEYS[1], ARGV[1])
            redis.call('SREM', KEYS[2], ARGV[2])
            if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
            return 1
            """)

    /// KEYS: user hash. ARGV: server id, count, user id. Restores this server's count after
    /// Redis lost it (a restart, or this server was presumed dead).
    static let restoreUser = RedisScript(
        source: """
            redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
            redis.call('SADD', 'dwell:server-users:' .. ARGV[1], ARGV[3])
            redis.call('SADD', 'dwell:users', ARGV[3])
            return 1
            """)

    /// KEYS: server registry, user set. ARGV: servers per call, users per server.
    /// Removes dead servers and their user mappings a bounded batch at a time, so
    /// one call never blocks Redis for long; callers repeat it every interval.
    /// Returns {servers removed, users unmapped}.
    static let reapDeadServers = RedisScript(
        source: now + """
            local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[1]))
            local removed, unmapped = 0, 0
            for _, server in ipairs(dead) do
              local members = 'dwell:server-users:' .. server
              local users = redis.call('SPOP', members, tonumber(ARGV[2]))
              for _, user in ipairs(users) do
                local mapping = 'dwell:user:' .. user
                redis.call('HDEL', mapping, server)
                if redis.call('HLEN', mapping) == 0 then redis.call('SREM', KEYS[2], user) end
                unmapped = unmapped + 1
              end
              if redis.call('SCARD', members) == 0 then
                redis.call('ZREM', KEYS[1], server)
                redis.call('DEL', 'dwell:server:' .. server)
                removed = removed + 1
              end
            end
            return {removed, unmapped}
            """)

    /// KEYS: server registry, server hash, this server's user set, user set.
    /// ARGV: server id. Deregisters a draining server and its user mappings.
    static let deregister = RedisScript(
        source: """
            for _, user in ipairs(redis.call('SMEMBERS', KEYS[3])) do
              local mapping = 'dwell:user:' .. user
              redis.call('HDEL', mapping, ARGV[1])
              if redis.call('HLEN', mapping) == 0 then redis.call('SREM', KEYS[4], user) end
            end
            redis.call('DEL', KEYS[3], KEYS[2])
            redis.call('ZREM', KEYS[1], ARGV[1])
            return 1
            """)

    /// KEYS: server registry, user set. ARGV: user scan cursor, users per page.
    /// Returns {Redis time, {server hash fields...}, next user cursor,
    /// {{user, polls, server ids...}...}} for the live servers and one page of users.
    static let clusterView = RedisScript(
        source: now + """
            local servers = {}
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
              local fields = redis.call('HGETALL', 'dwell:server:' .. id)
              if #fields > 0 then servers[#servers + 1] = fields end
            end
            local page = redis.call('SSCAN', KEYS[2], ARGV[1], 'COUNT', tonumber(ARGV[2]))
            local users = {}
            for _, user in ipairs(page[2]) do
              local fields = redis.call('HGETALL', 'dwell:user:' .. user)
              local entry = {user, 0}
              for i = 1, #fields, 2 do
                entry[2] = entry[2] + tonumber(fields[i + 1])
                entry[#entry + 1] = fields[i]
              end
              users[#users + 1] = entry
            end
            return {now, servers, page[1], users}
            """)
}
