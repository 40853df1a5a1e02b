-- limit.lua: the fleet-wide limits per kind (lash:{q}:limits; lib.lua says
-- how the claim enforces them).
--
-- ARGV: set KIND CONCURRENCY RATE -> 'ok'
--         CONCURRENCY: N (1..) sets it, 'none' removes it, '' leaves it;
--         RATE: 'R/PERIOD_MS' sets it, 'none' removes it, '' leaves it.
--       rm KIND -> 1 when the kind had a limit, else 0
--       list    -> {{kind, concurrency, rate, running, held}, ...} by kind:
--         concurrency and rate as stored ('' when none), running = ids
--         holding a slot whose lease has not run out, held = ids waiting for
--         a slot.
-- A change wakes the kind's held rows (lash_limit_wake: due again at when
-- they were held), so a raised or removed limit takes effect at the next claim.
local function lash_limit_wake_all(base, kind)
    local hk = base .. ':held:' .. kind
    local ok, held = pcall(redis.call, 'ZRANGE', hk, '0', '-1', 'WITHSCORES')
    if not ok then return end
    for i = 1, #held, 2 do lash_limit_wake(base, held[i], held[i + 1]) end
    redis.call('DEL', hk)
    if #held > 0 then lash_publish(base .. ':poke', 'limit') end
end

local function lash_limit_check_key(key)
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= 'hash' then
        lash_refuse(key .. ' holds a ' .. t .. ', not a hash: lash did not write it; delete or rename it to go on')
    end
end

local function lash_limit(KEYS, ARGV)
    local base = lash_base(KEYS)
    local lkey = base .. ':limits'
    local op, kind = ARGV[1], ARGV[2]
    if op == 'list' then
        lash_limit_check_key(lkey)
        local now = lash_now()
        local all = redis.call('HGETALL', lkey)
        local by, kinds = {}, {}
        for i = 1, #all, 2 do
            local k, what = string.match(all[i], '^(.*):(%a+)$')
            if k and (what == 'concurrency' or what == 'rate') then
                if not by[k] then
                    by[k] = { k, '', '', 0, 0 }
                    kinds[#kinds + 1] = k
                end
                by[k][what == 'concurrency' and 2 or 3] = all[i + 1]
            end
        end
        table.sort(kinds)
        local out = {}
        for _, k in ipairs(kinds) do
            local ok, n = pcall(redis.call, 'ZCOUNT', base .. ':running:' .. k, now, '+inf')
            if ok then by[k][4] = n end
            ok, n = pcall(redis.call, 'ZCARD', base .. ':held:' .. k)
            if ok then by[k][5] = n end
            out[#out + 1] = by[k]
        end
        return out
    end
    if op ~= 'set' and op ~= 'rm' then lash_refuse('limit wants set KIND CONCURRENCY RATE, rm KIND or list') end
    local why = lash_bad_name(kind, LASH_KIND_MAX, false)
    if why then lash_refuse('limit: kind ' .. why) end
    lash_limit_check_key(lkey)
    lash_now()
    lash_guard(base, 'due') -- waking held rows writes it
    if op == 'rm' then
        local n = redis.call('HDEL', lkey, kind .. ':concurrency', kind .. ':rate')
        lash_limit_wake_all(base, kind)
        return n > 0 and 1 or 0
    end
    local conc, rate = ARGV[3] or '', ARGV[4] or ''
    if conc ~= '' and conc ~= 'none' and not lash_int(conc, 1, LASH_LIMIT_CONCURRENCY_MAX) then
        lash_refuse('limit: concurrency must be an integer 1..' .. LASH_LIMIT_CONCURRENCY_MAX .. ', none or empty')
    end
    if rate ~= '' and rate ~= 'none' and select(4, lash_limit_parse(nil, rate)) then
        lash_refuse('limit: ' .. select(4, lash_limit_parse(nil, rate)) .. ', none or empty')
    end
    if conc == '' and rate == '' then lash_refuse('limit set wants a concurrency or a rate') end
    for field, v in pairs({ concurrency = conc, rate = rate }) do
        if v == 'none' then
            redis.call('HDEL', lkey, kind .. ':' .. field)
        elseif v ~= '' then
            redis.call('HSET', lkey, kind .. ':' .. field, v)
        end
    end
    lash_limit_wake_all(base, kind)
    return 'ok'
end
