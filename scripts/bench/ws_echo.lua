-- ws_echo.lua: the goluarun side of scripts/bench/websocket.sh, a
-- WebSocket echo server (goluarun.http + goluarun.websocket).
--   goluarun -p 1 scripts/bench/ws_echo.lua [host:port]
local http = require "goluarun.http"
local websocket = require "goluarun.websocket"

local ln = assert(http.serve(arg[1] or "127.0.0.1:0", function(req, res)
  local ws = websocket.upgrade(req, res)
  if not ws then return end
  while true do
    local msg, kind = ws:recv()
    if not msg or not ws:send(msg, kind) then break end
  end
  ws:close()
end))
print("listening on " .. ln:addr())
io.stdout:flush()
