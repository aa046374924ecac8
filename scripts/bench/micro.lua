-- micro.lua — goluarun's side of the scheduler micro-benchmarks; go_micro.go
-- is Go's side and prints the same lines.
--
--   goluarun -p 1 scripts/bench/micro.lua [SCALE]
--
-- RESULT bench=spawn ns_per_op=... cpu_ns_per_op=...  start a goroutine (go(fn)) that
--     only counts itself done and ends; batches of 1000 are started and
--     then waited for (the last one of a batch wakes main through a
--     channel: a counter plus one wake-up, which is what Go's WaitGroup
--     is), so at most 1000 exist at once. Time per goroutine.
-- RESULT bench=pingpong ns_per_op=...    two goroutines bounce a value over
--     two unbuffered channels; time per round trip.
-- RESULT bench=coro_resume ns_per_op=... reference: plain Lua
--     coroutine.resume + coroutine.yield round trip, no scheduler involved.
-- Extra lines, for reading the spawn figure:
-- RESULT bench=spawn_start ns_per_op=...  the same with go.start(body),
--     which makes no handle (as Go's `go f()`).
-- RESULT bench=spawn_wait ns_per_op=...  same batches, but main waits for
--     each goroutine with go.wait(g).
-- RESULT bench=spawn_wg ns_per_op=...    same batches with sync.waitgroup
--     (only when require "sync" is available).
--
-- Each benchmark runs once untimed at 1/10 size to warm up, then timed.
-- SCALE (default 1) multiplies every iteration count.

local go = go or require "go"

local scale = tonumber(arg and arg[1]) or 1
local BATCH = 1000

local function count(n)
  return math.max(1, math.floor(n * scale))
end

local function batches(n)
  return math.max(1, n // BATCH)
end

-- cpu_ns_per_op: the process's CPU time (os.clock) per operation, steadier
-- than the wall time on a machine shared with other work.
local function report(name, n, secs, cpu)
  print(string.format("RESULT bench=%s n=%d ns_per_op=%.1f cpu_ns_per_op=%.1f",
                      name, n, secs * 1e9 / n, cpu * 1e9 / n))
end

-- Runs fn(n) once at a tenth of n to warm up, then timed; returns wall
-- seconds and CPU seconds.
local function timed(fn, n)
  fn(math.max(1, n // 10))
  collectgarbage()
  local t0, c0 = go.now(), os.clock()
  fn(n)
  return go.now() - t0, os.clock() - c0
end

-- spawn with go(fn) (a handle per goroutine), or with start = go.start
-- (no handle: Go's `go f()` has none either)
local function spawn_counter(nbatch, start)
  start = start or go
  local wake = go.chan(1)
  local left = 0
  local function body()
    left = left - 1
    if left == 0 then wake:send(true) end
  end
  for _ = 1, nbatch do
    left = BATCH
    for _ = 1, BATCH do start(body) end
    wake:recv()
  end
end

local function spawn_wait(nbatch)
  local gs = {}
  local function body() end
  for _ = 1, nbatch do
    for i = 1, BATCH do gs[i] = go(body) end
    for i = 1, BATCH do
      local ok, err = go.wait(gs[i])
      if not ok then error("spawn_wait: " .. tostring(err)) end
    end
  end
end

local function spawn_wg(sync)
  return function(nbatch)
    local wg = sync.waitgroup()
    local function body() wg:done() end
    for _ = 1, nbatch do
      wg:add(BATCH)
      for _ = 1, BATCH do go(body) end
      wg:wait()
    end
  end
end

local function pingpong(n)
  local ping, pong = go.chan(), go.chan()
  go(function()
    while true do
      local v, ok = ping:recv()
      if not ok then break end
      pong:send(v)
    end
    pong:close()
  end)
  for i = 1, n do
    ping:send(i)
    local v = pong:recv()
    if v ~= i then error("pingpong: got " .. tostring(v) .. " for " .. i) end
  end
  ping:close()
  pong:recv()
end

local function coro_resume(n)
  local yield = coroutine.yield
  local co = coroutine.create(function()
    while true do yield() end
  end)
  local resume = coroutine.resume
  for _ = 1, n do resume(co) end
end

local nb = batches(count(300000))
report("spawn", nb * BATCH, timed(spawn_counter, nb))
report("spawn_start", nb * BATCH, timed(function(b) spawn_counter(b, go.start) end, nb))
local np = count(300000)
report("pingpong", np, timed(pingpong, np))
local nc = count(3000000)
report("coro_resume", nc, timed(coro_resume, nc))

local nw = batches(count(100000))
report("spawn_wait", nw * BATCH, timed(spawn_wait, nw))
local have_sync, sync = pcall(require, "sync")
if have_sync and type(sync) == "table" and sync.waitgroup then
  report("spawn_wg", nw * BATCH, timed(spawn_wg(sync), nw))
end
