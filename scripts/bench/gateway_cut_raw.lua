-- gateway_cut_raw.lua: a cut-down gateway for gateway_instr.sh: the raw
-- upstream exchange (pool:dial, one write, httpread.readresponse, put), no
-- http.request.
local http = require "goluarun.http"
local net = require "net"
local rr = require("goluarun.httpread").readresponse
local cfg = assert(loadfile(arg[1], "t", {}))() -- (gateway_instr.sh's config)
local up = cfg.upstreams.up[1]
local pool = net.pool({ max_idle = 64 })
local REQ = "GET /body.txt HTTP/1.1\r\nHost: " .. up .. "\r\nUser-Agent: goluarun\r\n\r\n"
local NOV = "connection,content-length,transfer-encoding"
local ln = assert(http.serve(arg[2], function(req, res)
  local c = assert(pool:dial(up, 30))
  assert(c:write(REQ))
  local status, why, _, _, _, _, _, _, whole = rr(c, 65536, 100, NOV, false, 65536)
  if not (status == 200 and whole) then error("upstream: " .. tostring(status or why)) end
  pool:put(c)
  res:send(whole)
end, {}))
print("listening on " .. ln:addr()); io.stdout:flush()
