-- trim.lua: retention of terminal rows. ARGV: keep_n keep_ms [max_rows]
-- Deletes terminal rows older than keep_ms (0: no age bound), then the oldest
-- beyond the newest keep_n (-1: no count bound), at most max_rows (default 1000)
-- per call; an id in done whose row is live or not a row only leaves done.
-- Returns the number of ids taken out of done; call again while it returns
-- max_rows.
local function lash_trim(KEYS, ARGV)
    local base = lash_base(KEYS)
    local keep_n = lash_int(ARGV[1], -1, 1000000000)
    local keep_ms = lash_int(ARGV[2], 0, 9007199254740991)
    local max = lash_int(ARGV[3] or '1000', 1, 10000)
    if not keep_n or not keep_ms or not max then
        lash_refuse('trim wants keep_n(-1..) keep_ms(0..) [max_rows 1..10000]')
    end
    local now = lash_now()
    lash_stats_open(base)
    lash_guard(base, 'done')
    local counts = {}
    local n = lash_trim_done(base, now, keep_n, keep_ms, max, counts)
    lash_flush_counts(base, counts)
    return n
end
