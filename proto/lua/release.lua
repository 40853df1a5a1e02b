-- release.lua: give leases back (graceful shutdown): the rows are due at once,
-- and the attempt they were on is handed back, not spent. A row whose
-- cancellation was asked while it ran is ended 'cancelled' instead, so it never
-- runs again.
--
-- ARGV: pairs id token. Returns one status per pair: 1 released, 0 stale.
local function lash_release_one(base, now, id, counts)
    local rk = base .. ':p:' .. id
    local f = redis.call('HMGET', rk, 'attempt', 'cancel')
    redis.call('DEL', base .. ':lease:' .. id)
    if f[2] == '1' then
        lash_finish(base, id, 'cancelled', now, counts, 'running', 'error',
            'cancelled by request (released at shutdown)')
        return
    end
    local attempt = lash_int(f[1], 1, LASH_ATTEMPTS_MAX) or 1
    redis.call('HSET', rk, 'state', 'pending', 'attempt', attempt - 1, 'updated_ms', now)
    redis.call('ZADD', base .. ':due', now, id)
    lash_event(base, 'released', id)
    lash_count(counts, 'running', -1)
    lash_count(counts, 'pending', 1)
end

local function lash_release(KEYS, ARGV)
    local base = lash_base(KEYS)
    if #ARGV % 2 ~= 0 then return redis.error_reply('ERR lash: release wants id token pairs') end
    local now = lash_now()
    local counts, out = {}, {}
    for i = 1, #ARGV, 2 do
        local id, token = ARGV[i], ARGV[i + 1]
        if redis.call('GET', base .. ':lease:' .. id) == token then
            lash_release_one(base, now, id, counts)
            out[#out + 1] = 1
        else
            out[#out + 1] = 0
        end
    end
    lash_flush_counts(base, counts)
    if (counts.pending or 0) > 0 then redis.call('PUBLISH', base .. ':poke', 'release') end
    return out
end
