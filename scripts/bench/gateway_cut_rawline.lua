-- gateway_cut_rawline.lua: a cut-down gateway for gateway_instr.sh: the
-- upstream exchange with plain conn calls (a conn kept in a list, no pool,
-- the answer read with conn:read and found with string.find): what a write,
-- a read and its park on the upstream cost.
local http = require "goluarun.http"
local net = require "net"
local cfg = assert(loadfile(arg[1], "t", {}))() -- (gateway_instr.sh's config)
local up = cfg.upstreams.up[1]
local REQ = "GET /body.txt HTTP/1.1\r\nHost: " .. up .. "\r\nUser-Agent: goluarun\r\n\r\n"
local conns = {}
local ln = assert(http.serve(arg[2], function(req, res)
  local c = table.remove(conns) or assert(net.dial(up, 30))
  assert(c:write(REQ))
  -- read raw: nginx answer ~ 340 bytes; read until we have head + 100
  local buf = assert(c:read())
  while not buf:find("\r\n\r\n", 1, true) or #buf - buf:find("\r\n\r\n", 1, true) - 3 < 100 do buf = buf .. assert(c:read()) end
  conns[#conns+1] = c
  res:send(buf:sub(-100))
end, {}))
print("listening on " .. ln:addr()); io.stdout:flush()
