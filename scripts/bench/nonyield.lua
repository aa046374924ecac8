-- nonyield.lua — what blocking where Lua cannot yield costs (issue 10):
-- an unbuffered channel hand-over between two goroutines of one VM, with
-- both sides able to yield (the normal park) and with one side inside a
-- string.gsub callback (parks on its M: two thread switches and the P's
-- hand-over each way). Modes run interleaved, REPS rounds, medians.
--
--   goluarun -p 1 scripts/bench/nonyield.lua [N] [REPS]
--
-- prints: RESULT bench=chan_pair mode=MODE n=N ns_per_op=... and the ratio
local go = go or require "go"
local n = tonumber(arg and arg[1]) or 5000
local reps = tonumber(arg and arg[2]) or 5

local function run(mode, count)
  local ch = go.chan()
  local h
  local t0 = go.now()
  if mode == "yield" then
    h = go(function() for i = 1, count do ch:send(i) end end)
    for _ = 1, count do ch:recv() end
  elseif mode == "recv_in_gsub" then
    h = go(function() for i = 1, count do ch:send(i) end end)
    string.gsub(string.rep("x", count), "x", function() ch:recv() end)
  else -- send_in_gsub
    h = go(function() for _ = 1, count do ch:recv() end end)
    local i = 0
    string.gsub(string.rep("x", count), "x", function() i = i + 1; ch:send(i) end)
  end
  assert(go.wait(h, 60))
  return (go.now() - t0) / count * 1e9
end

local modes = { "yield", "recv_in_gsub", "send_in_gsub" }
local res = {}
for _, m in ipairs(modes) do res[m] = {}; run(m, math.max(1, n // 10)) end
for _ = 1, reps do
  for _, m in ipairs(modes) do table.insert(res[m], run(m, n)) end
end
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end
local base = median(res.yield)
for _, m in ipairs(modes) do
  local v = median(res[m])
  print(string.format("RESULT bench=chan_pair mode=%s n=%d ns_per_op=%.0f ratio_vs_yield=%.1f",
    m, n, v, v / base))
end
