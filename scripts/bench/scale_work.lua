-- scale_work: the body of scripts/bench/scale.lua's goroutines
local M = {}
function M.loop(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return s, go.procid()
end
return M
