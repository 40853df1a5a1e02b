-- recover.lua: an owner that lost a claim's reply (the connection broke, or the
-- reply came too late) asks which rows that claim leased to it, so it can hand
-- them back unrun (release, ran 0) instead of letting their leases run out,
-- which would cost each an attempt and end an on_lost=abandon row without it
-- ever having run. ARGV: owner seq
-- Returns {id, fence, ...}: the rows of claim seq (claim.lua's record
-- lash:{q}:claim:<owner>) whose leases the owner still holds; {} when that claim
-- leased nothing, its record expired with the leases, or a later claim of the
-- owner replaced it.
local function lash_recover(KEYS, ARGV)
    local base = lash_base(KEYS)
    local owner, seq = ARGV[1], ARGV[2]
    if type(owner) ~= 'string' or #owner == 0 or #owner > LASH_WORKER_ID_MAX or
        type(seq) ~= 'string' or not string.find(seq, '^%d+$') then
        lash_refuse('recover wants owner seq')
    end
    local rec = lash_lease_read(base .. ':claim:' .. owner)
    if not rec then return {} end
    local words = {}
    for w in string.gmatch(rec, '%S+') do words[#words + 1] = w end
    if words[1] ~= seq then return {} end
    local out = {}
    for i = 2, #words - 1, 2 do
        local id, fence = words[i], words[i + 1]
        if lash_lease_read(base .. ':lease:' .. id) == owner .. ':' .. fence then
            out[#out + 1] = id
            out[#out + 1] = fence
        end
    end
    return out
end
