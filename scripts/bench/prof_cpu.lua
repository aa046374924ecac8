-- prof_cpu.lua: the profiler's cost per CPU second of a Lua loop, off and
-- at 99 and 999 Hz, interleaved (work done per second of this process's
-- CPU time, so a busy box changes it less than wall-clock figures).
--   goluarun -p 1 scripts/bench/prof_cpu.lua [rounds]
local core = require "goluarun.pprof.core"

local function work(cpu_s)
  local c0, n, x = os.clock(), 0, 0
  while os.clock() - c0 < cpu_s do
    for i = 1, 10000 do x = x + i % 7 end
    n = n + 1
  end
  return n / (os.clock() - c0)
end

local rates = { off = {}, [99] = {}, [999] = {} }
for _ = 1, tonumber(arg and arg[1]) or 5 do
  for _, hz in ipairs({ "off", 99, 999 }) do
    if hz ~= "off" then assert(core.start(hz)) end
    table.insert(rates[hz], work(1))
    if hz ~= "off" then assert(core.stop()) end
  end
end
local function median(t) table.sort(t) return t[(#t + 1) // 2] end
local off = median(rates.off)
for _, hz in ipairs({ 99, 999 }) do
  print(string.format("%d Hz: %.2f%% less work per CPU second than off", hz,
    (1 - median(rates[hz]) / off) * 100))
end
