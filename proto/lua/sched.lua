-- sched.lua: recurring schedules of a queue (lashctl schedule, the workers'
-- firing). Its EVAL text carries submit.lua (proto/scripts.c): a firing is an
-- ordinary submit, with the same checks and the same row.
--
-- Keys (all in the queue's slot):
--   lash:{q}:schedules     zset  schedule name -> ms of its next firing check
--                                 (+inf while paused)
--   lash:{q}:sched:<name>  hash  spec tz kind payload opt.<submit option>...
--                                 created_ms next_ms paused last_fire_ms last_id
--                                 last_status fired skipped last_error
--
-- ARGV[1] is the action:
--   add SPEC TZ NAME KIND PAYLOAD NOPTS [name value]...  (from NAME on, a
--        submit row: lash_argv_submit_row encodes both)
--        -> 'created', 'exists' (the same definition: nothing changes) or
--           'replaced' (another definition: its next check starts now).
--           Options: submit's, but delay_ms and run_at (a firing runs at once);
--           max_attempts timeout_ms backoff on_lost are checked here, any other
--           when it fires (its submit's status says).
--   rm NAME | pause NAME | resume NAME -> 'ok' or 'not found'
--        (resume does not catch up the paused time: firings from now on)
--   list -> per schedule (by next firing): {name, field, value, ...}
--   fire [NAME EXPECT FIRE NEXT SKIPPED WHY]...  (the workers)
--        For each schedule whose next_ms is still EXPECT (a compare-and-set:
--        of the workers that saw it due, one wins; the others get 'moved'):
--        submits the process NAME@FIRE (FIRE '' when no firing fell due: the
--        check only advances), and sets next_ms to NEXT. The caller computed
--        FIRE (the latest firing in [EXPECT, now]: the catch-up rule) and NEXT
--        from the spec (proto/cron.c); the script checks EXPECT <= FIRE <= now
--        and FIRE < NEXT ('invalid: ...' for that row otherwise). WHY, when not
--        '', is why the caller could not
--        compute them (a bad spec or zone): recorded as last_error, next_ms NEXT.
--        -> per row: the submit's status ('created', 'exists', 'invalid: ...'),
--           'advanced', 'error', 'moved', 'paused' or 'gone'.

local function lash_sched_keys(base, name)
    local why = lash_bad_name(name, 64, false)
    if why then lash_refuse('schedule name ' .. why) end
    return base .. ':sched:' .. name
end

-- The schedule's hash as a table (nil when absent); refuses another type.
local function lash_sched_read(key)
    local ok, f = pcall(redis.call, 'HGETALL', key)
    if not ok then
        return nil, key .. ' holds a ' .. redis.call('TYPE', key)['ok'] .. ', not a schedule hash'
    end
    if #f == 0 then return nil end
    local h = {}
    for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
    return h
end

local function lash_sched_index_check(base)
    local t = redis.call('TYPE', base .. ':schedules')['ok']
    if t ~= 'none' and t ~= 'zset' then
        lash_refuse(base .. ':schedules holds a ' .. t .. ', not a zset: lash did not write it; delete it to go on')
    end
end

local function lash_sched_add(base, now, ARGV)
    local spec, tz, name, kind, payload = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
    local key = lash_sched_keys(base, name)
    if type(spec) ~= 'string' or #spec == 0 or #spec > 128 or string.find(spec, '[%z\r\n]') then
        lash_refuse('schedule spec must be 1..128 bytes on one line')
    end
    if type(tz) ~= 'string' or #tz > 64 or not string.find(tz, '^[%w_+/%-]*$') then
        lash_refuse('schedule tz must be a zone name (Europe/Paris) or empty for UTC')
    end
    local why = lash_bad_name(kind, LASH_KIND_MAX, false)
    if why then lash_refuse('kind ' .. why) end
    if type(payload) ~= 'string' or #payload == 0 then payload = 'null' end
    if #payload > LASH_PAYLOAD_MAX or string.find(payload, '\0', 1, true) or not pcall(cjson.decode, payload) then
        lash_refuse('payload must be valid JSON of at most ' .. LASH_PAYLOAD_MAX .. ' bytes')
    end
    local nopts = lash_int(ARGV[7] or '0', 0, 16)
    if not nopts or #ARGV ~= 7 + 2 * nopts then lash_refuse('add wants SPEC TZ NAME KIND PAYLOAD NOPTS [name value]...') end
    local f = { 'spec', spec, 'tz', tz, 'kind', kind, 'payload', payload }
    for i = 1, nopts do
        local o, v = ARGV[6 + 2 * i], ARGV[7 + 2 * i]
        if o == 'delay_ms' or o == 'run_at' or type(o) ~= 'string' or not string.find(o, '^[%w_]+$') then
            lash_refuse('schedule option ' .. tostring(o) .. ' is not for schedules (a firing runs at once)')
        end
        if (o == 'max_attempts' and not lash_int(v, 1, LASH_ATTEMPTS_MAX))
            or (o == 'timeout_ms' and not lash_int(v, 0, LASH_TIMEOUT_MAX))
            or (o == 'backoff' and lash_bad_backoff(v))
            or (o == 'on_lost' and v ~= 'rerun' and v ~= 'abandon') then
            lash_refuse('bad value for schedule option ' .. o .. ': ' .. tostring(v))
        end
        f[#f + 1] = 'opt.' .. o
        f[#f + 1] = v
    end
    lash_sched_index_check(base)
    local old, why2 = lash_sched_read(key)
    if why2 then lash_refuse(why2 .. ': lash did not write it; delete it to go on') end
    if old then
        local same = true
        local mine = {}
        for i = 1, #f, 2 do
            mine[f[i]] = true
            if old[f[i]] ~= f[i + 1] then same = false end
        end
        for k in pairs(old) do
            if string.sub(k, 1, 4) == 'opt.' and not mine[k] then same = false end
        end
        if same then return 'exists' end
        redis.call('DEL', key)
    end
    local t = lash_str(now)
    f[#f + 1] = 'created_ms'; f[#f + 1] = t
    f[#f + 1] = 'next_ms'; f[#f + 1] = t
    f[#f + 1] = 'paused'; f[#f + 1] = '0'
    redis.call('HSET', key, unpack(f))
    redis.call('ZADD', base .. ':schedules', t, name)
    lash_publish(base .. ':poke', 'sched')
    return old and 'replaced' or 'created'
end

local function lash_sched_fire(base, now, ARGV)
    if (#ARGV - 1) % 6 ~= 0 or #ARGV > 1 + 6 * 64 then
        lash_refuse('fire wants rows of NAME EXPECT FIRE NEXT SKIPPED WHY (at most 64)')
    end
    lash_sched_index_check(base)
    lash_stats_open(base)
    lash_guard(base, 'due', 'done')
    -- Read and check every row before the first write.
    local rows = {}
    for i = 2, #ARGV, 6 do
        local r = { name = ARGV[i], why = ARGV[i + 5] }
        r.key = lash_sched_keys(base, r.name)
        r.expect = lash_int(ARGV[i + 1], 0, 9007199254740991)
        r.fire = ARGV[i + 2] ~= '' and lash_int(ARGV[i + 2], 0, now) or false
        r.next = lash_int(ARGV[i + 3], 0, 9007199254740991)
        r.skipped = lash_int(ARGV[i + 4], 0, 9007199254740991)
        if not r.expect or not r.next or not r.skipped or (ARGV[i + 2] ~= '' and not r.fire) then
            lash_refuse('fire row ' .. r.name .. ': EXPECT, NEXT, SKIPPED must be ms and FIRE a ms not after now')
        end
        -- A row whose times do not hold is that row's answer, not the call's:
        -- the rows beside it still fire. NEXT may equal EXPECT only when nothing
        -- fires (the index said due, the hash a later time: they agree again).
        if r.why == '' and (r.next < r.expect or (r.fire and (r.fire < r.expect or r.fire >= r.next))) then
            r.invalid = 'invalid: wants EXPECT <= FIRE < NEXT'
        end
        r.h, r.bad = lash_sched_read(r.key)
        rows[#rows + 1] = r
    end
    local counts, out, poke = {}, {}, false
    for _, r in ipairs(rows) do
        local h, st = r.h, nil
        if r.invalid then
            st = r.invalid
        elseif r.bad or not h or not h.kind then
            -- Gone (rm), or a key lash did not write: out of the index.
            redis.call('ZREM', base .. ':schedules', r.name)
            st = r.bad and ('dropped: ' .. r.bad) or 'gone'
        elseif h.paused == '1' then
            st = 'paused'
        elseif h.next_ms ~= lash_str(r.expect) then
            st = 'moved'
        else
            local f = { 'next_ms', lash_str(r.next) }
            if r.why ~= '' then
                st = 'error'
                f[#f + 1] = 'last_error'; f[#f + 1] = string.sub(r.why, 1, 300)
            elseif not r.fire then
                st = 'advanced'
            else
                local opts = {}
                for k, v in pairs(h) do
                    if string.sub(k, 1, 4) == 'opt.' then opts[string.sub(k, 5)] = v end
                end
                local id = r.name .. '@' .. lash_str(r.fire)
                st = lash_submit_one(base, now, id, h.kind, h.payload, opts, counts)
                if st == 'created' then poke = true end
                f[#f + 1] = 'last_fire_ms'; f[#f + 1] = lash_str(r.fire)
                f[#f + 1] = 'last_id'; f[#f + 1] = id
                f[#f + 1] = 'last_status'; f[#f + 1] = st
                f[#f + 1] = 'fired'; f[#f + 1] = lash_str((lash_int(h.fired, 0, 9007199254740991) or 0) + (st == 'created' and 1 or 0))
                f[#f + 1] = 'skipped'; f[#f + 1] = lash_str((lash_int(h.skipped, 0, 9007199254740991) or 0) + r.skipped)
            end
            redis.call('HSET', r.key, unpack(f))
            redis.call('ZADD', base .. ':schedules', lash_str(r.next), r.name)
        end
        out[#out + 1] = st
    end
    lash_flush_counts(base, counts)
    if poke then lash_publish(base .. ':poke', 'submit') end
    return out
end

local function lash_sched(KEYS, ARGV)
    local base = lash_base(KEYS)
    local now = lash_now()
    local action = ARGV[1]
    if action == 'fire' then return lash_sched_fire(base, now, ARGV) end
    if action == 'add' then return lash_sched_add(base, now, ARGV) end
    if action == 'list' then
        lash_sched_index_check(base)
        local out = {}
        for _, name in ipairs(redis.call('ZRANGE', base .. ':schedules', 0, -1)) do
            local ok, f = pcall(redis.call, 'HGETALL', base .. ':sched:' .. name)
            local row = { name }
            if ok then
                for _, v in ipairs(f) do row[#row + 1] = v end
            end
            out[#out + 1] = row
        end
        return out
    end
    if action ~= 'rm' and action ~= 'pause' and action ~= 'resume' then
        lash_refuse('action must be add, rm, pause, resume, list or fire, got ' .. tostring(action))
    end
    if #ARGV ~= 2 then lash_refuse(action .. ' wants NAME') end
    local key = lash_sched_keys(base, ARGV[2])
    lash_sched_index_check(base)
    local h, why = lash_sched_read(key)
    if why then lash_refuse(why .. ': lash did not write it; delete it to go on') end
    if not h then
        redis.call('ZREM', base .. ':schedules', ARGV[2])
        return 'not found'
    end
    if action == 'rm' then
        redis.call('DEL', key)
        redis.call('ZREM', base .. ':schedules', ARGV[2])
    elseif action == 'pause' then
        redis.call('HSET', key, 'paused', '1')
        redis.call('ZADD', base .. ':schedules', '+inf', ARGV[2])
    elseif h.paused == '1' then
        local t = lash_str(now)
        redis.call('HSET', key, 'paused', '0', 'next_ms', t)
        redis.call('ZADD', base .. ':schedules', t, ARGV[2])
        lash_publish(base .. ':poke', 'sched')
    end
    return 'ok'
end
