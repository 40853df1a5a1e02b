-- stats.lua: the queue at a glance. No ARGV.
-- Returns field/value pairs: every counter of lash:{q}:stats (rows per state,
-- total_* since the queue began), due (non-terminal rows, prioritized pending
-- ones too: lib.lua, lash_prio_*), done (retained
-- terminal rows), oldest_due_ms (how long the longest-waiting eligible row has
-- waited, 0 when none; rows of due only), eligible (due rows whose score is <= now: pending rows
-- ready to run and running rows whose lease ran out), workers (alive within
-- the last minute), now_ms.
local function lash_stats(KEYS, ARGV)
    local base = lash_base(KEYS)
    local now = lash_now()
    local out = redis.call('HGETALL', base .. ':stats')
    local oldest = redis.call('ZRANGE', base .. ':due', 0, 0, 'WITHSCORES')
    local wait = 0
    if oldest[2] and tonumber(oldest[2]) <= now then wait = now - tonumber(oldest[2]) end
    local pn, pe = 0, 0
    if lash_prio_any(base) then pn, pe = lash_prio_counts(base, now) end
    local extra = { 'due', redis.call('ZCARD', base .. ':due') + pn, 'done', redis.call('ZCARD', base .. ':done'),
        'oldest_due_ms', wait, 'eligible', redis.call('ZCOUNT', base .. ':due', '-inf', now) + pe, 'workers',
        redis.call('ZCOUNT', base .. ':workers', now - LASH_WORKER_STALE_MS, '+inf'), 'now_ms', now }
    for _, v in ipairs(extra) do out[#out + 1] = v end
    return out
end
