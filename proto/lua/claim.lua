-- claim.lua: one drive. Takes up to N due rows for one owner.
--
-- ARGV: owner n ttl_ms keep_n keep_ms
-- For each due id (score <= now), at most n:
--   pending            -> lease (SET NX PX), fence+1, attempt+1, running, rescored
--                         to the lease expiry so no other drive sees it until then;
--   running, no lease  -> the owner died or was cut off: on_lost=abandon ends it
--                         'abandoned'; rerun claims it again as a new attempt while
--                         attempts remain, else it ends 'failed'; a cancel request
--                         ends it 'cancelled';
--   running, leased    -> the score lagged a renew: rescored, skipped;
--   unreadable         -> ends 'failed' with an error naming the broken field.
-- The call is also the worker's heartbeat (lash:{q}:workers) and trims terminal
-- rows past retention (keep_n newest, none older than keep_ms; 0 = no bound).
-- Returns {seen, bad, row...}: seen = due ids looked at (seen == n: maybe more),
-- bad = rows failed for bad data, each row {id, kind, payload, attempt, fence,
-- timeout_ms, backoff, max_attempts}.
local function lash_claim_row(base, now, owner, ttl, id, counts)
    local rk = base .. ':p:' .. id
    local due = base .. ':due'
    local f = redis.call('HMGET', rk, 'state', 'kind', 'payload', 'attempt', 'max_attempts',
        'fence', 'timeout_ms', 'backoff', 'on_lost', 'cancel')
    local state = f[1]
    if not state then
        if redis.call('EXISTS', rk) == 0 then
            -- Nothing to record on: forget the id, and say so in the log.
            redis.call('ZREM', due, id)
            lash_event(base, 'dropped', id, 'error', 'row is missing')
            return nil, false
        end
        lash_finish(base, id, 'failed', now, counts, nil, 'error', "bad row: field 'state' is missing")
        return nil, true
    end
    if LASH_TERMINAL[state] then
        redis.call('ZREM', due, id) -- a terminal row is never work
        return nil, false
    end
    if not LASH_LIVE[state] then
        lash_finish(base, id, 'failed', now, counts, nil, 'error',
            "bad row: field 'state' is not a state: " .. string.sub(state, 1, 32))
        return nil, true
    end
    local lease = base .. ':lease:' .. id
    local attempt = lash_int(f[4] or '0', 0, LASH_ATTEMPTS_MAX)
    local max = lash_int(f[5] or LASH_DEFAULT_MAX_ATTEMPTS, 1, LASH_ATTEMPTS_MAX)
    local fence = lash_int(f[6] or '0', 0, 9007199254740991)
    local timeout = lash_int(f[7] or '0', 0, LASH_TIMEOUT_MAX)
    local bad
    -- An id no submit could write (set by hand) would not fit the claim reply:
    -- the worker would reject the whole batch and every row in it would sit
    -- leased and unrun. Fail it here, by name.
    if lash_bad_name(id, LASH_ID_MAX, true) then bad = 'id ' .. lash_bad_name(id, LASH_ID_MAX, true)
    elseif lash_bad_name(f[2], LASH_KIND_MAX, false) then bad = "field 'kind' is missing or malformed"
    elseif not f[3] then bad = "field 'payload' is missing"
    elseif #f[3] > LASH_PAYLOAD_MAX then bad = "field 'payload' is over " .. LASH_PAYLOAD_MAX .. ' bytes'
    elseif not attempt then bad = "field 'attempt' is not an integer 0.." .. LASH_ATTEMPTS_MAX
    elseif not max then bad = "field 'max_attempts' is not an integer 1.." .. LASH_ATTEMPTS_MAX
    elseif not fence then bad = "field 'fence' is not a non-negative integer"
    elseif not timeout then bad = "field 'timeout_ms' is not an integer 0.." .. LASH_TIMEOUT_MAX
    elseif f[9] and f[9] ~= 'rerun' and f[9] ~= 'abandon' then bad = "field 'on_lost' is not rerun|abandon"
    elseif f[8] and lash_bad_backoff(f[8]) then bad = "field 'backoff' " .. lash_bad_backoff(f[8])
    end
    if state == 'running' then
        local pttl = redis.call('PTTL', lease)
        if pttl == -1 then
            -- A lease with no expiry (set by hand) would hold the row forever:
            -- give it one, so it runs out like any other.
            redis.call('PEXPIRE', lease, ttl)
            pttl = ttl
        end
        -- PTTL 0 is a lease in its last millisecond: it still exists (a script
        -- sees time stand still), so SET NX below would fail. Still held.
        if pttl >= 0 then
            redis.call('ZADD', due, now + math.max(pttl, 1), id)
            return nil, false
        end
        -- The lease ran out: whoever held it is gone or cut off.
        lash_count(counts, 'total_lost')
        lash_event(base, 'lease-lost', id, 'attempt', tostring(f[4]), 'fence', tostring(f[6]))
        if bad then
            lash_finish(base, id, 'failed', now, counts, state, 'error', 'bad row: ' .. bad)
            return nil, true
        end
        -- Ended here, the fence moves on too, so the lost owner's late complete
        -- is told stale rather than "already recorded".
        if f[10] == '1' then
            lash_finish(base, id, 'cancelled', now, counts, state, 'error', 'cancelled; its owner lost the lease',
                'fence', fence + 1)
            return nil, false
        elseif f[9] == 'abandon' then
            lash_finish(base, id, 'abandoned', now, counts, state, 'error',
                'lease lost on attempt ' .. attempt .. ' and on_lost=abandon', 'fence', fence + 1)
            return nil, false
        elseif attempt >= max then
            lash_finish(base, id, 'failed', now, counts, state, 'error',
                'lease lost on attempt ' .. attempt .. ' of ' .. max .. ' (worker died or was cut off)',
                'fence', fence + 1)
            return nil, false
        end
        -- Rerun: it stays 'running' in the counters; only the lease changes hands.
    elseif bad then
        lash_finish(base, id, 'failed', now, counts, state, 'error', 'bad row: ' .. bad)
        return nil, true
    end
    fence = fence + 1
    attempt = attempt + 1
    -- Numbers as text through lash_str: formatted once per call, not per row.
    local fs, as = lash_str(fence), lash_str(attempt)
    if not redis.call('SET', lease, owner .. ':' .. fs, 'NX', 'PX', lash_str(ttl)) then
        -- A lease with no running row (set by hand?): wait for it to expire,
        -- and make sure it does.
        local pttl = redis.call('PTTL', lease)
        if pttl < 0 then
            redis.call('PEXPIRE', lease, ttl)
            pttl = ttl
        end
        redis.call('ZADD', due, now + math.max(pttl, 1), id)
        return nil, false
    end
    redis.call('HSET', rk, 'state', 'running', 'attempt', as, 'fence', fs,
        'owner', owner, 'updated_ms', lash_str(now))
    lash_index('ZADD', due, lash_str(now + ttl), id)
    lash_event(base, 'claimed', id, 'attempt', as, 'owner', owner)
    if state == 'pending' then -- a rerun was counted 'running' already
        lash_count(counts, 'pending', -1)
        lash_count(counts, 'running', 1)
    end
    return { id, f[2], f[3], attempt, fence, timeout, f[8] or '', max }, false
end

local function lash_claim(KEYS, ARGV)
    local base = lash_base(KEYS)
    local owner = ARGV[1]
    local n = lash_int(ARGV[2], 0, LASH_BATCH_MAX)
    local ttl = lash_int(ARGV[3], 100, LASH_TIMEOUT_MAX)
    local keep_n = lash_int(ARGV[4] or '-1', -1, 1000000000)
    local keep_ms = lash_int(ARGV[5] or '0', 0, 9007199254740991)
    if type(owner) ~= 'string' or #owner == 0 or #owner > LASH_WORKER_ID_MAX or
        string.find(owner, '[%c%s\127-\255]') then
        return redis.error_reply('ERR lash: claim owner must be a printable worker id without spaces')
    end
    if not n or not ttl or not keep_n or not keep_ms then
        return redis.error_reply('ERR lash: claim wants owner n(0..' .. LASH_BATCH_MAX .. ') ttl_ms(>=100) keep_n keep_ms')
    end
    local now = lash_now()
    local counts, out, bad = {}, { 0, 0 }, 0
    redis.call('ZADD', base .. ':workers', now, owner)
    redis.call('ZREMRANGEBYSCORE', base .. ':workers', '-inf', now - LASH_WORKER_STALE_MS)
    if n > 0 then
        local ids = redis.call('ZRANGEBYSCORE', base .. ':due', '-inf', now, 'LIMIT', 0, n)
        out[1] = #ids
        for _, id in ipairs(ids) do
            local row, isbad = lash_claim_row(base, now, owner, ttl, id, counts)
            if row then out[#out + 1] = row end
            if isbad then bad = bad + 1 end
        end
    end
    out[2] = bad
    -- Up to 100 more rows than this drive may later finish: with a fixed 100,
    -- workers of more than 100 slots finish rows faster than claims trim them
    -- and the done set runs far past keep_n (tests/test_reliability_memory.c).
    lash_flush_index() -- the trim reads the done set
    lash_trim_done(base, now, keep_n, keep_ms, 100 + n, counts)
    lash_flush_counts(base, counts)
    return out
end
