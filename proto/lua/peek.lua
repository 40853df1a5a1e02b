-- peek.lua: is a row of the queue eligible now? A worker's poll looks with
-- this before it claims: an idle fleet costs Redis a look at the due set per
-- poll, not a claim's writes and upkeep. Read-only; no ARGV.
-- Returns 1 when some row's due time has come (pending or with a lease that
-- ran out), else 0. It runs without lib.lua (nothing of it is needed), so an
-- EVALSHA of it does not build the library's functions first.
local function lash_peek(KEYS, ARGV)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    return #redis.call('ZRANGEBYSCORE', KEYS[1] .. ':due', '-inf', now, 'LIMIT', 0, 1)
end
