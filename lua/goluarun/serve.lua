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

-- accept_loop: accept on ln until it closes; each conn in a local goroutine
function M.accept_loop(ln, f)
  local go = require "go"
  local function serve_one(c)
    local conn <close> = c
    f(conn)
  end
  while true do
    local c, e = ln:accept()
    if c then go(serve_one, c)
    elseif e == "closed" then return
    elseif e ~= "timeout" then go.sleep(0.01) end -- EMFILE and the like
  end
end

-- acceptor: accept = "every" on one more P: a listener of this P's own on
-- the same address (SO_REUSEPORT), closed when `stop` (a shared channel)
-- closes, i.e. when the caller's listener was closed
function M.acceptor(addr, spec, path, cpath, backlog, stop)
  local go, net = require "go", require "net"
  local f = handler(spec, path, cpath)
  local ln = assert(net.listen(addr, { reuseport = true, backlog = backlog }))
  go(function()
    stop:recv()
    ln:close()
  end)
  M.accept_loop(ln, f)
end

-- every: the caller's side of accept = "every": start an acceptor on every
-- other P, then accept on ln (already listening with SO_REUSEPORT) here;
-- once ln is closed (by the caller, or at shutdown) every P stops accepting
function M.every(ln, spec, path, cpath, backlog)
  local go = require "go"
  local stop = go.sharedchan()
  local addr = ln:addr()
  for p = 0, go.nprocs() - 1 do
    if p ~= go.procid() then
      go.spawn_on(p, "goluarun.serve:acceptor", addr, spec, path, cpath, backlog, stop)
    end
  end
  local f = handler(spec, path, cpath)
  go(function()
    M.accept_loop(ln, f)
    stop:close()
  end)
end

return M
