-- gateway_cut_client.lua: a cut-down gateway for gateway_instr.sh: the
-- upstream exchange through http.request (stream, only_headers, a pool; the
-- request table reused), the body by res:readall(): what the HTTP client
-- adds to gateway_cut_raw.lua's raw exchange.
local http = require "goluarun.http"
local net = require "net"
local cfg = assert(loadfile(arg[1], "t", {}))() -- (gateway_instr.sh's config)
local url = "http://" .. cfg.upstreams.up[1] .. "/body.txt"
local pool = net.pool({ max_idle = 64 })
local NO_VALUES = {}
local ureq = { url = url, pool = pool, stream = true, only_headers = NO_VALUES, timeout = 30 }
local ln = assert(http.serve(arg[2], function(req, res)
  local up = assert(http.request(ureq))
  res:send(assert(up:readall()))
end, {}))
print("listening on " .. ln:addr()); io.stdout:flush()
