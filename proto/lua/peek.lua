-- peek.lua: when is a row of the queue eligible? A worker's poll looks with
-- this before it claims: an idle fleet costs Redis a look at the due set per
-- poll, not a claim's writes and upkeep. Read-only; no ARGV.
-- Returns the ms until the first row falls due (lash_first_due, lib.lua): 0
-- when one's time has come (pending, or with a lease that ran out), -1 when
-- no row waits, at most a day. So a worker that looked learns when to look
-- again: a delayed row, a row held back by a limit or a lease about to run out
-- is taken on time, not at the next poll.
local function lash_peek(KEYS, ARGV)
    return lash_first_due(lash_base(KEYS), lash_now())
end
