-- proxy.lua: a TCP proxy.
--   goluarun scripts/proxy.lua LISTEN_PORT|host:port BACKEND_ADDR
-- Prints "listening on ADDR" once listening. Per client: dial the backend,
-- then copy each direction in its own goroutine with conn:read()/write().
--   * half-close: when one side sends EOF, the other side gets closewrite()
--     (FIN) and the opposite direction keeps going;
--   * both directions done: both conns are closed;
--   * any error (reset, failed write, failed closewrite): both conns are
--     closed, which ends the other direction too.
-- A client whose backend cannot be dialled is closed at once (logged on
-- stderr).
local go = require "go"
local net = require "net"

local listen, backend = arg and arg[1], arg and arg[2]
if not listen or not backend then
  io.stderr:write("usage: goluarun scripts/proxy.lua LISTEN_PORT|host:port BACKEND_ADDR\n")
  os.exit(2)
end
local addr = listen:find(":") and listen or (":" .. listen)
local DIAL_TIMEOUT = 10

-- copies src -> dst until EOF or an error; reports on `done`
local function copy(src, dst, done)
  while true do
    local data, err = src:read()
    if not data then
      if err ~= "eof" or not dst:closewrite() then
        src:close(); dst:close()
      end
      break
    end
    if not dst:write(data) then
      src:close(); dst:close()
      break
    end
  end
  done:send(true)
end

local function handle(client)
  local up, err = net.dial(backend, DIAL_TIMEOUT)
  if not up then
    io.stderr:write("proxy: dial ", backend, ": ", tostring(err), "\n")
    client:close()
    return
  end
  local done = go.chan(2)
  go(copy, up, client, done) -- backend -> client
  copy(client, up, done)     -- client -> backend
  done:recv()
  done:recv()
  up:close()
  client:close()
end

local ln, lerr = net.serve(addr, handle)
if not ln then
  io.stderr:write("proxy: ", addr, ": ", tostring(lerr), "\n")
  os.exit(1)
end
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
