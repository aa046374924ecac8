-- redis_client.lua: the load side of scripts/bench/redis_client.sh.
--   goluarun scripts/bench/redis_client.lua ADDR TEST N CLIENTS [PIPELINE]
-- TEST is get or set. CLIENTS goroutines, each with its own goluarun.redis
-- client, share N requests of redis-benchmark's shape (key
-- "key:__rand_int__", a 3-byte value), PIPELINE commands per r:pipeline
-- (1: plain calls). Connecting happens before the clock starts. Prints
-- "TEST: RPS requests per second" as `redis-benchmark -q` does.
local go = require "go"
local redis = require "goluarun.redis"

local addr, test = arg[1], arg[2] and arg[2]:upper()
local n, clients, pipe = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5] or "1")
if not (addr and (test == "GET" or test == "SET") and n and clients and pipe) then
  io.stderr:write("usage: redis_client.lua ADDR get|set N CLIENTS [PIPELINE]\n")
  os.exit(2)
end

local KEY, VALUE = "key:__rand_int__", "xxx"

-- one command, and a pipeline of `count` of them, as a user writes them
local one, batch
if test == "SET" then
  one = function(r) return r:set(KEY, VALUE) end
  batch = function(r, count)
    return r:pipeline(function(p)
      for _ = 1, count do p:set(KEY, VALUE) end
    end)
  end
else
  one = function(r) return r:get(KEY) end
  batch = function(r, count)
    return r:pipeline(function(p)
      for _ = 1, count do p:get(KEY) end
    end)
  end
end

local conns = {}
for i = 1, clients do conns[i] = assert(redis.connect(addr, { timeout = 30 })) end
assert(conns[1]:set(KEY, VALUE))

local start, done = go.chan(), go.chan(clients)
for i = 1, clients do
  local share = n // clients + (i <= n % clients and 1 or 0)
  go(function()
    local r = conns[i]
    start:recv()
    while share > 0 do
      local k = math.min(pipe, share)
      if k == 1 then assert(one(r)) else assert(batch(r, k)) end
      share = share - k
    end
    done:send(true)
  end)
end
local t0 = go.now()
for _ = 1, clients do start:send(true) end
for _ = 1, clients do done:recv() end
local elapsed = go.now() - t0
for i = 1, clients do conns[i]:close() end
print(string.format("%s: %.2f requests per second", test, n / elapsed))
