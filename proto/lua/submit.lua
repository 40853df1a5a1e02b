-- submit.lua: write durable intent. One call takes a batch of rows.
--
-- ARGV, repeated per row:  id kind payload nopts [name value]...
--   id ''       -> a numeric id from INCR lash:{q}:seq (handy from redis-cli)
--   options     -> max_attempts N | timeout_ms N | backoff fixed:MS|exp:BASE:CAP
--                  | on_lost rerun|abandon | delay_ms N | run_at MS
--                  | priority P (-1000..1000, higher first; 0 the default:
--                    lib.lua, lash_prio_*)
--                  | after ID[,ID...] (runs once all of them completed; lib.lua,
--                    lash_dep_*)
-- Returns, per row, {id, status}: status 'created', 'exists' (same registration:
-- a no-op) or an error text starting 'conflict:' or 'invalid:'.
-- One SPUBLISH on lash:{q}:poke per batch wakes the workers.
--
-- Nothing is written before every queue-wide key the call writes was checked,
-- and a row key that holds something other than a row is refused by name: a
-- batch is never half-applied. A created row's id leaves the done set (where
-- it may linger when its old row was deleted by hand), so trimming never
-- deletes the new, live row.
local function lash_submit_one(base, now, id, kind, payload, opts, counts)
    local why = lash_bad_name(kind, LASH_KIND_MAX, false)
    if why then return 'invalid: kind ' .. why end
    if type(payload) ~= 'string' or #payload == 0 then payload = 'null' end
    if #payload > LASH_PAYLOAD_MAX then
        return 'invalid: payload is ' .. #payload .. ' bytes, over ' .. LASH_PAYLOAD_MAX
    end
    if string.find(payload, '\0', 1, true) or not pcall(cjson.decode, payload) then
        return 'invalid: payload is not valid JSON'
    end
    local max, timeout, backoff, on_lost, run_at = LASH_DEFAULT_MAX_ATTEMPTS, 0, '', '', now
    local prio, after = 0, nil
    for name, v in pairs(opts) do
        if name == 'max_attempts' then
            max = lash_int(v, 1, LASH_ATTEMPTS_MAX)
            if not max then return 'invalid: max_attempts must be 1..' .. LASH_ATTEMPTS_MAX end
        elseif name == 'timeout_ms' then
            timeout = lash_int(v, 0, LASH_TIMEOUT_MAX)
            if not timeout then return 'invalid: timeout_ms must be 0..' .. LASH_TIMEOUT_MAX end
        elseif name == 'delay_ms' then
            local d = lash_int(v, 0, LASH_DELAY_MAX)
            if not d then return 'invalid: delay_ms must be 0..' .. LASH_DELAY_MAX end
            -- With run_at too, the later of the two (pairs() has no order).
            run_at = math.max(run_at, now + d)
        elseif name == 'run_at' then
            local at = lash_int(v, 0, now + LASH_DELAY_MAX)
            if not at then return 'invalid: run_at must be a ms time within a year' end
            run_at = opts.delay_ms and math.max(run_at, at) or at
        elseif name == 'backoff' then
            local why = lash_bad_backoff(v)
            if why then return 'invalid: backoff ' .. why end
            if v ~= LASH_DEFAULT_BACKOFF then backoff = v end
        elseif name == 'on_lost' then
            if v ~= 'rerun' and v ~= 'abandon' then return 'invalid: on_lost must be rerun or abandon' end
            if v == 'abandon' then on_lost = v end
        elseif name == 'after' then
            local why
            after, why = lash_dep_parse(v, id)
            if not after then return 'invalid: ' .. why end
        elseif name == 'priority' then
            prio = lash_int(v, -LASH_PRIO_MAX, LASH_PRIO_MAX)
            if not prio then return 'invalid: priority must be an integer -1000..1000' end
        else
            return 'invalid: unknown option ' .. tostring(name)
        end
    end
    local rk = base .. ':p:' .. id
    -- EXISTS first: a new id (the common case) costs less than six empty fields.
    local old, why = redis.call('EXISTS', rk) == 1
    if old then
        old, why = lash_row_read(rk, 'kind', 'payload', 'max_attempts', 'timeout_ms', 'backoff', 'on_lost', 'priority', 'after')
        if not old then return 'invalid: ' .. why end
        if not old[1] then return 'invalid: ' .. rk .. ' exists but is not a process row (no kind)' end
    end
    if old then
        -- Idempotent by id: the same registration is a no-op, another is a conflict.
        if old[1] ~= kind then return 'conflict: id exists with kind ' .. old[1] end
        if old[2] ~= payload then return 'conflict: id exists with another payload' end
        local omax = tonumber(old[3]) or LASH_DEFAULT_MAX_ATTEMPTS -- absent: the default
        if omax ~= max then return 'conflict: id exists with max_attempts ' .. omax end
        if (tonumber(old[4]) or 0) ~= timeout then return 'conflict: id exists with another timeout_ms' end
        if (old[5] or '') ~= backoff then return 'conflict: id exists with another backoff' end
        if (old[6] or '') ~= on_lost then return 'conflict: id exists with another on_lost' end
        if (lash_prio_of(old[7]) or 0) ~= prio then return 'conflict: id exists with another priority' end
        if (old[8] or '') ~= (after and table.concat(after, ',') or '') then
            return 'conflict: id exists with another after'
        end
        return 'exists'
    end
    -- Options equal to their defaults are left out: a smaller row (an absent
    -- max_attempts is LASH_DEFAULT_MAX_ATTEMPTS to every reader, C and Lua).
    local f = { 'kind', kind, 'payload', payload, 'state', 'pending', 'created_ms', lash_str(now) }
    if max ~= LASH_DEFAULT_MAX_ATTEMPTS then f[#f + 1] = 'max_attempts'; f[#f + 1] = lash_str(max) end
    if run_at ~= now then f[#f + 1] = 'run_at'; f[#f + 1] = run_at end
    if timeout ~= 0 then f[#f + 1] = 'timeout_ms'; f[#f + 1] = timeout end
    if backoff ~= '' then f[#f + 1] = 'backoff'; f[#f + 1] = backoff end
    if on_lost ~= '' then f[#f + 1] = 'on_lost'; f[#f + 1] = on_lost end
    if prio ~= 0 then
        local why = lash_prio_broken(base)
        if why then return 'invalid: ' .. why end
        f[#f + 1] = 'priority'; f[#f + 1] = lash_str(prio)
    end
    local waits, ended
    if after then
        local why
        waits, ended, why = lash_dep_prepare(base, after)
        if not waits then return 'invalid: ' .. why end
        f[#f + 1] = 'after'; f[#f + 1] = table.concat(after, ',')
        if #waits > 0 and not ended then f[#f + 1] = 'deps_left'; f[#f + 1] = lash_str(#waits) end
    end
    redis.call('HSET', rk, unpack(f))
    if prio ~= 0 then
        -- An older row of the id (deleted by hand) may have left it in a
        -- priority set: the new row is there only where it is put below.
        -- The sets were checked above (lash_prio_broken).
        lash_index('ZREM', base .. ':prio:wait', id)
        lash_index('ZREM', base .. ':prio:ready', id)
    end
    if ended then
        -- A dependency already failed, was cancelled or abandoned: so is this row.
        lash_count(counts, 'pending')
        lash_count(counts, 'total_submitted')
        lash_finish(base, id, 'cancelled', now, counts, 'pending', 'error',
            'dependency ' .. ended[1] .. ' ended ' .. ended[2])
        return 'created'
    elseif waits and #waits > 0 then
        lash_dep_park(base, id, waits)
    elseif prio ~= 0 then
        -- Out of due, where a hand may have left the id: a pending prioritized
        -- row waits in one priority set alone (as lash_prio_requeue).
        lash_index('ZREM', base .. ':due', id)
        lash_prio_put(base, id, prio, run_at, now, lash_prio_step(base))
    else
        lash_index('ZADD', lash_key(base, 'due'), lash_str(run_at), id)
    end
    lash_index('ZREM', lash_key(base, 'done'), id)
    lash_event(base, 'submitted', id, 'kind', kind)
    lash_count(counts, 'pending')
    lash_count(counts, 'total_submitted')
    return 'created'
end

-- Checks the shape of ARGV (rows of id kind payload nopts [name value]...) and
-- the keys a call writes, before its first write. True when an id is empty
-- (the seq counter will be used).
local function lash_submit_check(base, ARGV)
    local i, rows, seq = 1, 0, false
    while i <= #ARGV do
        local nopts = lash_int(ARGV[i + 3] or '0', 0, 16)
        if not nopts or i + 3 + 2 * nopts > #ARGV then
            lash_refuse('row at ARGV[' .. i .. '] must be: id kind payload nopts [name value]...')
        end
        if ARGV[i] == '' then seq = true end
        i = i + 4 + 2 * nopts
        rows = rows + 1
        if rows > LASH_BATCH_MAX then lash_refuse('at most ' .. LASH_BATCH_MAX .. ' rows per submit') end
    end
    lash_stats_open(base, 'pending', 'total_submitted') -- the counters it changes
    lash_guard(base, 'due', 'done')
    if seq then
        local v = redis.pcall('GET', base .. ':seq')
        if type(v) == 'table' or (v and not lash_int(v, 0, 9007199254740990)) then
            lash_refuse(base .. ':seq is not a counter: lash did not write it; delete it to go on')
        end
    end
end

local function lash_submit(KEYS, ARGV)
    local base = lash_base(KEYS)
    local now = lash_now()
    lash_submit_check(base, ARGV)
    local counts, out, i = {}, {}, 1
    while i <= #ARGV do
        local id, kind, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
        local nopts = lash_int(ARGV[i + 3] or '0', 0, 16)
        local opts = {}
        for j = 1, nopts do opts[ARGV[i + 2 + 2 * j]] = ARGV[i + 3 + 2 * j] end
        i = i + 4 + 2 * nopts
        if id == '' then id = lash_str(redis.call('INCR', base .. ':seq')) end
        local why = lash_bad_name(id, LASH_ID_MAX, true)
        local status = why and ('invalid: id ' .. why) or lash_submit_one(base, now, id, kind, payload, opts, counts)
        out[#out + 1] = { id, status }
    end
    lash_flush_counts(base, counts)
    if (counts.pending or 0) > 0 then lash_publish(base .. ':poke', 'submit') end
    return out
end
