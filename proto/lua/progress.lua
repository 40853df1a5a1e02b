-- progress.lua: record how far running processes have got. One call takes a
-- batch (a worker sends the reports of one queue together, at most a few a
-- second per process: worker/turn.c).
--
-- ARGV, repeated: id token percent text
--   percent 0..100; text at most LASH_PROGRESS_TEXT_MAX bytes, no control
--   characters (proto/progress.h says the format a handler writes).
-- Only the holder the row names (owner:fence, its token) of a running row may
-- report: anyone else is stale and changes nothing, as in complete.lua. For
-- each row it records: the fields progress, progress_text and progress_ms of
-- the row; a `progress` event in the events stream (a routine one: at the
-- queue's event level `all`, see lash_event); and the message
-- "<id> <percent> <text>" on the channel lash:{q}:progress.
-- Returns one status per row: 1 recorded; 0 stale (also when the row key holds
-- something lash did not write: that row only, never the rest of the batch).
local function lash_progress(KEYS, ARGV)
    local base = lash_base(KEYS)
    if #ARGV == 0 or #ARGV % 4 ~= 0 or #ARGV > 4 * LASH_BATCH_MAX then
        lash_refuse('progress wants groups of id token percent text')
    end
    for i = 1, #ARGV, 4 do
        if not lash_int(ARGV[i + 2], 0, 100) then lash_refuse('progress percent must be 0..100') end
        local text = ARGV[i + 3]
        if #text > LASH_PROGRESS_TEXT_MAX then
            lash_refuse('progress text is ' .. #text .. ' bytes, over ' .. LASH_PROGRESS_TEXT_MAX)
        end
        if string.find(text, '[%z\1-\31\127]') then lash_refuse('progress text has a control character') end
    end
    local now = lash_now()
    lash_stats_open(base) -- the event level, and the stats hash's type
    local t = lash_str(now)
    local chan = base .. ':progress'
    local out = {}
    for i = 1, #ARGV, 4 do
        local id, token, text = ARGV[i], ARGV[i + 1], ARGV[i + 3]
        local pct = lash_str(lash_int(ARGV[i + 2], 0, 100))
        local rk = base .. ':p:' .. id
        local f = lash_row_read(rk, 'state', 'owner', 'fence')
        if f and f[1] == 'running' and f[2] and f[3] and f[2] .. ':' .. f[3] == token then
            redis.call('HSET', rk, 'progress', pct, 'progress_text', text, 'progress_ms', t)
            lash_event(base, 'progress', id, 'progress', pct, 'text', text)
            lash_publish(chan, id .. ' ' .. pct .. ' ' .. text)
            out[#out + 1] = 1
        else
            out[#out + 1] = 0
        end
    end
    return out
end
