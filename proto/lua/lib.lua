-- lib.lua: what every lash script shares. Prepended to each operation for EVAL,
-- and to the whole Functions library. KEYS[1] is always the queue base
-- "lash:{q}"; every key is derived from it, so all of them live in one slot.
--
-- The limits mirror proto/limits.h (tests/test_scripts.c checks they agree).
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
local LASH_DEFAULT_MAX_ATTEMPTS = 3
local LASH_DEFAULT_BACKOFF = 'exp:1000:60000'
local LASH_EVENTS_MAX = 10000
local LASH_WORKER_STALE_MS = 60000

-- The server's clock, so no worker's clock skew can bend a lease.
local function lash_now()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function lash_base(KEYS)
    local base = KEYS[1]
    if type(base) ~= 'string' or not string.find(base, '^lash:{[%w%._%-]+}$') then
        error('lash: KEYS[1] must be the queue base lash:{<queue>}, got ' .. tostring(base))
    end
    return base
end

-- nil when s is a good name, else why not.
local function lash_bad_name(s, max, colon)
    if type(s) ~= 'string' or #s == 0 then return 'is empty' end
    if #s > max then return 'is ' .. #s .. ' bytes, over ' .. max end
    local pat = colon and '^[%w%._%-:]+$' or '^[%w%._%-]+$'
    if not string.find(s, pat) then
        return 'has a byte outside A-Z a-z 0-9 . _ -' .. (colon and ' :' or '')
    end
    return nil
end

-- An integer in [lo, hi] from a string or number, or nil.
local function lash_int(v, lo, hi)
    if v == nil or v == false then return nil end
    if type(v) == 'string' and not string.find(v, '^%-?%d+$') then return nil end
    local n = tonumber(v)
    if n == nil or n ~= math.floor(n) or n < lo or n > hi then return nil end
    return n
end

local function lash_event(base, ev, id, a, b, c, d)
    -- Capped with '~' so Redis trims whole macro nodes: O(1) amortized.
    if a == nil then
        redis.call('XADD', base .. ':events', 'MAXLEN', '~', LASH_EVENTS_MAX, '*', 'event', ev, 'id', id)
    elseif c == nil then
        redis.call('XADD', base .. ':events', 'MAXLEN', '~', LASH_EVENTS_MAX, '*', 'event', ev, 'id', id, a, b)
    else
        redis.call('XADD', base .. ':events', 'MAXLEN', '~', LASH_EVENTS_MAX, '*', 'event', ev, 'id', id, a, b, c, d)
    end
end

-- Per-state row counts and running totals live in the hash lash:{q}:stats. A
-- script adds up its changes in a table and writes them once, so a batch of a
-- thousand rows costs a handful of HINCRBYs, not a thousand.
local function lash_count(c, field, n)
    c[field] = (c[field] or 0) + (n or 1)
end

local function lash_flush_counts(base, c)
    for k, v in pairs(c) do
        if v ~= 0 then redis.call('HINCRBY', base .. ':stats', k, v) end
    end
end

local LASH_LIVE = { pending = true, running = true }
local LASH_TERMINAL = { completed = true, failed = true, cancelled = true, abandoned = true }

-- Moves a row to a terminal state: out of due, into done, announced on the
-- finished channel and in the events stream. `from` is the state it leaves (for
-- the counters; nil when it was unreadable).
local function lash_finish(base, id, state, now, counts, from, field, text)
    local rk = base .. ':p:' .. id
    if field then
        redis.call('HSET', rk, 'state', state, 'updated_ms', now, 'finished_ms', now, field, text)
    else
        redis.call('HSET', rk, 'state', state, 'updated_ms', now, 'finished_ms', now)
    end
    redis.call('ZREM', base .. ':due', id)
    redis.call('ZADD', base .. ':done', now, id)
    redis.call('DEL', base .. ':lease:' .. id)
    redis.call('PUBLISH', base .. ':finished', id)
    if field == 'error' then
        lash_event(base, state, id, 'error', string.sub(text, 1, 200))
    else
        lash_event(base, state, id)
    end
    if from and LASH_LIVE[from] then lash_count(counts, from, -1) end
    lash_count(counts, state)
    lash_count(counts, 'total_' .. state)
end

-- Deletes terminal rows beyond retention: older than keep_ms, then the oldest
-- beyond keep_n, at most max rows per call so no call blocks Redis for long.
-- Returns how many went.
local function lash_trim_done(base, now, keep_n, keep_ms, max, counts)
    local done = base .. ':done'
    local victims = {}
    if keep_ms and keep_ms > 0 then
        victims = redis.call('ZRANGEBYSCORE', done, '-inf', now - keep_ms, 'LIMIT', 0, max)
    end
    if keep_n and keep_n >= 0 and #victims < max then
        local over = redis.call('ZCARD', done) - #victims - keep_n
        if over > 0 then
            local more = redis.call('ZRANGE', done, #victims, #victims + math.min(over, max - #victims) - 1)
            for _, id in ipairs(more) do victims[#victims + 1] = id end
        end
    end
    for _, id in ipairs(victims) do
        local rk = base .. ':p:' .. id
        local st = redis.call('HGET', rk, 'state')
        if st and LASH_TERMINAL[st] then lash_count(counts, st, -1) end
        redis.call('DEL', rk)
    end
    if #victims > 0 then redis.call('ZREM', done, unpack(victims)) end
    return #victims
end
