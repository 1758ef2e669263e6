-- Appends one publication to the cluster's stream, all or nothing (SPEC §10).
--
-- KEYS[1]: the stream. KEYS[2]: a hash from publisher id to the stream id of its entry.
-- KEYS[3]: a sorted set of those publisher ids, scored by their entry's milliseconds,
-- so that ids whose entries the stream no longer holds are forgotten.
-- ARGV[1]: MAXLEN (approximate). Then, per event: its publisher id ('' for none), its
-- topics joined by LF, its encoded SSE body (everything after the id line).
--
-- Returns {'ok', id...}: each event's stream id; or {'conflict', i}: event i's
-- publisher id is still held, and nothing was appended.
-- Scripts run atomically: no other publish comes between the checks and the appends.

local stream, owners, ages = KEYS[1], KEYS[2], KEYS[3]
local maxlen = ARGV[1]
local count = (#ARGV - 1) / 3

local function present(id)
  return #redis.call('XRANGE', stream, id, id) > 0
end

-- Whether `id`, as an SSE id, names an entry the stream still holds: one a publisher
-- gave that id, or (an id of the stream's own form) the entry with that stream id.
local function held(id)
  local entry = redis.call('HGET', owners, id)
  if entry and present(entry) then
    return true
  end
  return string.match(id, '^%d+%-%d+$') ~= nil and present(id)
end

for i = 0, count - 1 do
  local id = ARGV[2 + i * 3]
  if id ~= '' and held(id) then
    return {'conflict', tostring(i)}
  end
end

local ids = {}
for i = 0, count - 1 do
  local id, topics, body = ARGV[2 + i * 3], ARGV[3 + i * 3], ARGV[4 + i * 3]
  local entry
  if id == '' then
    -- The stream's id is the SSE id: it must not be one a publisher chose for an
    -- entry still held. The next try gets a higher id.
    repeat
      entry = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', topics, 'b', body)
      local owner = redis.call('HGET', owners, entry)
      local clash = owner and present(owner)
      if clash then
        redis.call('XDEL', stream, entry)
      end
    until not clash
  else
    entry = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'i', id, 't', topics, 'b', body)
    redis.call('HSET', owners, id, entry)
    redis.call('ZADD', ages, string.match(entry, '^%d+'), id)
  end
  ids[#ids + 1] = entry
end

-- Forget publisher ids older than the stream's first entry, a bounded number a call.
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
if first then
  local gone = redis.call('ZRANGEBYSCORE', ages, '-inf', '(' .. string.match(first[1], '^%d+'),
    'LIMIT', 0, count + 100)
  if #gone > 0 then
    redis.call('HDEL', owners, unpack(gone))
    redis.call('ZREM', ages, unpack(gone))
  end
end

table.insert(ids, 1, 'ok')
return ids
