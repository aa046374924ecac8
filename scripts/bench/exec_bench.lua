-- exec_bench.lua N C: starts N children of /bin/true with go.exec, C at a
-- time (C goroutines, each go.exec + p:wait in a loop), and prints one line
--   RESULT impl=goluarun children=N secs=WALL cpu=CPU peak_threads=T
-- (cpu: this process's user+system seconds, children excluded; peak_threads
-- sampled from /proc/self/status every 5 ms). Run by scripts/bench/exec.sh.
local go = require "go"

local N, C = tonumber(arg[1]) or 2000, tonumber(arg[2]) or 50

local function threads()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("Threads:%s*(%d+)"))
end

local started, done, peak = 0, false, threads()
local t0, c0 = go.now(), os.clock()
local workers = {}
for w = 1, C do
  workers[w] = go(function()
    while started < N do
      started = started + 1
      local p = assert(go.exec({ "/bin/true" }, { stdin = "null", stdout = "null", stderr = "null" }))
      assert(p:wait() == 0)
    end
  end)
end
local sampler = go(function()
  while not done do
    peak = math.max(peak, threads())
    go.sleep(0.005)
  end
end)
for w = 1, C do assert(go.wait(workers[w])) end
local secs, cpu = go.now() - t0, os.clock() - c0
done = true
go.wait(sampler)
print(string.format("RESULT impl=goluarun children=%d secs=%.3f cpu=%.3f peak_threads=%d",
  N, secs, cpu, peak))
