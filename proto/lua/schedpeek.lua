-- schedpeek.lua: which recurring schedules of the queue are due? Every worker
-- calls this in its schedule poll (worker/sched.c); read-only, and without
-- lib.lua, like peek.lua: with no schedule it costs Redis one ZRANGE on a key
-- that does not exist.
--
-- Returns {now, earliest, [name, spec, tz, next_ms]...}: the server's time in
-- ms, the earliest next firing of an active schedule (-1: none), then up to 16
-- schedules whose next_ms has come. A schedule key that is not a hash (written
-- by hand) comes back with spec false, so the caller reports it to sched.lua,
-- which drops it from the index.
local function lash_schedpeek(KEYS, ARGV)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local idx = KEYS[1] .. ':schedules'
    local first = redis.pcall('ZRANGE', idx, 0, 0, 'WITHSCORES')
    if first.err then
        return redis.error_reply('ERR lash: ' .. idx .. ' is not a sorted set: lash did not write it; delete it to go on')
    end
    local earliest = tonumber(first[2])
    if not earliest or earliest == math.huge then return { now, -1 } end
    if earliest > now then return { now, earliest } end
    local out = { now, earliest }
    for _, name in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, 16)) do
        local f = redis.pcall('HMGET', KEYS[1] .. ':sched:' .. name, 'spec', 'tz', 'next_ms')
        if f.err then f = { false, false, false } end
        out[#out + 1] = name
        out[#out + 1] = f[1]
        out[#out + 1] = f[2] or ''
        out[#out + 1] = f[3] or '0'
    end
    return out
end
