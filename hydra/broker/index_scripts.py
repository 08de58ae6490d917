"""The Lua scripts of the stores' secondary indexes (``hydra.broker.index``): every change of
one record is one script, so its entries change together, in one round trip.

The keys are made from ``ARGV[1]``, the namespace's prefix ``hydra:ix:<namespace>:`` (Redis
runs standalone, not clustered); ``KEYS[1]`` is the set of namespaces. The layout they keep
is described in ``hydra.broker.index``.
"""

from __future__ import annotations

from hydra.model.status import RunStatus

#: Ended attempts kept per job in ``ends:job:<job id>`` (its last runs at a glance).
RECENT_ENDS = 20
#: Every status a job can be filed under (a job's status is its latest run's).
_STATUSES = "{" + ", ".join(f"'{s.value}'" for s in RunStatus) + "}"

# KEYS: none (the keys are made from ARGV[1], the namespace's prefix; Redis runs standalone).
# A job's status move. ``jobs:filed`` says which status set a job is in ('' none), so a move
# takes it out of that one set (2 ZREMs), not out of every status set (20). ``current`` reads
# it before a script changes anything: a job without that field is new ('': in no set), or was
# filed by a Hydra that did not keep the field ('*': it may be in any set, taken out of all).
MOVE = f"""
local function current(p, id)
  local cur = redis.call('HGET', p..'jobs:filed', id)
  if cur then return cur end
  if redis.call('ZSCORE', p..'jobs', id) or redis.call('ZSCORE', p..'jobs:deleted', id) then return '*' end
  return ''
end
local function move(p, id, user, status, score, cur)
  if cur == '*' then
    for _, s in ipairs({_STATUSES}) do
      if s ~= status then
        redis.call('ZREM', p..'jobs:status:'..s, id)
        redis.call('ZREM', p..'jobs:user:'..user..':status:'..s, id)
      end
    end
  elseif cur ~= '' and cur ~= status then
    redis.call('ZREM', p..'jobs:status:'..cur, id)
    redis.call('ZREM', p..'jobs:user:'..user..':status:'..cur, id)
  end
  if status ~= '' then
    redis.call('ZADD', p..'jobs:status:'..status, score, id)
    redis.call('ZADD', p..'jobs:user:'..user..':status:'..status, score, id)
  end
  redis.call('HSET', p..'jobs:filed', id, status)
  return status
end
"""

# An attempt ended: its entry "<run id>|<status>|<seconds it ran>" among its job's latest ends
# (scored by when it ended), of which the newest RECENT_ENDS are kept. Filing it again (a
# re-applied end, a rebuild) changes nothing.
ENDED = f"""
local function ended(p, job, entry, at)
  if entry == '' or job == '' then return end
  redis.call('ZADD', p..'ends:job:'..job, at, entry)
  redis.call('ZREMRANGEBYRANK', p..'ends:job:'..job, 0, -{RECENT_ENDS + 1})
end
"""

# ARGV: prefix, job id, created ms, user, status ('' none), live '1'/'0', scheduled '1'/'0',
#       undispatched '1'/'0'/'' (leave), latest run id ('' leave), previous user ('' none), namespace,
#       monitored '1'/'0'
PUT_JOB = (
    MOVE
    + """
local p, id, score, user, status = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local live, sched, undisp, latest, before = ARGV[6] == '1', ARGV[7] == '1', ARGV[8], ARGV[9], ARGV[10]
local cur = current(p, id)
redis.call('SADD', KEYS[1], ARGV[11])
if before ~= '' and before ~= user then
  redis.call('ZREM', p..'jobs:user:'..before, id)
  cur = move(p, id, before, '', score, cur)
end
if live then
  redis.call('ZADD', p..'jobs', score, id)
  redis.call('ZADD', p..'jobs:user:'..user, score, id)
  redis.call('ZREM', p..'jobs:deleted', id)
  move(p, id, user, status, score, cur)
else
  redis.call('ZREM', p..'jobs', id)
  redis.call('ZREM', p..'jobs:user:'..user, id)
  redis.call('ZADD', p..'jobs:deleted', score, id)
  move(p, id, user, '', score, cur)
end
if sched and live then redis.call('ZADD', p..'jobs:scheduled', score, id)
else redis.call('ZREM', p..'jobs:scheduled', id) end
if ARGV[12] == '1' and live then redis.call('ZADD', p..'jobs:monitored', score, id)
else redis.call('ZREM', p..'jobs:monitored', id) end
if undisp == '1' then redis.call('ZADD', p..'jobs:undispatched', score, id)
elseif undisp == '0' then redis.call('ZREM', p..'jobs:undispatched', id) end
if latest ~= '' then redis.call('HSET', p..'latest', id, latest) end
return 1
"""
)

# A run's status changed; its job shows it when the run is the job's latest.
# ARGV: prefix, job id, user, status, run id, how ('record' | 'claim' | 'end')
JOB_RUN = (
    MOVE
    + """
local p, id, user, status, run, how = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if how == 'claim' then
  if redis.call('HGET', p..'latest', id) ~= run then return 0 end
elseif how == 'end' then
  redis.call('HDEL', p..'latest', id)
else
  redis.call('HSET', p..'latest', id, run)
end
local score = redis.call('ZSCORE', p..'jobs', id)
if not score then return 0 end  -- deleted (not listed), or not indexed yet (the backlog will)
move(p, id, user, status, score, current(p, id))
return 1
"""
)

# ARGV: prefix, run id, job id, queued ms, active value ('' when it ended), dead ('' | 'dead' |
#       'retried'), namespace, mode ('set', or 'new': only add what is missing - the intent
#       filed before a run record is inserted, which may turn out to exist already),
#       its end's entry ('' while it has not ended), when it ended (ms); with 'new', optionally
#       the sent set (hydra:sent) and the time sent (epoch seconds): the run is noted as sent in
#       the same round trip (hydra.broker.sent; the publisher's last Redis write before the record)
PUT_RUN = (
    ENDED
    + """
local p, run, job, score, active, dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('SADD', KEYS[1], ARGV[7])
if ARGV[8] == 'new' then
  redis.call('ZADD', p..'runs:job:'..job, 'NX', score, run)
  if active ~= '' then redis.call('HSETNX', p..'active', run, active) end
  if ARGV[11] and ARGV[11] ~= '' then redis.call('ZADD', ARGV[11], ARGV[12], run) end
  return 1
end
redis.call('ZADD', p..'runs:job:'..job, score, run)
if active ~= '' then redis.call('HSET', p..'active', run, active) else redis.call('HDEL', p..'active', run) end
if dead == 'dead' then
  redis.call('ZADD', p..'dead', score, run); redis.call('ZREM', p..'dead:retried', run)
  redis.call('ZADD', p..'dead:job:'..job, score, run)
elseif dead == 'retried' then
  redis.call('ZREM', p..'dead', run); redis.call('ZADD', p..'dead:retried', score, run)
  redis.call('ZADD', p..'dead:job:'..job, score, run)
else
  redis.call('ZREM', p..'dead', run); redis.call('ZREM', p..'dead:retried', run)
  redis.call('ZREM', p..'dead:job:'..job, run)
end
ended(p, job, ARGV[9], ARGV[10])
return 1
"""
)

# A worker claimed a run - the claim's whole Redis work, in one round trip: its active entry
# says running on that worker (unless it ended meanwhile: then there is no entry, and none is
# made); its job shows it if it is the latest; its quota place moves from queued to running
# (hydra.broker.quotas); it is no longer "sent, not claimed" (hydra.broker.sent).
# ARGV: prefix, run id, worker, job id, user, the namespace's queued and running sets, hydra:sent
CLAIM = (
    MOVE
    + """
local p, run, worker, id, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HGET', p..'active', run)
if cur then
  local f = {}
  for v in string.gmatch(cur..'|', '([^|]*)|') do f[#f + 1] = v end
  f[1] = 'running'; f[2] = worker
  redis.call('HSET', p..'active', run, table.concat(f, '|'))
end
redis.call('ZREM', p..'jobs:undispatched', id)
if redis.call('HGET', p..'latest', id) == run then
  local score = redis.call('ZSCORE', p..'jobs', id)
  if score then move(p, id, user, 'running', score, current(p, id)) end
end
redis.call('SREM', ARGV[6], run)
redis.call('SADD', ARGV[7], run)
redis.call('ZREM', ARGV[8], run)
return 1
"""
)

# An attempt ended - the end's whole Redis work in the index and the quotas, in one round
# trip: not active, maybe a dead letter, among its job's ends, its job filed under its status;
# and its places freed (an ended run holds none: the namespace's queued and running sets, its
# job's max_concurrent set; hydra.broker.quotas).
# ARGV: prefix, run id, job id, user, status, queued ms, dead ('' | 'dead' | 'retried'), ns,
#       its end's entry, when it ended (ms), the namespace's queued and running sets, the job's
#       max_concurrent set
END = (
    MOVE
    + ENDED
    + """
local p, run, id, user, status, score, dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
redis.call('SADD', KEYS[1], ARGV[8])
redis.call('HDEL', p..'active', run)
redis.call('ZADD', p..'runs:job:'..id, score, run)
if dead == 'dead' then
  redis.call('ZADD', p..'dead', score, run); redis.call('ZADD', p..'dead:job:'..id, score, run)
elseif dead == 'retried' then
  redis.call('ZREM', p..'dead', run); redis.call('ZADD', p..'dead:retried', score, run)
  redis.call('ZADD', p..'dead:job:'..id, score, run)
end
redis.call('ZREM', p..'jobs:undispatched', id)
redis.call('HDEL', p..'latest', id)
local created = redis.call('ZSCORE', p..'jobs', id)
if created then move(p, id, user, status, created, current(p, id)) end
ended(p, id, ARGV[9], ARGV[10])
redis.call('SREM', ARGV[11], run)
redis.call('SREM', ARGV[12], run)
if id ~= '' then redis.call('SREM', ARGV[13], run) end
return 1
"""
)

# Retention: a run and every entry naming it. ARGV: prefix, run id, job id
DROP_RUN = """
local p, run, job = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREM', p..'runs:job:'..job, run)
redis.call('HDEL', p..'active', run)
redis.call('ZREM', p..'dead', run); redis.call('ZREM', p..'dead:retried', run)
redis.call('ZREM', p..'dead:job:'..job, run)
for _, entry in ipairs(redis.call('ZRANGE', p..'ends:job:'..job, 0, -1)) do
  if string.sub(entry, 1, #run + 1) == run..'|' then redis.call('ZREM', p..'ends:job:'..job, entry) end
end
return 1
"""

# Retention: a job and every entry naming it. ARGV: prefix, job id, user
DROP_JOB = (
    MOVE
    + """
local p, id, user = ARGV[1], ARGV[2], ARGV[3]
move(p, id, user, '', 0, redis.call('HGET', p..'jobs:filed', id) or '*')
redis.call('HDEL', p..'jobs:filed', id)
for _, k in ipairs({'jobs', 'jobs:deleted', 'jobs:user:'..user, 'jobs:scheduled', 'jobs:monitored', 'jobs:undispatched'}) do
  redis.call('ZREM', p..k, id)
end
redis.call('HDEL', p..'latest', id)
redis.call('DEL', p..'runs:job:'..id, p..'dead:job:'..id, p..'ends:job:'..id)
return 1
"""
)
