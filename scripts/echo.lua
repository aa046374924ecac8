-- echo.lua: TCP echo server, plain or TLS.
--   goluarun scripts/echo.lua [port | host:port] [--tls CERT KEY] [--timeout S]
-- (default 8080). Prints "listening on ADDR" once listening; every
-- connection gets back exactly the bytes it sends. With --tls CERT KEY
-- (PEM files: certificate chain, private key) the listener is a TLS one:
-- each connection's handshake runs on its first read.
-- Every read and write of a connection must complete within --timeout S
-- seconds (default 60: idle clients and clients that stop reading are
-- disconnected, so none can pin a goroutine and an fd for good).
local net = require "net"

local TIMEOUT = 60

local function usage(msg)
  io.stderr:write("echo: ", msg, "\n",
    "usage: goluarun scripts/echo.lua [port | host:port] [--tls CERT KEY] [--timeout S]\n")
  os.exit(2)
end

-- arguments: one address, and --tls CERT KEY anywhere
local spec, tls
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--tls" then
    if not arg[i + 1] or not arg[i + 2] then usage("--tls needs CERT and KEY") end
    tls = { cert = arg[i + 1], key = arg[i + 2] }
    i = i + 3
  elseif a == "--timeout" then
    TIMEOUT = tonumber(arg[i + 1])
    if not TIMEOUT or TIMEOUT <= 0 then usage("--timeout needs a number of seconds") end
    i = i + 2
  elseif spec then
    usage("unexpected argument " .. a)
  else
    spec, i = a, i + 1
  end
end
spec = spec or "8080"
local addr = spec:find(":") and spec or (":" .. spec)

local function handle(conn)
  conn:settimeout(TIMEOUT)
  while true do
    local data = conn:read()
    if not data then break end            -- "eof", "closed", reset, failed handshake...
    if not conn:write(data) then break end
  end
  conn:close()
end

local ln, err = net.serve(addr, handle, tls and { tls = tls } or nil)
if not ln then
  io.stderr:write("echo: cannot listen on ", addr, ": ", tostring(err), "\n")
  os.exit(1)
end
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
