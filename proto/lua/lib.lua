-- lib.lua: what every lash script shares. Prepended to each operation for EVAL,
-- and to the whole Functions library. KEYS[1] is always the queue base
-- "lash:{q}"; every key is derived from it, so all of them live in one slot.
--
-- The limits mirror proto/limits.h (tests/test_proto.c checks they agree).
local LASH_ID_MAX = 128
local LASH_KIND_MAX = 64
local LASH_WORKER_ID_MAX = 128
local LASH_PAYLOAD_MAX = 1048576
local LASH_RESULT_MAX = 65536
local LASH_ERROR_MAX = 2048
local LASH_ATTEMPTS_MAX = 1000
local LASH_TIMEOUT_MAX = 604800000
local LASH_DELAY_MAX = 31536000000
local LASH_BATCH_MAX = 1000
local LASH_WAIT_MAX = 86400000
local LASH_PROGRESS_TEXT_MAX = 200
local LASH_DEFAULT_MAX_ATTEMPTS = 3
local LASH_DEFAULT_BACKOFF = 'exp:1000:60000'
local LASH_EVENTS_MAX = 10000
local LASH_WORKER_STALE_MS = 60000
-- A worker that beat within this window is polling: workers share the poll
-- of a queue by this count (worker/turn.c beats every 5 s).
local LASH_WORKER_FRESH_MS = 10000

-- What one script call remembers; lash_now() starts every call and resets it
-- (the Functions library keeps chunk-level locals from one FCALL to the next).
-- First, the integers it already turned into text (lash_str): Redis 7.0 turns
-- each number handed to redis.call into text with snprintf("%.17g") (~4,000
-- instructions: an eighth of a batch script's, callgrind, docs/benchmarks.md),
-- so lash hands it text only, and a call formats each distinct value once.
-- (Kept across calls, this cache made the Lua heap, and so every garbage
-- collection, larger: an empty complete cost 18 % more.) Then whether the call
-- trimmed the events stream.
local lash_strs, lash_nstrs, lash_trimmed = {}, 0, false
-- ... and the writes to the index sets (due, done) it deferred: see lash_index.
local lash_ix, lash_ixkeys = {}, {}
-- ... the queue's event level, once read (see lash_event), and the ids that
-- became terminal, announced once at the end (lash_flush_counts).
local lash_level, lash_ended = 'failures', {}
-- ... and why its events stream could not be written, if it could not.
local lash_events_broken = nil
-- ... the counters of lash:{q}:stats that lash_stats_open read for it, by
-- name (false: absent), which lash_flush_counts then need not read again
-- (LASH_NONE, never written, when there are none).
local LASH_NONE = {}
local lash_statv = LASH_NONE
-- Dependencies: settles the rows waiting on the call's terminal rows (the
-- lash_dep_* block at the end sets it; declared here for lash_flush_counts).
local lash_dep_settle = nil
-- Priorities: puts a pending row back in its priority's sets (the lash_prio_*
-- block sets it; declared here for the limits' hold and wake).
local lash_prio_requeue = nil

-- Publishes a message of the queue (a channel lash:{q}:<what>) with sharded
-- pub/sub: SPUBLISH stays within the queue's shard, where classic PUBLISH is
-- carried by a Cluster's bus to every node, which then costs every primary
-- for every process any other primary runs (docs/benchmarks.md, issue 11).
-- Whatever lash listens to it hears on both, so that an operator's plain
-- `redis-cli PUBLISH` keeps working; people listen with SSUBSCRIBE.
local function lash_publish(chan, msg)
    redis.call('SPUBLISH', chan, msg)
end

-- n (an integer) as decimal text, once per call. Never tostring(): Lua 5.1
-- formats numbers with "%.14g", so 10^14 would become "1e+14" and a lease token
-- built from such a fence would never match the one the worker sends.
local function lash_str(n)
    local s = lash_strs[n]
    if not s then
        s = string.format('%d', n)
        if lash_nstrs >= 4096 then lash_strs, lash_nstrs = {}, 0 end
        lash_strs[n] = s
        lash_nstrs = lash_nstrs + 1
    end
    return s
end

-- The server's clock, so no worker's clock skew can bend a lease.
local function lash_now()
    if lash_nstrs > 0 then lash_strs, lash_nstrs = {}, 0 end
    if #lash_ixkeys > 0 then lash_ix, lash_ixkeys = {}, {} end -- left by a call that failed
    if #lash_ended > 0 then lash_ended = {} end
    lash_trimmed, lash_level, lash_events_broken = false, 'failures', nil
    lash_statv = LASH_NONE
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Ends the call with an error reply. Only ever called before the call's first
-- write: Redis does not roll a script back, so an error after a write would
-- leave the writes before it (a half-applied call).
local function lash_refuse(msg)
    error({ err = 'ERR lash: ' .. msg })
end

local function lash_base(KEYS)
    local base = KEYS[1]
    if type(base) ~= 'string' or not string.find(base, '^lash:{[%w%._%-]+}$') then
        lash_refuse('KEYS[1] must be the queue base lash:{<queue>}, got ' .. tostring(base))
    end
    return base
end

-- The name of the queue-wide key base:name, built once: a concatenation
-- interns a new string (~1,000 instructions) and a batch names due and done
-- for every row. A pure cache of the last queue's names (a call has one).
local lash_kbase, lash_knames = nil, {}

local function lash_key(base, name)
    if base ~= lash_kbase then lash_kbase, lash_knames = base, {} end
    local k = lash_knames[name]
    if not k then
        k = base .. ':' .. name
        lash_knames[name] = k
    end
    return k
end

-- The row and lease keys of id (base:p:<id>, base:lease:<id>): a row's
-- keys are named by its claim or complete and again where it ends
-- (lash_finish); the last row's names are kept for that.
local lash_rbase, lash_rid, lash_rk, lash_lk = nil, nil, nil, nil

local function lash_row_keys(base, id)
    if id ~= lash_rid or base ~= lash_rbase then
        lash_rbase, lash_rid = base, id
        lash_rk, lash_lk = base .. ':p:' .. id, base .. ':lease:' .. id
    end
    return lash_rk, lash_lk
end

-- Checks, before the first write, that the queue-wide index keys the call
-- will write (due, done: sorted sets, proto/keys.h) are absent or sorted sets:
-- a key of another type (written by hand) would make Redis refuse a write half
-- way through the call, after the writes before it. Names the key, so an
-- operator knows what to repair. The stats hash is checked as it is read
-- (lash_stats_open); the events stream and the workers set are logs, written
-- at best (lash_event, the heartbeat).
local function lash_guard(base, ...)
    for i = 1, select('#', ...) do
        local key = lash_key(base, (select(i, ...)))
        -- ZCARD answers a number for a sorted set or no key, an error for any
        -- other type: cheaper than TYPE, whose answer is a table.
        if type(redis.pcall('ZCARD', key)) ~= 'number' then
            lash_refuse(key .. ' holds a ' .. redis.call('TYPE', key)['ok'] ..
                ', not a zset: lash did not write it; delete or rename it to go on')
        end
    end
end

-- Reads fields of a key that should be a row hash, without failing the call:
-- the fields (false for missing ones), or nil and why not when the key holds
-- another type. The row key is untrusted: anything may have been written there.
local function lash_row_read(rk, ...)
    local ok, f = pcall(redis.call, 'HMGET', rk, ...)
    if ok then return f end
    local t = redis.call('TYPE', rk)['ok']
    return nil, rk .. ' holds a ' .. t .. ', not a process row'
end

-- A lease key's value, without failing the call: the token (false when none),
-- or nil and the key's type when it holds something other than a string.
local function lash_lease_read(lk)
    local ok, v = pcall(redis.call, 'GET', lk)
    if ok then return v end
    return nil, redis.call('TYPE', lk)['ok']
end

-- nil when s is a good name, else why not.
-- Names without ':' (kinds) whose bytes were found good: a batch repeats a few
-- kinds, and the pattern match costs ~3,700 instructions. A pure cache, bounded.
local lash_oknames, lash_noknames = {}, 0

local function lash_bad_name(s, max, colon)
    if type(s) ~= 'string' or #s == 0 then return 'is empty' end
    if #s > max then return 'is ' .. #s .. ' bytes, over ' .. max end
    if colon or not lash_oknames[s] then
        local pat = colon and '^[%w%._%-:@]+$' or '^[%w%._%-]+$'
        if not string.find(s, pat) then
            return 'has a byte outside A-Z a-z 0-9 . _ -' .. (colon and ' : @' or '')
        end
        if not colon then
            if lash_noknames >= 1024 then lash_oknames, lash_noknames = {}, 0 end
            lash_oknames[s] = true
            lash_noknames = lash_noknames + 1
        end
    end
    return nil
end

-- nil when v is a backoff policy lash_backoff_parse (proto/record.c) accepts:
-- fixed:MS or exp:BASE:CAP with 1 <= BASE <= CAP, all within LASH_DELAY_MAX.
local function lash_bad_backoff(v)
    if type(v) ~= 'string' or #v > 40 then return 'must be fixed:MS or exp:BASE:CAP' end
    local ms = string.match(v, '^fixed:(%d+)$')
    if ms then
        if tonumber(ms) > LASH_DELAY_MAX then return 'fixed:MS must be 0..' .. LASH_DELAY_MAX end
        return nil
    end
    local b, c = string.match(v, '^exp:(%d+):(%d+)$')
    if not b then return 'must be fixed:MS or exp:BASE:CAP' end
    b, c = tonumber(b), tonumber(c)
    if b < 1 or c < b or c > LASH_DELAY_MAX then
        return 'exp:BASE:CAP wants 1 <= BASE <= CAP <= ' .. LASH_DELAY_MAX
    end
    return nil
end

-- An integer in [lo, hi] from a string or number, or nil.
-- Strings already parsed by lash_int: the integer, or false. A pure cache, so it
-- may outlive a call (bounded). Parsing costs ~4,500 instructions (a pattern
-- match, then strtod) and a claim parses four fields per row whose values repeat.
local lash_ints, lash_nints = {}, 0

local function lash_int(v, lo, hi)
    -- The cache first, for any v (only strings are ever keys of it): type()
    -- interns the name it answers, ~300 instructions, on every call.
    local n = lash_ints[v]
    if n == nil then
        if v == nil or v == false then return nil end
        if type(v) == 'string' then
            n = string.find(v, '^%-?%d+$') and tonumber(v) or false
            if lash_nints >= 4096 then lash_ints, lash_nints = {}, 0 end
            lash_ints[v] = n
            lash_nints = lash_nints + 1
        else
            n = tonumber(v)
            if n == nil or n ~= math.floor(n) then return nil end
        end
    end
    if not n or n < lo or n > hi then return nil end
    return n
end

-- The events stream logs transitions at the queue's level, field `events` of
-- lash:{q}:stats: 'failures' (the default) logs what needs an operator's eye
-- (failed, retried, cancelled, abandoned, lease-lost, dropped, repaired,
-- reopened, cancel-requested); 'all' adds the routine ones below (progress
-- too: a few a second per running process would push the failures out of the
-- capped stream), an XADD per row at every step (about a quarter of the Redis CPU of a process's life,
-- docs/benchmarks.md); 'off' logs nothing.
local LASH_ROUTINE = { submitted = true, claimed = true, completed = true, released = true,
    progress = true }

-- Opens the queue's stats hash for the call, before its first write: reads
-- the event level and the last fence handed out, and so checks its type (a
-- key of another type fails the call by name; a write to it at the end would
-- fail after the call's other writes). `...`: the counters the call expects
-- to change, read in the same HMGET, so that lash_flush_counts writes them
-- without reading them again (one call less; a counter not named here is read
-- there). Nothing but lash_flush_counts writes the counters within a call.
-- Returns last_fence (0 when none).
local function lash_stats_open(base, ...)
    local key = lash_key(base, 'stats')
    local ok, v = pcall(redis.call, 'HMGET', key, 'events', 'last_fence', ...)
    if not ok then
        lash_refuse(key .. ' holds a ' .. redis.call('TYPE', key)['ok'] ..
            ', not a hash: lash did not write it; delete or rename it to go on')
    end
    lash_level = (v[1] == 'all' or v[1] == 'off') and v[1] or 'failures'
    lash_statv = LASH_NONE
    if #v > 2 then
        lash_statv = {}
        for i = 3, #v do lash_statv[(select(i - 2, ...))] = v[i] end
    end
    return lash_int(v[2], 0, 9007199254740991) or 0
end

-- The events stream is a log, not state: an XADD refused because a hand left
-- another type at its key loses that entry and nothing else (the call goes on,
-- all of it). lash_events_broken says so to a claim, which notes it.
local function lash_event(base, ev, id, a, b, c, d)
    if lash_level == 'off' or (lash_level == 'failures' and LASH_ROUTINE[ev]) then return end
    local key = base .. ':events'
    -- Capped with '~' so Redis trims whole macro nodes, once per script call
    -- rather than in every XADD: a batch may run past the cap by its own events.
    if not lash_trimmed then
        lash_trimmed = true
        if not pcall(redis.call, 'XTRIM', key, 'MAXLEN', '~', lash_str(LASH_EVENTS_MAX)) then
            lash_events_broken = key .. ' holds a ' .. redis.call('TYPE', key)['ok'] ..
                ', not a stream: transitions are not logged'
        end
    end
    if lash_events_broken then return end
    if a == nil then
        redis.call('XADD', key, '*', 'event', ev, 'id', id)
    elseif c == nil then
        redis.call('XADD', key, '*', 'event', ev, 'id', id, a, b)
    else
        redis.call('XADD', key, '*', 'event', ev, 'id', id, a, b, c, d)
    end
end

-- Per-state row counts and running totals live in the hash lash:{q}:stats. A
-- script adds up its changes in a table and writes them once, so a batch of a
-- thousand rows costs a handful of HINCRBYs, not a thousand.
local function lash_count(c, field, n)
    c[field] = (c[field] or 0) + (n or 1)
end

-- ZADD/ZREM on an index set (due, done), deferred to the end of the script call
-- and sent as one variadic command per key and run of the same command: a batch
-- of rows then costs a few redis.call()s instead of one per row each (a call
-- costs ~3,000 instructions of wrapping alone; callgrind, docs/benchmarks.md).
-- Order is kept per key; writes to different keys do not interact. Only the
-- index sets go through here, never a key the same call reads back (the lease,
-- the row). lash_flush_counts (which every writing script ends with) applies
-- them; so does lash_flush_index, for a script that reads an index set after.
local function lash_index(op, key, a, b)
    local runs = lash_ix[key]
    if not runs then
        runs = {}
        lash_ix[key] = runs
        lash_ixkeys[#lash_ixkeys + 1] = key
    end
    local run = runs[#runs]
    if not run or run.op ~= op then
        run = { op = op }
        runs[#runs + 1] = run
    end
    run[#run + 1] = a
    if b ~= nil then run[#run + 1] = b end
end

local function lash_flush_index()
    for _, key in ipairs(lash_ixkeys) do
        for _, run in ipairs(lash_ix[key]) do
            -- In slices: unpack() of more than ~8000 values overflows Lua's C stack.
            for i = 1, #run, 1000 do
                redis.call(run.op, key, unpack(run, i, math.min(i + 999, #run)))
            end
        end
    end
    lash_ix, lash_ixkeys = {}, {}
end

-- The ms until the queue's first row falls due (at most a day): 0 when one's
-- time has come, -1 when no row waits. The due set, and the prioritized rows'
-- sets when there are any (lash_prio_*: one EXISTS when there are none). A
-- worker that asked wakes then rather than at its next poll (peek.lua, and a
-- claim that found fewer rows than it asked for).
local function lash_first_due(base, now)
    local first = redis.call('ZRANGE', lash_key(base, 'due'), '0', '0', 'WITHSCORES')
    local at = first[2] and tonumber(first[2])
    local wait, ready = lash_key(base, 'prio:wait'), lash_key(base, 'prio:ready')
    if redis.call('EXISTS', wait, ready) > 0 then
        local ok, r = pcall(redis.call, 'ZCARD', ready)
        if ok and r > 0 then return 0 end
        ok, r = pcall(redis.call, 'ZRANGE', wait, '0', '0', 'WITHSCORES')
        local w = ok and r[2] and tonumber(r[2])
        if w and (not at or w < at) then at = w end
    end
    if not at then return -1 end
    -- Capped at a day: a row a year out is no reason to wake before then.
    return math.min(math.max(math.ceil(at - now), 0), LASH_WAIT_MAX)
end

-- Applies the counter changes of the call: one HMGET, one HSET. A counter
-- never goes below zero (rows written by hand were never counted in), and a
-- value that is not an integer (written by hand) counts as zero; HINCRBY would
-- fail on it half way through the call. `sets` are fields written as they are
-- (last_fence).
local function lash_flush_counts(base, c, sets)
    if #lash_ended > 0 and lash_dep_settle then lash_dep_settle(base, c) end
    lash_flush_index()
    -- One message for the call's terminal rows: their ids, space-separated.
    if #lash_ended > 0 then
        lash_publish(base .. ':finished', table.concat(lash_ended, ' '))
        lash_ended = {}
    end
    local key, pre, args, fetch, got = lash_key(base, 'stats'), lash_statv, {}, {}, LASH_NONE
    lash_statv = LASH_NONE -- a second flush in the call reads them again
    for k, v in pairs(c) do
        if v ~= 0 and pre[k] == nil then fetch[#fetch + 1] = k end
    end
    if #fetch > 0 then
        local r = redis.call('HMGET', key, unpack(fetch))
        got = {}
        for i, k in ipairs(fetch) do got[k] = r[i] end
    end
    for k, v in pairs(c) do
        if v ~= 0 then
            local old = pre[k]
            if old == nil then old = got[k] end
            local n = (lash_int(old, -9007199254740991, 9007199254740991) or 0) + v
            args[#args + 1] = k
            args[#args + 1] = lash_str(n > 0 and n or 0)
        end
    end
    if sets then
        for k, v in pairs(sets) do
            args[#args + 1] = k
            args[#args + 1] = lash_str(v)
        end
    end
    if #args > 0 then redis.call('HSET', key, unpack(args)) end
end

local LASH_LIVE = { pending = true, running = true }
local LASH_TERMINAL = { completed = true, failed = true, cancelled = true, abandoned = true }
-- The running total of each terminal state (named once, not concatenated per row).
local LASH_TOTAL = { completed = 'total_completed', failed = 'total_failed', cancelled = 'total_cancelled',
    abandoned = 'total_abandoned' }

-- Moves a row to a terminal state: out of due, into done, announced on the
-- finished channel and in the events stream. `from` is the state it leaves (for
-- the counters; nil when it was unreadable). xf/xv: one more field to write.
-- A terminal row is final, so its updated_ms is when it finished: no
-- finished_ms is written (proto/record.h), a field and ~30 bytes less per
-- retained row.
local function lash_finish(base, id, state, now, counts, from, field, text, xf, xv)
    local rk, lk = lash_row_keys(base, id)
    local t = lash_str(now)
    if xf then
        redis.call('HSET', rk, 'state', state, 'updated_ms', t, field, text, xf, xv)
    elseif field then
        redis.call('HSET', rk, 'state', state, 'updated_ms', t, field, text)
    else
        redis.call('HSET', rk, 'state', state, 'updated_ms', t)
    end
    lash_index('ZREM', lash_key(base, 'due'), id)
    lash_index('ZADD', lash_key(base, 'done'), t, id)
    redis.call('DEL', lk)
    lash_ended[#lash_ended + 1] = id
    if field == 'error' then
        lash_event(base, state, id, 'error', string.sub(text, 1, 200))
    else
        lash_event(base, state, id)
    end
    if from and LASH_LIVE[from] then lash_count(counts, from, -1) end
    lash_count(counts, state)
    lash_count(counts, LASH_TOTAL[state])
end

-- Deletes terminal rows beyond retention: older than keep_ms, then the oldest
-- beyond keep_n, at most max rows per call so no call blocks Redis for long.
-- Only terminal rows go: an id in done whose row is live again (submitted anew
-- after its row was deleted by hand) or whose key is not a row only leaves the
-- done set. Returns how many ids left done.
local function lash_trim_done(base, now, keep_n, keep_ms, max, counts)
    local done = base .. ':done'
    local victims = {}
    if keep_ms and keep_ms > 0 then
        victims = redis.call('ZRANGEBYSCORE', done, '-inf', lash_str(now - keep_ms), 'LIMIT', '0', lash_str(max))
    end
    if keep_n and keep_n >= 0 and #victims < max then
        local over = redis.call('ZCARD', done) - #victims - keep_n
        if over > 0 then
            local more = redis.call('ZRANGE', done, lash_str(#victims),
                lash_str(#victims + math.min(over, max - #victims) - 1))
            for _, id in ipairs(more) do victims[#victims + 1] = id end
        end
    end
    for _, id in ipairs(victims) do
        local rk = base .. ':p:' .. id
        local f = lash_row_read(rk, 'state')
        if f and f[1] and LASH_TERMINAL[f[1]] then
            lash_count(counts, f[1], -1)
            redis.call('DEL', rk)
        end
    end
    -- In slices: unpack() of more than ~8000 values overflows Lua's C stack.
    for i = 1, #victims, 1000 do
        redis.call('ZREM', done, unpack(victims, i, math.min(i + 999, #victims)))
    end
    return #victims
end

-- ---- Fleet-wide limits per kind -------------------------------------------
-- lash:{q}:limits (hash) holds them, two fields per kind: '<kind>:concurrency'
-- = N (at most N rows of the kind running across the queue's workers) and
-- '<kind>:rate' = 'R/PERIOD_MS' (at most R starts in any PERIOD_MS). ':' is
-- not a byte of a kind, so the fields never collide. Enforced by the claim
-- (lash_limit_hold), with three keys per kind:
--   lash:{q}:running:<kind>  zset  id -> its lease's expiry ms: the rows
--       holding a concurrency slot. A renew moves the score; complete and
--       release remove the id; an id whose lease ran out is pruned by score,
--       so a lost lease frees its slot when it expires.
--   lash:{q}:starts:<kind>   zset  '<id>:<fence>' -> start ms: the rate's
--       sliding window, pruned by score.
--   lash:{q}:held:<kind>     zset  id -> ms it was first held back for a slot:
--       a freed slot wakes the oldest (lash_limit_free).
-- A row holding a slot names its kind in its field 'slot', so complete,
-- release and renew find the running set in the HMGET they do anyway: a queue
-- without limits pays nothing there, and a claim pays one EXISTS per call.
-- The bounds mirror proto/limits.h.
local LASH_LIMIT_CONCURRENCY_MAX = 1000000
local LASH_LIMIT_RATE_MAX = 100000
local LASH_LIMIT_PERIOD_MAX = 86400000
-- A freed slot pops at most this many held ids looking for one still waiting
-- (ids cancelled or claimed another way since they were held are skipped).
local LASH_LIMIT_WAKE_TRIES = 8
-- Set when a call woke a held row: the call pokes the queue's workers once.
local lash_limit_woke = false

-- The limit values of a kind, or why they are bad: conc (nil: none), rate and
-- period (nil: none), why (nil: good). Hand-written values are untrusted.
local function lash_limit_parse(cs, rs)
    local conc, rate, period
    if cs then
        conc = lash_int(cs, 1, LASH_LIMIT_CONCURRENCY_MAX)
        if not conc then return nil, nil, nil, 'concurrency is not an integer 1..' .. LASH_LIMIT_CONCURRENCY_MAX end
    end
    if rs then
        local r, p = string.match(rs, '^(%d+)/(%d+)$')
        rate = r and lash_int(r, 1, LASH_LIMIT_RATE_MAX)
        period = p and lash_int(p, 1, LASH_LIMIT_PERIOD_MAX)
        if not rate or not period then
            return nil, nil, nil, 'rate is not R/PERIOD_MS with R 1..' .. LASH_LIMIT_RATE_MAX ..
                ' and PERIOD_MS 1..' .. LASH_LIMIT_PERIOD_MAX
        end
    end
    return conc, rate, period, nil
end

-- A claim's start: {} when the queue has limits (kinds are looked up as rows
-- of them come), nil when it has none. One EXISTS per claim call.
local function lash_limit_open(base)
    if redis.call('EXISTS', base .. ':limits') == 0 then return nil end
    return {}
end

-- Reads kind's limits and its current use, once per claim call: false when
-- the kind has none (or they are unusable: the call's notes say why, and the
-- kind runs unlimited rather than stranding its rows).
local function lash_limit_load(base, c, kind)
    local lkey = base .. ':limits'
    local ok, v = pcall(redis.call, 'HMGET', lkey, kind .. ':concurrency', kind .. ':rate')
    if not ok then
        c.notes[#c.notes + 1] = lkey .. ' is not a hash: limits not enforced'
        c.lim = nil
        return false
    end
    local conc, rate, period, why = lash_limit_parse(v[1], v[2])
    if why then
        c.notes[#c.notes + 1] = lkey .. ' ' .. kind .. ': ' .. why .. '; not enforced'
        c.lim[kind] = false
        return false
    end
    local L = {}
    if conc then
        local rk, hk = base .. ':running:' .. kind, base .. ':held:' .. kind
        local okr = pcall(redis.call, 'ZREMRANGEBYSCORE', rk, '-inf', '(' .. c.now_s)
        local okh = okr and pcall(redis.call, 'ZCARD', hk)
        if okh then
            L.conc, L.rkey, L.hkey, L.used, L.nheld = conc, rk, hk, redis.call('ZCARD', rk), 0
        else
            c.notes[#c.notes + 1] = rk .. ' or ' .. hk .. ' is not a sorted set: concurrency not enforced'
        end
    end
    if rate then
        local sk = base .. ':starts:' .. kind
        if pcall(redis.call, 'ZREMRANGEBYSCORE', sk, '-inf', c.now - period) then
            L.rate, L.period, L.skey, L.started, L.nrheld = rate, period, sk, redis.call('ZCARD', sk), 0
        else
            c.notes[#c.notes + 1] = sk .. ' is not a sorted set: rate not enforced'
        end
    end
    if not L.conc and not L.rate then L = false end
    c.lim[kind] = L
    return L
end

-- When the k-th row held back in this call may go: the k-th smallest score of
-- zset key (fetched once, as many as the call can hold), plus add; past the
-- end, `after`.
local function lash_limit_when(L, field, key, k, add, after, n)
    if not L[field] then L[field] = redis.call('ZRANGE', key, '0', lash_str(n - 1), 'WITHSCORES') end
    local s = L[field][2 * k]
    return s and (tonumber(s) + add) or after
end

-- Called by the claim for a row it is about to lease (its lease key lk already
-- taken for fence fs; state pending, or running with its lease lost). Returns
-- kind when the row takes a concurrency slot (the claim writes it on the row
-- as 'slot'), false when it starts without one, and true when kind's limit
-- holds it back: the lease is given back, the row is
-- (or becomes) pending and is rescored in due to when it may go — the k-th
-- held row of the call to the k-th earliest time a slot frees (a running
-- lease expires: the lost-lease bound; a complete wakes it sooner) or the rate
-- window reopens — so it is looked at again then, not on every poll. Else the
-- start is counted (slot, window).
local function lash_limit_hold(base, c, id, kind, lk, rk, state, fence, fs)
    local L = c.lim[kind]
    if L == nil then L = lash_limit_load(base, c, kind) end
    if not L then return false end
    local when
    if L.conc and L.used >= L.conc then
        L.nheld = L.nheld + 1
        when = lash_limit_when(L, 'exp', L.rkey, L.nheld, 1, c.now + c.ttl, c.n)
        redis.call('ZADD', L.hkey, 'NX', c.now_s, id)
    elseif L.rate and L.started >= L.rate then
        L.nrheld = L.nrheld + 1
        when = lash_limit_when(L, 'win', L.skey, L.nrheld, L.period, c.now + L.period, c.n)
    end
    if when then
        redis.call('DEL', lk)
        if state == 'running' then
            -- A lost lease whose rerun must wait: pending again, its fence
            -- moved on so the lost owner's late complete hears "stale".
            c.last, c.lasts = fence, fs
            redis.call('HSET', rk, 'state', 'pending', 'fence', fs, 'updated_ms', c.now_s)
            lash_count(c.counts, 'running', -1)
            lash_count(c.counts, 'pending', 1)
        end
        -- A prioritized row waits in its priority's sets, keeping its rank.
        local at = math.max(when, c.now + 1)
        if not lash_prio_requeue(base, id, redis.call('HGET', rk, 'priority'), at, c.now) then
            lash_index('ZADD', base .. ':due', lash_str(at), id)
        end
        return true
    end
    if L.rate then
        L.started = L.started + 1
        lash_index('ZADD', L.skey, c.now_s, id .. ':' .. fs)
    end
    if L.conc then
        L.used = L.used + 1
        lash_index('ZADD', L.rkey, c.until_s, id)
        lash_index('ZREM', L.hkey, id)
        return kind -- the claim writes it on the row as 'slot'
    end
    return false
end

-- What one complete or release call learnt about each kind's keys (keyed by
-- the call's counts table, new in every call): whether its running set is a
-- sorted set (the ZREMs are then deferred, one per call) and whether its held
-- set ran empty (no more pops this call).
local lash_limit_call, lash_limit_kinds = nil, {}

-- Wakes a held row: due at `at` (when it was held, so it keeps its place), in
-- due or, for a prioritized row, in prio:wait (the next claim ranks it). XX:
-- an id that left both (cancelled, finished) is not brought back. True when
-- it woke. `at` is the held set's score as Redis answered it: text already.
local function lash_limit_wake(base, id, at)
    if redis.call('ZADD', lash_key(base, 'due'), 'XX', 'CH', at, id) == 1 then return true end
    local ok, n = pcall(redis.call, 'ZADD', lash_key(base, 'prio:wait'), 'XX', 'CH', at, id)
    return ok and n == 1
end

-- A row leaves its slot (complete, release): slot is its field 'slot' (the
-- kind). Removes it from the running set and wakes the oldest held row of the
-- kind (rescored in due to when it was held: it keeps its place). Only for
-- rows that hold a slot: a queue without limits never gets here.
local function lash_limit_free(base, rk, id, slot, counts)
    if lash_bad_name(slot, LASH_KIND_MAX, false) then return end
    if lash_limit_call ~= counts then lash_limit_call, lash_limit_kinds = counts, {} end
    local k = lash_limit_kinds[slot]
    if not k then
        local rkey = base .. ':running:' .. slot
        local t = redis.call('TYPE', rkey)['ok']
        k = { rkey = rkey, zset = (t == 'zset' or t == 'none'), held = true }
        lash_limit_kinds[slot] = k
    end
    if k.zset then lash_index('ZREM', k.rkey, id) end -- a key of another type: not lash's
    redis.call('HDEL', rk, 'slot')
    local hk, due = base .. ':held:' .. slot, base .. ':due'
    for _ = 1, LASH_LIMIT_WAKE_TRIES do
        if not k.held then return end
        local ok, w = pcall(redis.call, 'ZPOPMIN', hk)
        if not ok or not w[1] then
            k.held = false
            return
        end
        if lash_limit_wake(base, w[1], w[2]) then
            lash_limit_woke = true
            return
        end
    end
end

-- A renewed row keeps its slot until its new expiry.
local function lash_limit_renew(base, id, slot, until_ms)
    if lash_bad_name(slot, LASH_KIND_MAX, false) then return end
    pcall(redis.call, 'ZADD', base .. ':running:' .. slot, 'XX', until_ms, id)
end

-- Ends a call that freed slots: one poke, so a worker with free slots claims
-- the woken rows now rather than at its next poll.
local function lash_limit_poke(base)
    if not lash_limit_woke then return end
    lash_limit_woke = false
    lash_publish(base .. ':poke', 'limit')
end

-- Priorities (lash_prio_*) -------------------------------------------------
-- A row submitted with a priority p other than 0 (-1000..1000, higher first;
-- field `priority`) waits in two sets of its own while it is pending, never in
-- due, so a queue that uses no priority claims exactly as before (one EXISTS
-- more per claim and per idle peek):
--   lash:{q}:prio:wait   rows not yet due, scored by their due time (ms);
--   lash:{q}:prio:ready  rows that are due, scored by rank
--                          LASH_PRIO_K0 + due_ms - p * step.
-- A claim ranks a row of due (priority 0, and every running row) at
-- LASH_PRIO_K0 + its score and takes the lowest ranks. step is 2^42 ms (past
-- any due time until 2109: strict priority, then due time), unless the queue
-- asked for aging with field prio_aging_ms of lash:{q}:stats (1..86400000): then
-- step is that many ms, and a row of priority p ranks as if it had been due
-- p * step ms earlier, so a low-priority row waiting long enough passes newer
-- higher ones. Every rank fits a double's 53 bits exactly. A rank is fixed
-- when the row becomes due (changing prio_aging_ms affects later rows).
-- Once claimed, a row lives in due (running, scored by its lease) like any.
local LASH_PRIO_MAX = 1000
local LASH_PRIO_STRICT = 4398046511104 -- 2^42
local LASH_PRIO_K0 = 1000 * LASH_PRIO_STRICT
local LASH_PRIO_AGING_MAX = 86400000

-- The priority in v (text or false), or nil when absent, 0 or not one.
local function lash_prio_of(v)
    if not v then return nil end
    local p = lash_int(v, -LASH_PRIO_MAX, LASH_PRIO_MAX)
    if p == 0 then return nil end
    return p
end

-- The queue's rank step: its aging step in ms, or 2^42 (strict).
local function lash_prio_step(base)
    local ok, v = pcall(redis.call, 'HGET', base .. ':stats', 'prio_aging_ms')
    return (ok and lash_int(v, 1, LASH_PRIO_AGING_MAX)) or LASH_PRIO_STRICT
end

-- nil when the two sets are absent or sorted sets, else why not (a key written
-- by hand): a caller then leaves priorities aside rather than fail half way.
local function lash_prio_broken(base)
    for _, name in ipairs({ ':prio:wait', ':prio:ready' }) do
        local t = redis.call('TYPE', base .. name)['ok']
        if t ~= 'none' and t ~= 'zset' then
            return base .. name .. ' holds a ' .. t .. ', not a zset: lash did not write it; delete or rename it'
        end
    end
    return nil
end

-- True when some prioritized row may wait: one EXISTS, the whole cost of the
-- feature to a queue that does not use it.
local function lash_prio_any(base)
    return redis.call('EXISTS', lash_key(base, 'prio:wait'), lash_key(base, 'prio:ready')) > 0
end

-- Puts a pending row of priority p (not 0), due at `at`, in its set and out
-- of the other (deferred): a row waits in one place at a time.
local function lash_prio_put(base, id, p, at, now, step)
    local wait, ready = lash_key(base, 'prio:wait'), lash_key(base, 'prio:ready')
    if at > now then
        lash_index('ZREM', ready, id)
        lash_index('ZADD', wait, lash_str(at), id)
    else
        lash_index('ZREM', wait, id)
        lash_index('ZADD', ready, lash_str(LASH_PRIO_K0 + at - p * step), id)
    end
end

-- A row going back to pending (a retry after a failure, a release, an
-- operator's retry), due at `at`: true when its priority (pv, the row's field)
-- put it in its sets and out of due; false when the caller puts it in due as
-- before (no priority, or the sets are broken: it then runs without one).
lash_prio_requeue = function(base, id, pv, at, now)
    local p = lash_prio_of(pv)
    if not p or lash_prio_broken(base) then return false end
    redis.call('ZREM', base .. ':due', id)
    lash_prio_put(base, id, p, at, now, lash_prio_step(base))
    return true
end

-- The ids a claim looks at when lash_prio_any said yes, n at most, best rank
-- first: the waiting rows that came due are moved to the ready set (a row no
-- longer pending leaves them: a terminal one is dropped, any other goes to due,
-- where the claim knows what to do with it), then the ready set and the eligible
-- rows of due are merged by rank. Reads only: its writes are deferred
-- (lash_index), so they land after the claim's checks. Returns ids, or nil and
-- why when the sets are broken (the claim then takes due alone).
local function lash_prio_pick(base, n, now)
    local why = lash_prio_broken(base)
    if why then return nil, why end
    local wait, ready, due = lash_key(base, 'prio:wait'), lash_key(base, 'prio:ready'), lash_key(base, 'due')
    local step = lash_prio_step(base)
    local cand = {}
    local came = redis.call('ZRANGEBYSCORE', wait, '-inf', lash_str(now), 'WITHSCORES', 'LIMIT', '0',
        lash_str(LASH_BATCH_MAX))
    for i = 1, #came, 2 do
        local id, at = came[i], tonumber(came[i + 1])
        lash_index('ZREM', wait, id)
        local f = lash_row_read(base .. ':p:' .. id, 'state', 'priority')
        local p = f and f[1] == 'pending' and lash_prio_of(f[2])
        if p then
            cand[#cand + 1] = { LASH_PRIO_K0 + at - p * step, id, 'w' }
        elseif not (f and LASH_TERMINAL[f[1]]) then
            lash_index('ZADD', due, came[i + 1], id)
        end
    end
    local r = redis.call('ZRANGE', ready, '0', lash_str(n - 1), 'WITHSCORES')
    for i = 1, #r, 2 do cand[#cand + 1] = { tonumber(r[i + 1]), r[i], 'r' } end
    local d = redis.call('ZRANGEBYSCORE', due, '-inf', lash_str(now), 'WITHSCORES', 'LIMIT', '0', lash_str(n))
    for i = 1, #d, 2 do cand[#cand + 1] = { LASH_PRIO_K0 + tonumber(d[i + 1]), d[i], 'd' } end
    table.sort(cand, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        return a[2] < b[2]
    end)
    local ids, seen = {}, {}
    for _, x in ipairs(cand) do
        local id, from = x[2], x[3]
        if #ids < n and not seen[id] then
            seen[id] = true
            ids[#ids + 1] = id
            if from == 'r' then lash_index('ZREM', ready, id) end
        elseif from == 'w' then
            lash_index('ZADD', ready, lash_str(x[1]), id)
        end
    end
    return ids
end

-- A pending row that ends (cancelled) leaves the sets of its priority (pv, the
-- row's field), deferred. A claim drops what is left there anyway.
local function lash_prio_forget(base, id, pv)
    if not lash_prio_of(pv) or lash_prio_broken(base) then return end
    lash_index('ZREM', base .. ':prio:wait', id)
    lash_index('ZREM', base .. ':prio:ready', id)
end

-- The due time (ms) of a row with rank `rank` in lash:{q}:prio:ready.
local function lash_prio_due_of(rank, pv, step)
    return rank - LASH_PRIO_K0 + (lash_prio_of(pv) or 0) * step
end

-- For stats: pending prioritized rows (both sets), and those of them that are
-- due. 0, 0 when the sets are broken (a claim's notes say so).
local function lash_prio_counts(base, now)
    if lash_prio_broken(base) then return 0, 0 end
    local r = redis.call('ZCARD', base .. ':prio:ready')
    local w = redis.call('ZCARD', base .. ':prio:wait')
    return r + w, r + redis.call('ZCOUNT', base .. ':prio:wait', '-inf', lash_str(now))
end

-- Dependencies (lash_dep_*) ----------------------------------------------------
-- A row submitted with `after` (ids of the same queue, comma-separated, at most
-- LASH_AFTER_MAX) runs only once all of them completed. While some are not, it
-- is pending and parked in due at LASH_DEP_PARKED (2^53 - 1: never eligible,
-- and every script that walks due sees it), with field deps_left counting them.
-- Each dependency D that is not terminal yet names its waiters in the set
-- lash:{q}:dep:<D>, and is itself in the set lash:{q}:deps (the queue's ids
-- that have waiters). When a call ends rows, lash_flush_counts calls
-- lash_dep_settle: one EXISTS on lash:{q}:deps when the feature is unused;
-- else each ended row with waiters settles them: completed counts deps_left
-- down and, at 0, makes the waiter due (at its run_at, or now; in its priority
-- sets if it has one) and pokes the workers; failed, cancelled or abandoned
-- ends each waiter 'cancelled' with error "dependency <D> ended <state>", which
-- settles the waiters' own waiters in turn (a chain ends in the same call).
-- At submit a dependency already completed counts as done, one already ended
-- otherwise makes the new row 'cancelled' at once, and an id that is not a row
-- of the queue (never submitted, or trimmed) refuses the row.
local LASH_AFTER_MAX = 1000
local LASH_DEP_PARKED = 9007199254740991

-- The ids of an `after` value (deduplicated, in order), or nil and why not.
local function lash_dep_parse(v, id)
    if type(v) ~= 'string' or #v == 0 then return nil, 'after is empty' end
    local ids, seen = {}, {}
    for d in string.gmatch(v, '[^,]+') do
        local why = lash_bad_name(d, LASH_ID_MAX, true)
        if why then return nil, 'after: id ' .. why end
        if d == id then return nil, 'after: ' .. d .. ' is the row itself' end
        if not seen[d] then
            seen[d] = true
            ids[#ids + 1] = d
            if #ids > LASH_AFTER_MAX then return nil, 'after names more than ' .. LASH_AFTER_MAX .. ' ids' end
        end
    end
    if #ids == 0 or string.find(v, ',,', 1, true) or string.sub(v, 1, 1) == ',' or string.sub(v, -1) == ',' then
        return nil, 'after must be ID[,ID...]'
    end
    return ids
end

-- Reads, before a submit writes the row: the ids still to wait for, and the
-- first dependency that already ended other than completed (id, state), or
-- nil and why the row is refused. Checks the keys it will write.
local function lash_dep_prepare(base, ids)
    local waits, ended, why = {}, nil, nil
    local deps = base .. ':deps'
    local t = redis.call('TYPE', deps)['ok']
    if t ~= 'none' and t ~= 'set' then
        return nil, nil, deps .. ' holds a ' .. t .. ', not a set: lash did not write it; delete or rename it'
    end
    for _, d in ipairs(ids) do
        local f
        f, why = lash_row_read(base .. ':p:' .. d, 'state')
        if not f then return nil, nil, 'after: ' .. why end
        local st = f[1]
        if not st then return nil, nil, 'after: ' .. d .. ' is not a process of this queue' end
        if st ~= 'completed' then
            if LASH_TERMINAL[st] then
                ended = ended or { d, st }
            elseif LASH_LIVE[st] then
                local wk = base .. ':dep:' .. d
                t = redis.call('TYPE', wk)['ok']
                if t ~= 'none' and t ~= 'set' then
                    return nil, nil, wk .. ' holds a ' .. t .. ', not a set: lash did not write it; delete or rename it'
                end
                waits[#waits + 1] = d
            else
                return nil, nil, 'after: ' .. d .. " has no state lash knows: '" .. string.sub(st, 1, 32) .. "'"
            end
        end
    end
    return waits, ended
end

-- Parks row id until the ids of waits end (the row is written already).
local function lash_dep_park(base, id, waits)
    for _, d in ipairs(waits) do
        redis.call('SADD', base .. ':dep:' .. d, id)
    end
    for i = 1, #waits, 1000 do
        redis.call('SADD', base .. ':deps', unpack(waits, i, math.min(i + 999, #waits)))
    end
    lash_index('ZADD', base .. ':due', lash_str(LASH_DEP_PARKED), id)
end

-- Whether a row's `after` list (ids joined by ',', which no id holds) names id.
local function lash_dep_declares(after, id)
    return after ~= nil and string.find(',' .. after .. ',', ',' .. id .. ',', 1, true) ~= nil
end

lash_dep_settle = function(base, counts)
    local deps = base .. ':deps'
    if redis.call('EXISTS', deps) == 0 then return end
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local i, poke = 1, false
    while i <= #lash_ended do -- lash_finish below appends: a chain settles here too
        local id = lash_ended[i]
        i = i + 1
        local ok, member = pcall(redis.call, 'SISMEMBER', deps, id)
        if ok and member == 1 then
            redis.call('SREM', deps, id)
            local wk = base .. ':dep:' .. id
            local okw, waiters = pcall(redis.call, 'SMEMBERS', wk)
            if okw then redis.call('DEL', wk) else waiters = {} end
            local f = lash_row_read(base .. ':p:' .. id, 'state')
            local st = f and f[1] or 'and was deleted'
            for _, w in ipairs(waiters) do
                local g = lash_row_read(base .. ':p:' .. w, 'state', 'deps_left', 'run_at', 'priority',
                    'after')
                -- Only a row still waiting, for this id: a registration can
                -- outlive its row (trimmed, deleted, or retried to run anyway),
                -- and a new row of the same id must not inherit it.
                if g and g[1] == 'pending' and lash_int(g[2], 1, LASH_AFTER_MAX) and
                    lash_dep_declares(g[5], id) then
                    if st ~= 'completed' then
                        lash_finish(base, w, 'cancelled', now, counts, 'pending', 'error',
                            'dependency ' .. id .. ' ended ' .. st)
                        -- A waiter retried (or a new row of its id) may wait in
                        -- a priority set: it leaves it, as cancel.lua does.
                        lash_prio_forget(base, w, g[4])
                    else
                        local left = (lash_int(g[2], 0, LASH_AFTER_MAX) or 1) - 1
                        redis.call('HSET', base .. ':p:' .. w, 'deps_left', lash_str(math.max(left, 0)))
                        if left <= 0 then
                            local at = math.max(now, lash_int(g[3], 0, LASH_DEP_PARKED) or 0)
                            if not lash_prio_requeue(base, w, g[4], at, now) then
                                lash_index('ZADD', base .. ':due', lash_str(at), w)
                            end
                            poke = true
                        end
                    end
                end
            end
        end
    end
    if poke then lash_publish(base .. ':poke', 'after') end
end
