-- complete.lua: record outcomes. One call takes a batch.
--
-- ARGV, repeated: id token outcome text retry_ms
--   outcome 'ok'     -> completed, text is the result
--           'fail'   -> text is the error; while attempts remain the row goes back
--                       to pending, due in retry_ms (the owner computed the backoff),
--                       else failed; a row whose cancellation was asked ends cancelled
--           'cancel' -> cancelled, text says why
--           'abort'  -> failed now, whatever attempts remain (bad input that no
--                       retry can fix: malformed payload, unknown kind)
-- Only the holder the row names (owner:fence, its token) may record: anyone
-- else is stale and changes nothing. Returns one status per row: 1 recorded; 2 already
-- recorded by this very token (a re-sent complete after a lost reply); 0 stale
-- (also when the lease or row key holds something lash did not write: that row
-- only, never the rest of the batch).
local function lash_complete_one(base, now, id, token, outcome, text, retry_ms, counts)
    local rk, lease = lash_row_keys(base, id)
    local f = lash_row_read(rk, 'state', 'attempt', 'max_attempts', 'cancel', 'owner', 'fence', 'slot')
    if not f then return 0 end
    -- The row names its holder (owner:fence, written by the claim with the
    -- lease). A lease that ran out while nobody claimed the row again still
    -- names the caller: its outcome is as good as any. A lease key left beside
    -- a row that does not name its token (deleted, resubmitted or ended by
    -- hand) records nothing.
    local mine = f[5] and f[6] and f[5] .. ':' .. f[6] == token
    if f[1] ~= 'running' or not mine then
        -- Already recorded by this very token: the row still names it, and it is
        -- pending (a retry) or terminal (a drive that ends a lost lease moves the
        -- fence on, so the lost owner hears stale).
        if mine and (f[1] == 'pending' or LASH_TERMINAL[f[1]]) then return 2 end
        return 0
    end
    if f[7] then lash_limit_free(base, rk, id, f[7], counts) end -- it held a slot of its kind's limit
    if outcome == 'ok' then
        lash_finish(base, id, 'completed', now, counts, f[1], 'result', text)
        return 1
    end
    local from = f[1]
    if outcome == 'cancel' or f[4] == '1' then
        lash_finish(base, id, 'cancelled', now, counts, from, 'error', text)
        return 1
    end
    local attempt = lash_int(f[2], 0, LASH_ATTEMPTS_MAX) or LASH_ATTEMPTS_MAX
    local max = lash_int(f[3] or LASH_DEFAULT_MAX_ATTEMPTS, 1, LASH_ATTEMPTS_MAX) or 1
    if attempt < max and outcome == 'fail' then
        redis.call('HSET', rk, 'state', 'pending', 'updated_ms', lash_str(now), 'error', text)
        -- Its priority is read here only: a completion pays nothing for priorities.
        if not lash_prio_requeue(base, id, redis.call('HGET', rk, 'priority'), now + retry_ms, now) then
            redis.call('ZADD', lash_key(base, 'due'), lash_str(now + retry_ms), id)
        end
        redis.call('DEL', lease)
        lash_event(base, 'retried', id, 'attempt', attempt, 'error', string.sub(text, 1, 200))
        lash_count(counts, 'running', -1)
        lash_count(counts, 'pending', 1)
        lash_count(counts, 'total_retried')
        return 1
    end
    lash_finish(base, id, 'failed', now, counts, from, 'error', text)
    return 1
end

local LASH_OUTCOMES = { ok = true, fail = true, cancel = true, abort = true }

local function lash_complete(KEYS, ARGV)
    local base = lash_base(KEYS)
    if #ARGV % 5 ~= 0 or #ARGV > 5 * LASH_BATCH_MAX then
        lash_refuse('complete wants groups of id token outcome text retry_ms')
    end
    for i = 1, #ARGV, 5 do
        if not LASH_OUTCOMES[ARGV[i + 2]] then lash_refuse('complete outcome must be ok, fail, cancel or abort') end
        if not lash_int(ARGV[i + 4], 0, LASH_DELAY_MAX) then
            lash_refuse('complete retry_ms must be 0..' .. LASH_DELAY_MAX)
        end
    end
    local now = lash_now()
    -- The counters a completion changes (lash_flush_counts), read with the rest.
    lash_stats_open(base, 'running', 'completed', 'total_completed')
    lash_guard(base, 'due', 'done')
    local counts, out = {}, {}
    for i = 1, #ARGV, 5 do
        local outcome, text = ARGV[i + 2], ARGV[i + 3]
        local retry_ms = lash_int(ARGV[i + 4], 0, LASH_DELAY_MAX)
        -- Over-long text is the worker's bug, not the row's: record it cut, and say so.
        local max = outcome == 'ok' and LASH_RESULT_MAX or LASH_ERROR_MAX
        if #text > max then
            if outcome == 'ok' then
                outcome, text = 'fail', 'result is ' .. #text .. ' bytes, over ' .. LASH_RESULT_MAX
            else
                text = string.sub(text, 1, max)
            end
        end
        out[#out + 1] = lash_complete_one(base, now, ARGV[i], ARGV[i + 1], outcome, text, retry_ms, counts)
    end
    lash_flush_counts(base, counts)
    lash_limit_poke(base)
    return out
end
