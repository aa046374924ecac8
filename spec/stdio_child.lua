-- stdio_child: run by spec/stdio_spec.lua on another P (go.spawn_on): an
-- io.popen child that sends itself `sig`; "" if the signal killed it.
local M = {}
function M.probe(sig)
  local f = assert(io.popen("sh -c 'kill -" .. sig .. " $$; echo alive'"))
  local out = f:read("a")
  return out, select(2, f:close())
end
return M
