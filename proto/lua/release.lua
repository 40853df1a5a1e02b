-- release.lua: give leases back (graceful shutdown, or rows a claim brought that
-- the owner will not run).
--
-- ARGV: triples id token ran.
--   ran 0: the process never started: the row is pending and due at once, and
--          the attempt it was on is handed back, not spent;
--   ran 1: it started and was stopped: the same, except that a row with
--          on_lost=abandon ends 'abandoned' (it may have done part of its work,
--          and it must not run twice).
-- A row whose cancellation was asked ends 'cancelled' instead, so it never runs
-- again. Returns one status per triple: 1 released, 0 stale (the lease is not
-- the caller's, or its row key is not a row).
local function lash_release_one(base, now, id, ran, f, counts)
    redis.call('DEL', base .. ':lease:' .. id)
    if f[7] then lash_limit_free(base, base .. ':p:' .. id, id, f[7], counts) end -- it held a limit's slot
    if f[2] == '1' then
        lash_finish(base, id, 'cancelled', now, counts, 'running', 'error',
            'cancelled by request (released at shutdown)')
        return
    end
    if ran and f[3] == 'abandon' then
        lash_finish(base, id, 'abandoned', now, counts, 'running', 'error',
            'stopped at shutdown on attempt ' .. (f[1] or '?') .. ' and on_lost=abandon')
        return
    end
    local attempt = lash_int(f[1], 1, LASH_ATTEMPTS_MAX) or 1
    redis.call('HSET', base .. ':p:' .. id, 'state', 'pending', 'attempt', lash_str(attempt - 1), 'updated_ms',
        lash_str(now))
    if not lash_prio_requeue(base, id, f[8], now, now) then redis.call('ZADD', base .. ':due', lash_str(now), id) end
    lash_event(base, 'released', id)
    lash_count(counts, 'running', -1)
    lash_count(counts, 'pending', 1)
end

local function lash_release(KEYS, ARGV)
    local base = lash_base(KEYS)
    if #ARGV % 3 ~= 0 then lash_refuse('release wants id token ran triples') end
    for i = 3, #ARGV, 3 do
        if ARGV[i] ~= '0' and ARGV[i] ~= '1' then lash_refuse('release: ran must be 0 or 1') end
    end
    local now = lash_now()
    lash_stats_open(base)
    lash_guard(base, 'due', 'done')
    local counts, out = {}, {}
    for i = 1, #ARGV, 3 do
        local id, token = ARGV[i], ARGV[i + 1]
        local f = lash_row_read(base .. ':p:' .. id, 'attempt', 'cancel', 'on_lost', 'state', 'owner', 'fence', 'slot',
            'priority')
        if f and f[4] == 'running' and f[5] and f[6] and f[5] .. ':' .. f[6] == token then
            lash_release_one(base, now, id, ARGV[i + 2] == '1', f, counts)
            out[#out + 1] = 1
        else
            out[#out + 1] = 0
        end
    end
    lash_flush_counts(base, counts)
    lash_limit_poke(base)
    if (counts.pending or 0) > 0 then lash_publish(base .. ':poke', 'release') end
    return out
end
