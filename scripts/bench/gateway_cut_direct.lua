-- gateway_cut_direct.lua: a cut-down gateway for gateway_instr.sh
-- (GATEWAY=scripts/bench/gateway_cut_direct.lua): the 100-byte answer
-- straight from the handler, no upstream (the server's own share).
local http = require "goluarun.http"
local BODY = string.rep("0", 99) .. "\n"
local ln = assert(http.serve(arg[2], function(req, res) res:send(BODY) end, {}))
print("listening on " .. ln:addr()); io.stdout:flush()
