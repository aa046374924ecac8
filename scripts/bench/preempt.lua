-- preempt.lua: preemption latency for the ticker case. A goroutine spins in
-- `while not stop do end` (never parks) next to a 10 ms ticker on the same
-- P; prints how late each tick was (p50, p90, p99, max) and the number of
-- preemptions. Run: goluarun -p 1 scripts/bench/preempt.lua [seconds]
-- (GOLUA_NOPREEMPT=1 shows the contrast: the ticker never runs again.)
local secs = tonumber(arg and arg[1]) or 3
local late = {}
local st = { stop = false }
go(function()
  local next = go.now() + 0.01
  while not st.stop do
    go.sleep(next - go.now())
    late[#late + 1] = (go.now() - next) * 1000
    next = next + 0.01
  end
end)
local hog = go(function() local n = 0; while not st.stop do n = n + 1 end; return n end)
go.sleep(secs)
st.stop = true
go.wait(hog)
table.sort(late)
local function pct(p) return late[math.max(1, math.ceil(#late * p))] or 0 end
print(string.format("ticks=%d (expected %d) late_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f preemptions=%d",
  #late, math.floor(secs / 0.01), pct(0.5), pct(0.9), pct(0.99), late[#late] or 0,
  go.stats().preemptions))
