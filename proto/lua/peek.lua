-- peek.lua: is a row of the queue eligible now? A worker's poll looks with
-- this before it claims: an idle fleet costs Redis a look at the due set per
-- poll, not a claim's writes and upkeep. Read-only; no ARGV.
-- Returns the ms until the first row of the due set falls due (at most a
-- day): 0 when one's time has come (pending, or with a lease that ran out),
-- -1 when the set is empty. So a worker that looked learns when to look again: a delayed row, a
-- row held back by a limit or a lease about to run out is taken on time, not
-- at the next poll. It runs without lib.lua (nothing of it is needed), so an
-- EVALSHA of it does not build the library's functions first.
local function lash_peek(KEYS, ARGV)
    local first = redis.call('ZRANGE', KEYS[1] .. ':due', 0, 0, 'WITHSCORES')
    if #first == 0 then return -1 end
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local wait = math.ceil((tonumber(first[2]) or 0) - now)
    -- Capped at a day: a row a year out is no reason to wake before then.
    return math.min(math.max(wait, 0), 86400000)
end
