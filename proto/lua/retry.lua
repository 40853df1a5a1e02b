-- retry.lua: an operator re-opens a terminal failed, cancelled or abandoned row
-- as a fresh pending process (attempts start again from zero). ARGV: id
-- Returns 'reopened', 'refused: <state>' (or why the key is not a row) or
-- 'not-found'.
local function lash_retry(KEYS, ARGV)
    local base = lash_base(KEYS)
    local id = ARGV[1]
    if lash_bad_name(id, LASH_ID_MAX, true) then return 'not-found' end
    local rk = base .. ':p:' .. id
    local f, why = lash_row_read(rk, 'state', 'priority')
    if not f then return 'refused: ' .. why end
    local state = f[1]
    if not state then return 'not-found' end
    if state ~= 'failed' and state ~= 'cancelled' and state ~= 'abandoned' then
        return 'refused: ' .. state
    end
    local now = lash_now()
    lash_stats_open(base)
    lash_guard(base, 'due', 'done')
    redis.call('HSET', rk, 'state', 'pending', 'attempt', 0, 'updated_ms', now)
    -- A retried dependent runs without waiting again (deps_left gone): its
    -- dependencies no longer settle it.
    redis.call('HDEL', rk, 'cancel', 'finished_ms', 'owner', 'deps_left')
    redis.call('ZREM', base .. ':done', id)
    if not lash_prio_requeue(base, id, f[2], now, now) then redis.call('ZADD', base .. ':due', now, id) end
    lash_event(base, 'reopened', id, 'from', state)
    local counts = {}
    lash_count(counts, state, -1)
    lash_count(counts, 'pending')
    lash_flush_counts(base, counts)
    lash_publish(base .. ':poke', 'retry')
    return 'reopened'
end
