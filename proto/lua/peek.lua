-- peek.lua: when is a row of the queue eligible? A worker's poll looks with
-- this before it claims: an idle fleet costs Redis a look at the due set per
-- poll, not a claim's writes and upkeep. Read-only; no ARGV.
-- Returns the ms until the first row falls due (at most a day): 0 when one's
-- time has come (pending, or with a lease that ran out), -1 when no row is
-- waiting. So a worker that looked learns when to look again: a delayed row, a
-- row held back by a limit or a lease about to run out is taken on time, not
-- at the next poll. Prioritized rows (lash_prio_* in lib.lua) wait in their
-- own sets: one EXISTS when there are none. It runs without lib.lua (nothing
-- of it is needed), so an EVALSHA of it does not build the library's
-- functions first.
local function lash_peek(KEYS, ARGV)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local first = redis.call('ZRANGE', KEYS[1] .. ':due', 0, 0, 'WITHSCORES')
    local at = first[2] and tonumber(first[2])
    local wait, ready = KEYS[1] .. ':prio:wait', KEYS[1] .. ':prio:ready'
    if redis.call('EXISTS', wait, ready) > 0 then
        local ok, r = pcall(redis.call, 'ZCARD', ready)
        if ok and r > 0 then return 0 end
        ok, r = pcall(redis.call, 'ZRANGE', wait, 0, 0, 'WITHSCORES')
        local w = ok and r[2] and tonumber(r[2])
        if w and (not at or w < at) then at = w end
    end
    if not at then return -1 end
    -- Capped at a day: a row a year out is no reason to wake before then.
    return math.min(math.max(math.ceil(at - now), 0), 86400000)
end
