-- pprof_work.lua: CPU-bound work for spec/pprof_spec.lua (go.spawn_on'd
-- on every P): hot3 does three times hot1's work per call.
local go = require "go"
local M = {}

function M.hot3(n)
  local x = 0
  for i = 1, 3 * n do x = x + i % 7 end
  return x
end

function M.hot1(n)
  local x = 0
  for i = 1, n do x = x + i % 7 end
  return x
end

-- spin — hot3 and hot1 in turn for `seconds`
function M.spin(seconds)
  local t = go.now()
  while go.now() - t < seconds do
    M.hot3(3000)
    M.hot1(3000)
  end
  return true
end

-- profile — pprof.profile on the P this runs on
function M.profile(seconds, hz)
  return require("goluarun.pprof").profile(seconds, { hz = hz })
end

-- write_later — write one byte to conn c after `seconds`
function M.write_later(c, seconds)
  go.sleep(seconds)
  c:write("x")
  c:close()
end

return M
