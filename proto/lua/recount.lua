-- recount.lua: sets the per-state counters of lash:{q}:stats from the rows
-- themselves (lashctl stats --recount), for counters that drifted because rows
-- were written or deleted by hand. No ARGV. Live states are counted over the
-- due set and lash:{q}:prio:*, terminal ones over the done set, each id by its row's state; the
-- totals (total_*) and last_fence are history, not state, and stay as they are.
-- It reads every row of the queue in one call, so it holds Redis for a time
-- that grows with the rows (README "Inspect with redis-cli" has a measurement).
-- Returns the counters it set, as field/value pairs.
local function lash_recount(KEYS, ARGV)
    local base = lash_base(KEYS)
    lash_now()
    lash_stats_open(base)
    lash_guard(base, 'due', 'done')
    local c = { pending = 0, running = 0, completed = 0, failed = 0, cancelled = 0, abandoned = 0 }
    local sets = { due = LASH_LIVE, done = LASH_TERMINAL }
    -- Pending prioritized rows (lib.lua, lash_prio_*), when their sets are sound.
    if not lash_prio_broken(base) then sets['prio:wait'], sets['prio:ready'] = LASH_LIVE, LASH_LIVE end
    for set, states in pairs(sets) do
        for _, id in ipairs(redis.call('ZRANGE', base .. ':' .. set, 0, -1)) do
            local f = lash_row_read(base .. ':p:' .. id, 'state')
            local st = f and f[1]
            if st and states[st] then c[st] = c[st] + 1 end
        end
    end
    local out = {}
    for _, st in ipairs({ 'pending', 'running', 'completed', 'failed', 'cancelled', 'abandoned' }) do
        out[#out + 1] = st
        out[#out + 1] = lash_str(c[st])
    end
    redis.call('HSET', base .. ':stats', unpack(out))
    return out
end
