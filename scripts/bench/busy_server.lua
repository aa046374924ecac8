-- busy_server.lua — for busy_neighbour_spec and busy_neighbour.lua: N goroutines
-- spin forever (no timers anywhere in this VM) beside a line echo server.
-- Usage: goluarun [-p P] scripts/bench/busy_server.lua N
local net = require "net"
for _ = 1, tonumber(arg[1] or 1) do
  go(function() while true do end end)
end
local ln = assert(net.listen("127.0.0.1:0"))
print("listening on " .. ln:addr())
io.stdout:flush()
while true do
  local c = ln:accept()
  if not c then return end
  go(function()
    while true do
      local line = c:read("l")
      if not line then break end
      c:write(line, "\n")
    end
    c:close()
  end)
end
