-- goluarun.serve: the body of the portable goroutines that net.serve(addr,
-- "mod[:fn]") starts, one per connection, on whichever P takes them. The
-- conn has moved into this VM; it is closed when the handler returns or
-- raises.
local M = {}

-- require with the paths net.serve's caller had (as go.spawn does)
local function load(mod, path, cpath)
  local p0, c0 = package.path, package.cpath
  package.path, package.cpath = path or p0, cpath or c0
  local ok, m = pcall(require, mod)
  package.path, package.cpath = p0, c0
  if not ok then error(m, 0) end
  return m
end

local function handler(spec, path, cpath)
  local mod, fn = spec:match("^([^:]+):?(.*)$")
  local m = load(mod, path, cpath)
  local f
  if fn ~= "" then f = type(m) == "table" and m[fn]
  elseif type(m) == "function" then f = m
  else f = type(m) == "table" and m.handle end
  if type(f) ~= "function" then
    error("net.serve: '" .. spec .. "' is not a handler function", 0)
  end
  return f
end

function M.run(spec, conn, path, cpath)
  local c <close> = conn
  handler(spec, path, cpath)(c)
end

return M
