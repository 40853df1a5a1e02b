-- peek.lua: is a row of the queue eligible now? A worker's poll looks with
-- this before it claims: an idle fleet costs Redis a look at the due set per
-- poll, not a claim's writes and upkeep. Read-only; no ARGV.
-- Returns 1 when some row's due time has come (pending or with a lease that
-- ran out), else 0. It runs without lib.lua (nothing of it is needed), so an
-- EVALSHA of it does not build the library's functions first.
local function lash_peek(KEYS, ARGV)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if #redis.call('ZRANGEBYSCORE', KEYS[1] .. ':due', '-inf', now, 'LIMIT', 0, 1) > 0 then return 1 end
    -- Prioritized rows (lib.lua, lash_prio_*): one EXISTS when there are none.
    local wait, ready = KEYS[1] .. ':prio:wait', KEYS[1] .. ':prio:ready'
    if redis.call('EXISTS', wait, ready) == 0 then return 0 end
    local ok, r = pcall(redis.call, 'ZCARD', ready)
    if ok and r > 0 then return 1 end
    ok, r = pcall(redis.call, 'ZRANGEBYSCORE', wait, '-inf', now, 'LIMIT', 0, 1)
    return (ok and #r > 0) and 1 or 0
end
