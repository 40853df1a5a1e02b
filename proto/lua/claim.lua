-- claim.lua: one drive. Takes up to N due rows for one owner.
--
-- ARGV: owner n ttl_ms keep_n keep_ms [seq [trim_max]]
-- For each due id (score <= now), at most n (with prioritized rows waiting,
-- the best-ranked of due and lash:{q}:prio:*: lash_prio_pick in lib.lua):
--   pending            -> lease (SET PX), a new fence, attempt+1, running,
--                         rescored to the lease expiry so no other drive sees it
--                         until then;
--   running, no lease  -> the owner died or was cut off: on_lost=abandon ends it
--                         'abandoned'; rerun claims it again as a new attempt while
--                         attempts remain, else it ends 'failed'; a cancel request
--                         ends it 'cancelled';
--   running, leased    -> the score lagged a renew: rescored, skipped;
--   unreadable         -> ends 'failed' with an error naming the broken field;
--   not a row          -> (missing, or a key of another type) leaves due.
-- Fences: the queue keeps the last fence it handed out (field last_fence of
-- lash:{q}:stats); a claim takes max(that, the row's fence) + 1, so the fences
-- of an id grow over its whole life in the queue, across trims, resubmits and
-- rows deleted by hand, and a fence names one claim in the queue.
-- seq: when given and rows were leased, the call leaves lash:{q}:claim:<owner> =
-- "<seq> <id> <fence>..." for ttl_ms, so an owner that lost the reply finds the
-- rows it was given (recover.lua) and hands them back unrun.
-- When trim_max > 0 (or absent), the call also does the queue's upkeep: the
-- worker's heartbeat (lash:{q}:workers) and retention of terminal rows (keep_n
-- newest, none older than keep_ms; 0 = no bound), at most trim_max rows.
-- Returns {seen, workers, wait, rows, <rows x 8 values>, note...}: seen = due
-- ids looked at (seen == n: maybe more); workers = the workers that beat within
-- LASH_WORKER_FRESH_MS, counted by the upkeep (0 without it: the workers share
-- the queue's poll by it); wait = when seen < n, the ms until the next row falls
-- due (lash_first_due: -1 none), else -1; rows = how many rows were claimed,
-- each then as eight values in a run (id, kind, payload, attempt, fence,
-- timeout_ms, backoff, max_attempts); the rest are notes, a text for each thing
-- the call failed, dropped or repaired for bad data ("<id>: what was wrong").
-- One flat array: every table in a reply costs Redis seven probes for its kind
-- (error, status, double, map...) and a deferred length.
local LASH_FENCE_MAX = 9007199254740991 -- 2^53 - 1: the last integer a double holds exactly

-- Notes a bad thing about id for the reply (the worker logs each).
local function lash_note(c, id, what)
    c.notes[#c.notes + 1] = id .. ': ' .. what
end

-- Takes the row's lease for token: one SET NX PX GET, which answers what the
-- key held when it did not take it. A key of another type is not a lease lash
-- wrote: it is deleted (repaired, noted) and the lease taken. Returns true when
-- taken, false when someone holds it (the row then waits: lash_claim_wait).
local function lash_claim_take(base, c, id, lk, token)
    local ok, old = pcall(redis.call, 'SET', lk, token, 'NX', 'PX', c.ttls, 'GET')
    if ok then return not old end
    local t = redis.call('TYPE', lk)['ok']
    redis.call('DEL', lk)
    local what = lk .. ' held a ' .. t .. ', not a lease: deleted'
    lash_event(base, 'repaired', id, 'error', what)
    lash_note(c, id, what)
    redis.call('SET', lk, token, 'PX', c.ttls)
    return true
end

-- The text of fence c.last + 1 (c.lasts is c.last's): the next fence is most
-- often its predecessor plus one, and bumping the last digit costs a fraction
-- of a string.format.
local function lash_next_fence(c, fence)
    if fence == c.last + 1 and c.lasts then
        local n = #c.lasts
        local d = string.byte(c.lasts, n)
        if d < 57 then return string.sub(c.lasts, 1, n - 1) .. string.char(d + 1) end
    end
    return string.format('%d', fence)
end

-- A held lease: keeps the row out of sight until it runs out. One without an
-- expiry (set by hand) would hold the row forever: it gets ttl, and a note.
local function lash_claim_wait(base, c, id, lk, rk)
    local pttl = redis.call('PTTL', lk)
    if pttl == -1 then
        redis.call('PEXPIRE', lk, c.ttls)
        pttl = c.ttl
        local what = lk .. ' had no expiry: given ' .. c.ttl .. ' ms'
        lash_event(base, 'repaired', id, 'error', what)
        lash_note(c, id, what)
    end
    -- PTTL 0 is a lease in its last millisecond: it still exists (a script sees
    -- time stand still), so it is still held. A pending row of a priority (rk
    -- given) waits in its priority's sets, keeping its rank.
    local at = c.now + math.max(pttl, 1)
    if rk and lash_prio_requeue(base, id, redis.call('HGET', rk, 'priority'), at, c.now) then return end
    redis.call('ZADD', lash_key(base, 'due'), lash_str(at), id)
end

-- What is wrong with a readable row's fields, or nil.
local function lash_claim_bad(id, f, attempt, max, fence, timeout)
    local why = lash_bad_name(id, LASH_ID_MAX, true)
    -- An id no submit could write (set by hand) would not fit the claim reply:
    -- the worker would reject the whole batch and every row in it would sit
    -- leased and unrun. Fail it here, by name.
    if why then return 'id ' .. why end
    if lash_bad_name(f[2], LASH_KIND_MAX, false) then return "field 'kind' is missing or malformed" end
    if not f[3] then return "field 'payload' is missing" end
    if #f[3] > LASH_PAYLOAD_MAX then return "field 'payload' is over " .. LASH_PAYLOAD_MAX .. ' bytes' end
    if not attempt then return "field 'attempt' is not an integer 0.." .. LASH_ATTEMPTS_MAX end
    if not max then return "field 'max_attempts' is not an integer 1.." .. LASH_ATTEMPTS_MAX end
    if not fence then return "field 'fence' is not an integer 0.." .. (LASH_FENCE_MAX - 1) end
    if not timeout then return "field 'timeout_ms' is not an integer 0.." .. LASH_TIMEOUT_MAX end
    if f[9] and f[9] ~= 'rerun' and f[9] ~= 'abandon' then return "field 'on_lost' is not rerun|abandon" end
    if f[8] and lash_bad_backoff(f[8]) then return "field 'backoff' " .. lash_bad_backoff(f[8]) end
    return nil
end

-- Ends a row whose lease ran out (or that failed for bad data) in state, its
-- fence moved on so the lost owner's late complete hears "stale", not "already
-- recorded".
local function lash_claim_end(base, c, id, from, fence, state, why)
    c.last, c.lasts = math.max(c.last, fence or 0) + 1, nil
    lash_finish(base, id, state, c.now, c.counts, from, 'error', why, 'fence', lash_str(c.last))
end

-- Fails a row for bad data: the row says why, the reply's notes too.
local function lash_claim_fail(base, c, id, from, fence, why)
    lash_claim_end(base, c, id, from, fence, 'failed', 'bad row: ' .. why)
    lash_note(c, id, 'bad row: ' .. why)
end

-- One due id: when claimed, its eight values go after c.out's last row and
-- the fence's text is returned; else nil. c carries the call's state: now,
-- owner, ttl, counts, notes, out, rows and last (the queue's last fence).
local function lash_claim_row(base, c, id)
    local rk, lk = lash_row_keys(base, id)
    local due = lash_key(base, 'due')
    local f, why = lash_row_read(rk, 'state', 'kind', 'payload', 'attempt', 'max_attempts',
        'fence', 'timeout_ms', 'backoff', 'on_lost', 'cancel')
    if f and not f[1] and redis.call('EXISTS', rk) == 0 then why = 'row is missing' end
    if why then
        -- Nothing lash can record on: forget the id, and say so in the log.
        redis.call('ZREM', due, id)
        lash_event(base, 'dropped', id, 'error', why)
        lash_note(c, id, why .. '; dropped from due')
        return nil
    end
    local state = f[1]
    local fence = lash_int(f[6] or '0', 0, LASH_FENCE_MAX - 1)
    if not state then return lash_claim_fail(base, c, id, nil, fence, "field 'state' is missing") end
    if LASH_TERMINAL[state] then
        redis.call('ZREM', due, id) -- a terminal row is never work
        return nil
    end
    if not LASH_LIVE[state] then
        return lash_claim_fail(base, c, id, nil, fence,
            "field 'state' is not a state: " .. string.sub(state, 1, 32))
    end
    local attempt = lash_int(f[4] or '0', 0, LASH_ATTEMPTS_MAX)
    local max = lash_int(f[5] or LASH_DEFAULT_MAX_ATTEMPTS, 1, LASH_ATTEMPTS_MAX)
    local timeout = lash_int(f[7] or '0', 0, LASH_TIMEOUT_MAX)
    local bad = lash_claim_bad(id, f, attempt, max, fence, timeout)
    -- The lease is taken first, for the fence this claim would give: a row
    -- that then ends here instead (lost for good, or bad) loses it again in
    -- lash_finish, with its fence moved to that same number.
    local next = math.max(c.last, fence or 0) + 1
    local fs = lash_next_fence(c, next)
    if not lash_claim_take(base, c, id, lk, c.owner .. ':' .. fs) then
        lash_claim_wait(base, c, id, lk, state == 'pending' and rk or nil)
        return nil
    end
    if state == 'running' then
        -- The lease ran out: whoever held it is gone or cut off.
        lash_count(c.counts, 'total_lost')
        lash_event(base, 'lease-lost', id, 'attempt', tostring(f[4]), 'fence', tostring(f[6]))
        if bad then return lash_claim_fail(base, c, id, state, fence, bad) end
        if f[10] == '1' then
            return lash_claim_end(base, c, id, state, fence, 'cancelled', 'cancelled; its owner lost the lease')
        elseif f[9] == 'abandon' then
            return lash_claim_end(base, c, id, state, fence, 'abandoned',
                'lease lost on attempt ' .. attempt .. ' and on_lost=abandon')
        elseif attempt >= max then
            return lash_claim_end(base, c, id, state, fence, 'failed',
                'lease lost on attempt ' .. attempt .. ' of ' .. max .. ' (worker died or was cut off)')
        end
        -- Rerun: it stays 'running' in the counters; only the lease changes hands.
    elseif bad then
        return lash_claim_fail(base, c, id, state, fence, bad)
    end
    -- A limit of the kind (lib.lua): true holds the row back; a kind is the
    -- slot it takes (written on the row below); false, no limit.
    local slot = c.lim and lash_limit_hold(base, c, id, f[2], lk, rk, state, next, fs)
    if slot == true then return nil end
    fence, c.last, c.lasts = next, next, fs
    attempt = attempt + 1
    local as = lash_str(attempt)
    if slot then
        redis.call('HSET', rk, 'state', 'running', 'attempt', as, 'fence', fs,
            'owner', c.owner, 'updated_ms', c.now_s, 'slot', slot)
    else
        redis.call('HSET', rk, 'state', 'running', 'attempt', as, 'fence', fs,
            'owner', c.owner, 'updated_ms', c.now_s)
    end
    lash_index('ZADD', due, c.until_s, id)
    lash_event(base, 'claimed', id, 'attempt', as, 'owner', c.owner)
    if state == 'pending' then -- a rerun was counted 'running' already
        lash_count(c.counts, 'pending', -1)
        lash_count(c.counts, 'running', 1)
    end
    local o, k = c.out, 4 + 8 * c.rows
    o[k + 1], o[k + 2], o[k + 3], o[k + 4] = id, f[2], f[3], attempt
    o[k + 5], o[k + 6], o[k + 7], o[k + 8] = fence, timeout, f[8] or '', max
    c.rows = c.rows + 1
    return fs
end

-- A claim call's state (lash_claim sets every field of it on each call).
local lash_cl = {}

-- Owners whose text was found good: a worker claims many times (a pure cache).
local lash_okowners, lash_nokowners = {}, 0

local function lash_claim_owner_check(owner)
    if lash_okowners[owner] then return end
    if type(owner) ~= 'string' or #owner == 0 or #owner > LASH_WORKER_ID_MAX or
        string.find(owner, '[%c%s\127-\255]') then
        lash_refuse('claim owner must be a printable worker id without spaces')
    end
    if lash_nokowners >= 256 then lash_okowners, lash_nokowners = {}, 0 end
    lash_okowners[owner] = true
    lash_nokowners = lash_nokowners + 1
end

-- The call's upkeep, when asked (trim_max > 0): the worker's heartbeat in
-- lash:{q}:workers, the sweep of workers silent for a minute, and retention
-- (keep_n newest terminal rows, none older than keep_ms), at most trim_max rows.
-- A worker asks about once a second and after every thousand rows it
-- recorded, so an idle worker's poll and a busy worker's claims stay cheap
-- while trimming keeps pace. The workers set is a log: written at best.
local function lash_claim_upkeep(base, c, keep_n, keep_ms, trim_max)
    local workers = base .. ':workers'
    if pcall(redis.call, 'ZADD', workers, c.now_s, c.owner) then
        redis.call('ZREMRANGEBYSCORE', workers, '-inf', lash_str(c.now - LASH_WORKER_STALE_MS))
        c.out[2] = redis.call('ZCOUNT', workers, lash_str(c.now - LASH_WORKER_FRESH_MS), '+inf')
    else
        lash_note(c, c.owner, workers .. ' is not a sorted set: no heartbeat written')
    end
    lash_flush_index() -- the trim reads the done set
    lash_trim_done(base, c.now, keep_n, keep_ms, trim_max, c.counts)
end

local function lash_claim(KEYS, ARGV)
    local base = lash_base(KEYS)
    local owner = ARGV[1]
    local n = lash_int(ARGV[2], 0, LASH_BATCH_MAX)
    local ttl = lash_int(ARGV[3], 100, LASH_TIMEOUT_MAX)
    local keep_n = lash_int(ARGV[4] or '-1', -1, 1000000000)
    local keep_ms = lash_int(ARGV[5] or '0', 0, 9007199254740991)
    local seq = ARGV[6]
    local trim_max = ARGV[7] and lash_int(ARGV[7], 0, 100000)
    lash_claim_owner_check(owner)
    if not n or not ttl or not keep_n or not keep_ms or (seq and not string.find(seq, '^%d+$')) or
        (ARGV[7] and not trim_max) then
        lash_refuse('claim wants owner n(0..' .. LASH_BATCH_MAX ..
            ') ttl_ms(>=100) keep_n keep_ms [seq(0: none) [upkeep: trim_max, 0 for none]]')
    end
    if seq == '0' then seq = nil end
    if not ARGV[7] then trim_max = 100 + n end -- redis-cli: upkeep on every call
    local now = lash_now()
    -- The reply, sized for a row: a table grown one value at a time is
    -- rehashed at every power of two.
    local out, ids = { 0, 0, -1, 0, nil, nil, nil, nil, nil, nil, nil, nil }, {}
    -- The call's state lives in one table kept from call to call (the
    -- Functions library keeps chunk-level locals): every field is set here.
    local c = lash_cl
    c.now, c.now_s, c.owner, c.ttl, c.ttls = now, lash_str(now), owner, ttl, lash_str(ttl)
    c.until_s, c.counts, c.notes, c.last, c.lasts = lash_str(now + ttl), {}, {}, 0, nil
    c.out, c.n, c.rows, c.lim = out, n, 0, nil
    -- Every read that checks a key the call writes comes before its first
    -- write: due (read here), stats (opened), done (when rows may end here or
    -- be trimmed).
    if n > 0 then
        -- Priorities and limits (lib.lua): one EXISTS answers for a queue
        -- that uses neither, and each is looked at only when it may be used.
        local some = redis.call('EXISTS', lash_key(base, 'prio:wait'), lash_key(base, 'prio:ready'),
            lash_key(base, 'limits')) > 0
        -- Priorities: the rows of lash:{q}:prio:* merged in by rank.
        local pids, why = nil, nil
        if some and lash_prio_any(base) then pids, why = lash_prio_pick(base, n, now) end
        if why then lash_note(c, base, why .. '; prioritized rows wait') end
        ids = pids or redis.call('ZRANGEBYSCORE', lash_key(base, 'due'), '-inf', c.now_s, 'LIMIT', '0', lash_str(n))
        out[1] = #ids
        if some and #ids > 0 then c.lim = lash_limit_open(base) end -- nil when the queue has none
    end
    -- The counters a claim changes (lash_flush_counts) are read with the rest.
    c.last = lash_stats_open(base, 'pending', 'running')
    if #ids > 0 or trim_max > 0 then lash_guard(base, 'done') end
    if #ids > 0 and c.last >= LASH_FENCE_MAX then
        lash_refuse(base .. ':stats last_fence is ' .. LASH_FENCE_MAX .. ': no fence is left to hand out')
    end
    local first = c.last
    local record = seq and { seq } or nil
    for _, id in ipairs(ids) do
        local fs = lash_claim_row(base, c, id)
        if fs and record then
            record[#record + 1] = id
            record[#record + 1] = fs
        end
    end
    if record and #record > 1 then
        redis.call('SET', base .. ':claim:' .. owner, table.concat(record, ' '), 'PX', c.ttls)
    end
    if trim_max > 0 then lash_claim_upkeep(base, c, keep_n, keep_ms, trim_max) end
    if lash_events_broken then lash_note(c, base .. ':events', lash_events_broken) end
    lash_flush_counts(base, c.counts, c.last ~= first and { last_fence = c.last } or nil)
    -- Fewer due than asked for: when the next row falls due (after the index
    -- writes above, so the rows just leased count at their leases' ends), so
    -- that a delayed row or one a limit held back is taken on time.
    if n > 0 and out[1] < n then out[3] = lash_first_due(base, now) end
    out[4] = c.rows
    local k = 4 + 8 * c.rows
    for i, note in ipairs(c.notes) do out[k + i] = note end
    return out
end
