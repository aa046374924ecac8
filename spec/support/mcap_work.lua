-- Portable goroutines for spec/mcap_spec.lua.
local net = require "net"

local M = {}

-- listen: a listener on the P that runs this; says when shutdown closed it
function M.listen()
  local ln = assert(net.listen("127.0.0.1:0"))
  io.stdout:write("listening ", ln:addr(), "\n"); io.stdout:flush()
  local _, err = ln:accept()
  io.stdout:write("accept ended: ", tostring(err), "\n"); io.stdout:flush()
end

return M
