-- renew.lua: keep leases alive. One call renews all of a worker's leases.
--
-- ARGV: ttl_ms, then pairs: id token   (token = "<worker-id>:<fence>")
-- Returns one status per pair: 1 renewed; 2 renewed, and cancellation has been
-- asked (the owner stops the process and records 'cancelled'); 0 the lease is
-- not the caller's any more: it must kill the process and record nothing.
-- The holder is the one the row names (owner:fence) while its lease key lives.
-- A row key of another type (written by hand) answers 0 for its pair only; it
-- never fails the other pairs of the call.
local function lash_renew(KEYS, ARGV)
    local base = lash_base(KEYS)
    local ttl = lash_int(ARGV[1], 100, LASH_TIMEOUT_MAX)
    if not ttl or #ARGV % 2 ~= 1 then lash_refuse('renew wants ttl_ms then id token pairs') end
    local now = lash_now()
    lash_guard(base, 'due')
    local out = {}
    for i = 2, #ARGV, 2 do
        local id, token = ARGV[i], ARGV[i + 1]
        local lease = base .. ':lease:' .. id
        -- The row names its holder (owner and fence, written by the claim with
        -- the lease); the lease key only keeps time: gone, it ran out.
        local f = lash_row_read(base .. ':p:' .. id, 'cancel', 'state', 'owner', 'fence', 'slot')
        if f and f[2] == 'running' and f[3] and f[4] and f[3] .. ':' .. f[4] == token and
            redis.call('PEXPIRE', lease, lash_str(ttl)) == 1 then
            redis.call('ZADD', lash_key(base, 'due'), 'XX', lash_str(now + ttl), id)
            if f[5] then lash_limit_renew(base, id, f[5], now + ttl) end -- keeps its limit's slot
            out[#out + 1] = f[1] == '1' and 2 or 1
        else
            out[#out + 1] = 0
        end
    end
    return out
end
