-- serve_work: handlers for spec/serve_spec.lua (net.serve with a module)
local M = {}
function M.handle(c) -- echo
  while true do
    local d = c:read()
    if not d then return end
    c:write(d)
  end
end
function M.who(c) c:write("P", go.procid(), "\n") end
function M.boom(c) c:write("before\n"); error("handler exploded", 0) end
function M.moved(c) -- for go.spawn(conn): reads the buffered rest, answers
  local conn <close> = c -- it lives in this VM now: close it here
  local l = conn:read("l")
  conn:write("moved got ", l, "\n")
  return go.procid()
end
function M.where() return go.procid() end -- for go.spawn_on
return M
