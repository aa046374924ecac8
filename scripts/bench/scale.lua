-- scale.lua: CPU-bound portable goroutines: N goroutines each running a
-- fixed Lua loop, spread over the Ps by go.spawn and stealing.
--   goluarun -p 1 scripts/bench/scale.lua ; goluarun -p 2 scripts/bench/scale.lua
-- prints: RESULT bench=scale procs=P n=N secs=S per_p=...
local n = tonumber(arg and arg[1]) or 2000
local iters = tonumber(arg and arg[2]) or 200000
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local t0 = go.now()
local hs = {}
for i = 1, n do hs[i] = go.spawn("scale_work:loop", iters) end
local per = {}
for i = 1, n do
  local ok, s, p = go.wait(hs[i])
  assert(ok, s)
  per[p] = (per[p] or 0) + 1
end
local parts = {}
for p = 0, go.nprocs() - 1 do parts[#parts + 1] = tostring(per[p] or 0) end
print(string.format("RESULT bench=scale procs=%d n=%d secs=%.3f per_p=%s",
  go.nprocs(), n, go.now() - t0, table.concat(parts, "/")))
