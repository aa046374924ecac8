-- spawn_work: functions for spec/spawn_spec.lua's portable goroutines
local M = {}
function M.square(x) return x * x end
function M.where() return go.procid() end
function M.busy(n)
  local s = 0
  for i = 1, n do s = s + i end
  return s, go.procid()
end
function M.echo(...) return ... end
function M.types(...)
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[i] = type(v) == "number" and math.type(v) or type(v)
  end
  return table.concat(out, ",")
end
function M.boom() error("kaboom", 0) end
function M.sleepy(s) go.sleep(s); return "slept" end
function M.bad_result() return print end
function M.incr(name, n)
  local d = go.shared(name)
  for _ = 1, n do d:incr("k", 1, 0) end
  return go.procid()
end
return M
