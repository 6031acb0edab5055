-- One protection step, atomically (pdp/protection/redisstate.py; docs/protection.md).
-- ARGV[1]: the step as JSON; ARGV[2]: the key prefix. Returns a JSON object:
-- {refusal = [kind, name, status, retry, limit, window, route] or absent,
--  fired = [[detector, what, subject, action, count, total, denied, samples, until,
--            status, limit, window], ...], seen = [[subject, action, detector, until,
--            status, limit, window], ...]}
local p = cjson.decode(ARGV[1])
local prefix = ARGV[2]
local now = tonumber(p.now)
local out = {fired = {}, seen = {}}

local function pen_key(s) return prefix .. 'pen:' .. s end

if p.admission == 1 then
  local wanted = {}
  for _, s in ipairs(p.subjects) do
    local h = redis.call('HMGET', pen_key(s), 'until', 'action', 'detector', 'status', 'limit', 'window')
    if h[1] and tonumber(h[1]) > now then
      local untl = tonumber(h[1])
      table.insert(out.seen, {s, h[2], h[3], untl, tonumber(h[4]), tonumber(h[5]), tonumber(h[6])})
      if h[2] == 'block' then
        out.refusal = {'blocked', h[3], tonumber(h[4]), untl - now, 0, 0, false}
        break
      end
      local lim, win = tonumber(h[5]), tonumber(h[6])
      table.insert(wanted, {'x:' .. s, h[3] .. '-throttle', lim, lim / win, win, false})
    end
  end
  if not out.refusal then
    for _, b in ipairs(p.buckets) do table.insert(wanted, b) end
    local tokens_of = {}
    for i, b in ipairs(wanted) do
      local cap, rate = tonumber(b[3]), tonumber(b[4])
      local h = redis.call('HMGET', prefix .. 'b:' .. b[1], 't', 'at')
      local tokens = cap
      if h[1] then
        tokens = math.min(cap, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate)
      end
      tokens_of[i] = tokens
      if tokens < 1 then
        local kind = 'limited'
        if string.sub(b[1], 1, 2) == 'x:' then kind = 'throttled' end
        out.refusal = {kind, b[2], 429, (1 - tokens) / rate, cap, tonumber(b[5]), b[6]}
        break
      end
    end
    if not out.refusal then  -- all or none: a refused request takes no token
      for i, b in ipairs(wanted) do
        local key = prefix .. 'b:' .. b[1]
        redis.call('HSET', key, 't', tostring(tokens_of[i] - 1), 'at', tostring(now))
        redis.call('PEXPIRE', key, math.ceil(tonumber(b[3]) / tonumber(b[4]) * 1000) + 1000)
      end
    end
  end
end

if out.refusal and p.enforce == 1 then return cjson.encode(out) end

for _, c in ipairs(p.counts) do
  local window = tonumber(c[3])
  local key = prefix .. 'c:' .. c[2] .. '|' .. math.floor(now / window)
  local ttl = math.ceil(window * 1000) + 1000
  local total = redis.call('HINCRBY', key, 'total', 1)
  local denied = redis.call('HINCRBY', key, 'denied', c[6])
  redis.call('PEXPIRE', key, ttl)
  local value = total
  if c[5] ~= false then
    redis.call('PFADD', key .. '|d', c[5])
    redis.call('PEXPIRE', key .. '|d', ttl)
    value = redis.call('PFCOUNT', key .. '|d')
    if redis.call('LLEN', key .. '|s') < 5 and not redis.call('LPOS', key .. '|s', c[5]) then
      redis.call('RPUSH', key .. '|s', c[5])
      redis.call('PEXPIRE', key .. '|s', ttl)
    end
  end
  local fraction = tonumber(c[7])
  if value > tonumber(c[4]) and (fraction == 0 or denied >= fraction * total)
      and redis.call('HSETNX', key, 'fired', 1) == 1 then
    local action = c[9]
    if p.enforce ~= 1 then action = 'alert' end
    local untl = false
    if action == 'block' or action == 'throttle' then
      untl = now + tonumber(c[10])
      local pk = pen_key(c[8])
      local old = redis.call('HMGET', pk, 'until', 'action')
      if not (old[2] == 'block' and tonumber(old[1]) >= untl) then
        redis.call('HSET', pk, 'until', tostring(untl), 'action', action, 'detector', c[1],
          'status', c[11], 'limit', c[12], 'window', c[13])
        redis.call('PEXPIRE', pk, math.ceil(tonumber(c[10]) * 1000) + 1000)
        redis.call('ZADD', prefix .. 'penalties', untl, c[8])
      end
    end
    local samples = redis.call('LRANGE', key .. '|s', 0, 4)
    table.insert(out.fired, {c[1], c[14], c[8], action, value, total, denied, samples, untl,
      c[11], c[12], c[13]})
  end
end
return cjson.encode(out)
