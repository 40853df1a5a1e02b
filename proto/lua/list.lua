-- list.lua: page through rows. ARGV: state cursor limit
--   state '' (any), or one state; non-terminal rows come from the due set in
--   score order, then pending prioritized rows (lash:{q}:prio:ready in rank
--   order, then lash:{q}:prio:wait by due time; lib.lua, lash_prio_*), terminal
--   ones from the done set newest first.
--   cursor: where the previous page stopped (start at '0').
-- Looks at no more than 10*limit ids per call, so a filter over a large queue
-- returns short pages rather than blocking Redis.
-- Returns {next_cursor, row...}; next_cursor '0' means the end; each row is
-- {id, state, kind, attempt, score_ms}. Cursors: 'd<n>' in due, 'r<n>' and
-- 'w<n>' in the priority sets, 't<n>' in done. score_ms is the due time (for a
-- ready prioritized row too, worked back from its rank).
local LASH_LIST_NEXT = { d = 'r', r = 'w', w = 't' }
local LASH_LIST_KEY = { d = ':due', r = ':prio:ready', w = ':prio:wait', t = ':done' }
local function lash_list(KEYS, ARGV)
    local base = lash_base(KEYS)
    local want, cursor = ARGV[1] or '', ARGV[2] or '0'
    local limit = lash_int(ARGV[3] or '100', 1, 10000)
    if not limit then lash_refuse('list limit must be 1..10000') end
    if want ~= '' and not LASH_LIVE[want] and not LASH_TERMINAL[want] then
        lash_refuse('unknown state ' .. want)
    end
    local where, pos = 'd', 0
    if cursor ~= '0' then
        where, pos = string.sub(cursor, 1, 1), lash_int(string.sub(cursor, 2), 0, 1000000000000)
        if not LASH_LIST_KEY[where] or not pos then lash_refuse('bad cursor') end
    end
    if where ~= 't' and LASH_TERMINAL[want] then where, pos = 't', 0 end
    local step = nil
    local out, budget = { '0' }, 10 * limit
    while budget > 0 and #out - 1 < limit do
        local key = base .. LASH_LIST_KEY[where]
        local n = math.min(budget, 200)
        local page
        if where == 't' then
            page = redis.call('ZREVRANGE', key, pos, pos + n - 1, 'WITHSCORES')
        elseif where == 'd' then
            page = redis.call('ZRANGE', key, pos, pos + n - 1, 'WITHSCORES')
        else -- a priority set written by hand as another type lists as empty
            local ok, p = pcall(redis.call, 'ZRANGE', key, pos, pos + n - 1, 'WITHSCORES')
            page = ok and p or {}
            if where == 'r' and not step then step = lash_prio_step(base) end
        end
        local i, looked = 1, 0
        while i < #page and #out - 1 < limit do
            local id = page[i]
            local f = lash_row_read(base .. ':p:' .. id, 'state', 'kind', 'attempt', 'priority') or {}
            if want == '' or f[1] == want then
                local score = tonumber(page[i + 1])
                if where == 'r' then score = lash_prio_due_of(score, f[4], step) end
                out[#out + 1] = { id, f[1] or '?', f[2] or '?', tonumber(f[3]) or 0, score }
            end
            i = i + 2
            pos = pos + 1
            looked = looked + 1
        end
        -- Charge what was looked at, not the page asked for: a short due set
        -- leaves the budget for the done set.
        budget = budget - looked
        if #page < 2 * n and i >= #page then
            -- This set is exhausted.
            local nxt = LASH_LIST_NEXT[where]
            if nxt and not (nxt == 't' and LASH_LIVE[want]) then where, pos = nxt, 0
            else out[1] = '0'; return out end
        end
    end
    out[1] = where .. pos
    return out
end
