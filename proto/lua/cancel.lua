-- cancel.lua: stop a process. ARGV: id [reason]
-- A pending row is cancelled at once ('cancelled'); a running one is flagged and
-- its id announced on lash:{q}:cancel, so its owner kills it and records
-- 'cancelled' ('requested'); a terminal row is left alone ('refused: <state>').
-- A missing row answers 'not-found'; a key that is not a row, 'refused: ...'.
local function lash_cancel(KEYS, ARGV)
    local base = lash_base(KEYS)
    local id, reason = ARGV[1], ARGV[2] or 'cancelled by request'
    if lash_bad_name(id, LASH_ID_MAX, true) then return 'not-found' end
    local rk = base .. ':p:' .. id
    local f, why = lash_row_read(rk, 'state', 'priority')
    if not f then return 'refused: ' .. why end
    local state = f[1]
    if not state then return 'not-found' end
    if state == 'pending' then
        local counts = {}
        local now = lash_now()
        lash_stats_open(base)
        lash_guard(base, 'due', 'done')
        lash_finish(base, id, 'cancelled', now, counts, state, 'error', string.sub(reason, 1, LASH_ERROR_MAX))
        lash_prio_forget(base, id, f[2])
        lash_flush_counts(base, counts)
        return 'cancelled'
    end
    if state == 'running' then
        -- lash_now resets the call's state the library keeps between calls
        -- (lash_trimmed: without it the events key's type goes unchecked here
        -- and a key of another type fails the call after the HSET).
        lash_now()
        lash_stats_open(base)
        redis.call('HSET', rk, 'cancel', '1')
        lash_publish(base .. ':cancel', id)
        lash_event(base, 'cancel-requested', id)
        return 'requested'
    end
    return 'refused: ' .. state
end
