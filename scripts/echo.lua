-- echo.lua: TCP echo server.
--   goluarun scripts/echo.lua [port | host:port]     (default 8080)
-- Prints "listening on ADDR" once listening; every connection gets back
-- exactly the bytes it sends.
local net = require "net"

local spec = arg and arg[1] or "8080"
local addr = spec:find(":") and spec or (":" .. spec)

local function handle(conn)
  while true do
    local data = conn:read()
    if not data then break end            -- "eof", "closed", reset...
    if not conn:write(data) then break end
  end
  conn:close()
end

local ln = assert(net.serve(addr, handle))
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
