-- renew.lua: keep leases alive. One call renews all of a worker's leases.
--
-- ARGV: ttl_ms, then pairs: id token   (token = "<worker-id>:<fence>")
-- Returns one status per pair: 1 renewed; 2 renewed, and cancellation has been
-- asked (the owner stops the process and records 'cancelled'); 0 the lease is
-- not the caller's any more: it must kill the process and record nothing.
local function lash_renew(KEYS, ARGV)
    local base = lash_base(KEYS)
    local ttl = lash_int(ARGV[1], 100, LASH_TIMEOUT_MAX)
    if not ttl or #ARGV % 2 ~= 1 then
        return redis.error_reply('ERR lash: renew wants ttl_ms then id token pairs')
    end
    local now = lash_now()
    local out = {}
    for i = 2, #ARGV, 2 do
        local id, token = ARGV[i], ARGV[i + 1]
        local lease = base .. ':lease:' .. id
        if redis.call('GET', lease) == token then
            redis.call('PEXPIRE', lease, ttl)
            redis.call('ZADD', base .. ':due', 'XX', now + ttl, id)
            out[#out + 1] = (redis.call('HGET', base .. ':p:' .. id, 'cancel') == '1') and 2 or 1
        else
            out[#out + 1] = 0
        end
    end
    return out
end
