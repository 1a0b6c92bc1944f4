"""Lua scripts of the Redis state store: each runs atomically inside Redis, in one hash slot.

Keys under a shard's base B (passed as ARGV[1]; see redis_keys: the prefix itself on a single
Redis with one shard, else `<prefix>:{<tag>}`, every key of a shard in one slot):
  B:s:<id>    hash  model, version, owner, meta (<ddd created, idle ttl, ttl), lu (last used),
                    step, rev (commits so far), state (packed row), replay (packed last reply),
                    older (the replies before it, packed back to back, newest first: up
                    to replay_depth - 1), tag (the call that made the last commit);
                    PEXPIRE = the time left under both TTLs
  B:t:<id>    str   tombstone "expired" | "evicted"; outlives B:s:<id> by the tombstone TTL
  B:live      zset  id -> deadline (epoch ms): counts the shard's live sessions
  B:idle      zset  id -> last use (epoch ms): least recently used first, for eviction
  B:idx       hash  id -> "<state bytes> <owner>": what to release once a session is gone
  B:bytes     int   state bytes of the sessions in B:live
  B:epoch     str   this shard's epoch, set by its first create; fresh ids end in it, so an
                    id from an older epoch (Redis lost its data) is told from one never issued
And one key per owner, in the owner's own slot (only when API keys are on):
  P:o:{<o>}   zset  id -> the latest the session can live (created + absolute TTL, epoch ms);
                    pruned by time and, when listed, of ids whose hash is gone
Every script takes KEYS[1] (a key of its slot) so that a cluster client routes it; the keys
it builds from B are in the same slot.
At maxmemory Redis refuses a script's first write that may grow memory (DECRBY, HSET, SET)
but not DEL, ZREM or PEXPIRE; after any write it lets the script finish. So scripts that
must work on a full Redis (delete, sweep, touch) write with one of those first.
"""

from __future__ import annotations

_PRELUDE = """
local P = ARGV[1]
local function drop(id)  -- frees first, counts last: see the note on maxmemory above
  local info = redis.call('HGET', P .. ':idx', id)
  redis.call('DEL', P .. ':s:' .. id)
  redis.call('ZREM', P .. ':live', id)
  redis.call('ZREM', P .. ':idle', id)
  if info then
    redis.call('HDEL', P .. ':idx', id)
    local sp = string.find(info, ' ', 1, true)
    redis.call('DECRBY', P .. ':bytes', tonumber(string.sub(info, 1, sp - 1)))
  end
end
local function prune(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', P .. ':live', '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do drop(id) end
  return #ids
end
local function totals()
  return redis.call('ZCARD', P .. ':live'), tonumber(redis.call('GET', P .. ':bytes') or '0')
end
"""

# ARGV: P id now max_sessions max_bytes nbytes owner model version meta lu step state replay
#       expire_ms deadline_ms tombstone_ms evict_before_ms random new_epoch
# An empty id asks for a fresh one: <random>.<epoch> (new_epoch starts an epoch if none is set).
# -> {1 created | 0 refused, evicted, expired, sessions, bytes, id, why: sessions|bytes|exists}
CREATE = (
    _PRELUDE
    + """
local id, now, nbytes = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[6])
if id == '' then
  local epoch = redis.call('GET', P .. ':epoch')
  if not epoch then
    epoch = ARGV[20]
    redis.call('SET', P .. ':epoch', epoch)
  end
  id = ARGV[19] .. '.' .. epoch
end
local key = P .. ':s:' .. id
local expired, evicted = prune(now, 100), 0
if redis.call('EXISTS', key) == 1 then
  local n, b = totals()
  if redis.call('HGET', key, 'meta') == ARGV[10] then
    return {1, 0, expired, n, b, id}  -- a retried create that had already committed
  end
  return {0, 0, expired, n, b, id, 'exists'}
end
while true do
  local n, b = totals()
  local full = ''
  if n >= tonumber(ARGV[4]) then full = 'sessions'
  elseif b + nbytes > tonumber(ARGV[5]) then full = 'bytes' end
  if full == '' then break end
  local before = tonumber(ARGV[18])
  local oldest = redis.call('ZRANGE', P .. ':idle', 0, 0, 'WITHSCORES')
  if before <= 0 or #oldest == 0 or tonumber(oldest[2]) > before then
    return {0, evicted, expired, n, b, id, full}
  end
  drop(oldest[1])
  if tonumber(ARGV[17]) > 0 then
    redis.call('SET', P .. ':t:' .. oldest[1], 'evicted', 'PX', ARGV[17])
  else
    redis.call('DEL', P .. ':t:' .. oldest[1])
  end
  evicted = evicted + 1
end
redis.call('HSET', key, 'model', ARGV[8], 'version', ARGV[9], 'owner', ARGV[7],
  'meta', ARGV[10], 'lu', ARGV[11], 'step', ARGV[12], 'rev', 0, 'state', ARGV[13])
if ARGV[14] ~= '' then redis.call('HSET', key, 'replay', ARGV[14]) end
redis.call('PEXPIRE', key, ARGV[15])
redis.call('SET', P .. ':t:' .. id, 'expired', 'PX', tonumber(ARGV[15]) + tonumber(ARGV[17]))
redis.call('ZADD', P .. ':live', ARGV[16], id)
redis.call('ZADD', P .. ':idle', now, id)
redis.call('HSET', P .. ':idx', id, ARGV[6] .. ' ' .. ARGV[7])
redis.call('INCRBY', P .. ':bytes', nbytes)
local n, b = totals()
return {1, evicted, expired, n, b, id}
"""
)

# ARGV: P now tombstone_ms tag, then per session: id expected step lu state replay expire_ms
#       deadline_ms rev older -> per session: -1 committed, -2 expired, -3 no such session,
#       a tombstone reason (gone), or the current step (a compare-and-set conflict).
# The step index is the compare-and-set; `rev` (when given: the revision the caller read the
# state at) also catches a reset and re-step to the same index in between (ABA).
# `tag` is unique to the call and stays in the hash: when a reply is lost (a timeout) and the
# client runs the call again, a session that already holds the tag was committed by this very
# call, so it answers "committed" instead of a conflict, and nothing is applied twice.
SAVE = """
local P, now, tomb, tag = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
for i = 5, #ARGV, 10 do
  local id, ttl = ARGV[i], tonumber(ARGV[i + 6])
  local key = P .. ':s:' .. id
  local cur = redis.call('HGET', key, 'step')
  if not cur then
    out[#out + 1] = redis.call('GET', P .. ':t:' .. id) or -3
  elseif redis.call('HGET', key, 'tag') == tag then
    out[#out + 1] = -1
  elseif cur ~= ARGV[i + 1]
      or (ARGV[i + 8] ~= '' and redis.call('HGET', key, 'rev') ~= ARGV[i + 8]) then
    out[#out + 1] = tonumber(cur)
  elseif ttl <= 0 then
    out[#out + 1] = -2
  else
    redis.call('HSET', key, 'step', ARGV[i + 2], 'lu', ARGV[i + 3], 'state', ARGV[i + 4],
      'tag', tag)
    redis.call('HINCRBY', key, 'rev', 1)
    if ARGV[i + 5] == '' then
      redis.call('HDEL', key, 'replay')
    else
      redis.call('HSET', key, 'replay', ARGV[i + 5])
    end
    if ARGV[i + 9] == '' then
      redis.call('HDEL', key, 'older')
    else
      redis.call('HSET', key, 'older', ARGV[i + 9])
    end
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', P .. ':t:' .. id, ttl + tomb)
    redis.call('ZADD', P .. ':live', ARGV[i + 7], id)
    redis.call('ZADD', P .. ':idle', now, id)
    out[#out + 1] = -1
  end
end
return out
"""

# ARGV: P now tombstone_ms id lu expire_ms deadline_ms -> 1 touched, 0 gone
TOUCH = """
local P, now, id, ttl = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[6])
local key = P .. ':s:' .. id
if ttl <= 0 or redis.call('EXISTS', key) == 0 then return 0 end
redis.call('PEXPIRE', key, ttl)  -- first: a full Redis still lets a forecast touch
redis.call('HSET', key, 'lu', ARGV[5])
redis.call('PEXPIRE', P .. ':t:' .. id, ttl + tonumber(ARGV[3]))
redis.call('ZADD', P .. ':live', ARGV[7], id)
redis.call('ZADD', P .. ':idle', now, id)
return 1
"""

# ARGV: P id -> {1 deleted | 0 absent, sessions, bytes, owner}
DELETE = (
    _PRELUDE
    + """
local id = ARGV[2]
local found = redis.call('EXISTS', P .. ':s:' .. id)
local owner = ''
if found == 1 then
  owner = redis.call('HGET', P .. ':s:' .. id, 'owner') or ''
  drop(id)
  redis.call('DEL', P .. ':t:' .. id)
end
local n, b = totals()
return {found, n, b, owner}
"""
)

# KEYS[1]: the owner's index; ARGV: now id until -> 1
# The index expires with the longest-lived session in it.
OWN = """
local key, now = KEYS[1], tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
redis.call('ZADD', key, ARGV[3], ARGV[2])
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, math.max(1, tonumber(last[2]) - now))
return 1
"""

# ARGV: P now limit -> {expired, sessions, bytes}
SWEEP = (
    _PRELUDE
    + """
local expired = prune(tonumber(ARGV[2]), tonumber(ARGV[3]))
local n, b = totals()
return {expired, n, b}
"""
)
