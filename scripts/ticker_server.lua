-- ticker_server.lua: a TCP server driven by the example C module
-- (modules/timerfd): every client gets one line per tick of a Linux timerfd.
--   goluarun scripts/ticker_server.lua [port | host:port] [period] [count]
-- Each connection: "tick N (+E missed)\n" every `period` seconds (default
-- 0.1), `count` times (default 10), then "bye\n" and close. A client line
-- "stop" ends its stream early.
local net = require "net"
local timerfd = require "timerfd"

local spec = arg[1] or "8083"
local addr = spec:find(":") and spec or (":" .. spec)
local period = tonumber(arg[2]) or 0.1
local count = tonumber(arg[3]) or 10

local function handle(conn)
  local t <close> = timerfd.ticker(period)
  local stop = false
  go(function() -- a reader, so a client can stop its stream
    while true do
      local line = conn:read("l")
      if not line or line == "stop" then stop = true; t:close(); return end
    end
  end)
  for i = 1, count do
    local n, err = t:wait()
    if not n or stop then break end
    local extra = n > 1 and (" (+" .. (n - 1) .. " missed)") or ""
    if not conn:write("tick ", i, extra, "\n") then break end
  end
  conn:write("bye\n")
end

local ln = assert(net.serve(addr, handle))
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
