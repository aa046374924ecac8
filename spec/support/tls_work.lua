-- tls_work: functions for spec/tls_spec.lua's portable goroutines
local M = {}

-- a TLS conn moved here with go.spawn: answer one line, report the VM
function M.echo_line(conn)
  local l, err = conn:read("l")
  if not l then return nil, err end
  assert(conn:write("moved: " .. l .. "\n"))
  local info = conn:tlsinfo()
  conn:close()
  return info and info.version, require("go").procid()
end

return M
