-- goluarun.serve: net.serve (bindings/lnet.c calls M.serve) and the
-- goroutines it starts in other VMs.
--
-- net.serve(addr, fn): one accept loop in the caller's VM, a local goroutine
-- per connection.
-- net.serve(addr, "mod[:fn]"): served from every P. accept = "every" (the
-- default): every P accepts on a listener of its own on the same address
-- (SO_REUSEPORT; acceptors started with go.spawn_on) and serves its
-- connections locally; closing the caller's listener closes them all
-- through a shared channel. accept = "one" (and unix sockets): the caller
-- accepts and hands each conn to a portable goroutine (M.run) that any P
-- may take. The conn is closed when the handler returns or raises.
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

-- handlers already resolved in this VM, by spec and paths: a connection
-- costs no module lookup
local resolved = {}

local function handler(spec, path, cpath)
  local key = spec .. "\0" .. (path or "") .. "\0" .. (cpath or "")
  local f = resolved[key]
  if f then return f end
  local mod, fn = spec:match("^([^:]+):?(.*)$")
  local m = load(mod, path, cpath)
  if fn ~= "" then f = type(m) == "table" and m[fn]
  elseif type(m) == "function" then f = m
  else f = type(m) == "table" and m.handle end
  if type(f) ~= "function" then
    error("net.serve: '" .. spec .. "' is not a handler function", 0)
  end
  resolved[key] = f
  return f
end

-- accept_loop: accept on ln until it closes; start(c) starts each conn's
-- goroutine
local function accept_loop(ln, start)
  local go = require "go"
  while true do
    local c, e = ln:accept()
    if c then start(c)
    elseif e == "closed" then return
    elseif e ~= "timeout" then go.sleep(0.01) end -- EMFILE and the like
  end
end

-- local_start: a goroutine f(c) per conn, no handle (~140 B a conn), and
-- no Lua frame of its own: net._serve_start closes c when f ends (a Lua
-- wrapper with a <close> variable would stay under every parked handler:
-- 64 B of the VM)
local function local_start(f)
  local start = require("net")._serve_start
  return function(c) start(f, c) end
end

-- run: accept = "one", in whichever VM took the portable goroutine
function M.run(spec, conn, path, cpath)
  local c <close> = conn -- closed even if the handler cannot be loaded
  handler(spec, path, cpath)(c)
end

-- acceptor: accept = "every" on one more P, until `stop` closes
function M.acceptor(addr, spec, path, cpath, backlog, stop, tls)
  local go, net = require "go", require "net"
  local f = handler(spec, path, cpath)
  local ln = assert(net.listen(addr, { reuseport = true, backlog = backlog, tls = tls }))
  go(function()
    stop:recv()
    ln:close()
  end)
  accept_loop(ln, local_start(f))
end

-- every: the caller's side of accept = "every"
local function every(ln, spec, path, cpath, backlog, tls)
  local go = require "go"
  local stop = go.sharedchan()
  local addr = ln:addr()
  for p = 0, go.nprocs() - 1 do
    if p ~= go.procid() then
      go.spawn_on(p, "goluarun.serve:acceptor", addr, spec, path, cpath, backlog, stop, tls)
    end
  end
  local f = handler(spec, path, cpath)
  go(function()
    accept_loop(ln, local_start(f))
    stop:close()
  end)
end

-- find: raise at once (in net.serve's caller) if the module does not exist
local function find(spec)
  local mod = spec:match("^([^:]+)")
  if not mod then
    error('net.serve: bad handler "' .. spec .. '" (want "mod" or "mod:fn")', 3)
  end
  if package.loaded[mod] or package.preload[mod] then return end
  for i = 2, #package.searchers do -- [1] is preload, checked above
    if type((package.searchers[i](mod))) == "function" then return end
  end
  error("net.serve: module '" .. mod .. "' not found", 3)
end

function M.serve(addr, h, opts)
  local go, net = require "go", require "net"
  local portable = type(h) == "string"
  if portable then find(h)
  elseif type(h) ~= "function" then
    error('net.serve: handler must be a function or a "mod[:fn]" string', 2)
  end
  local accept = type(opts) == "table" and opts.accept or "every"
  if accept ~= "every" and accept ~= "one" then
    error('net.serve: opts.accept must be "every" or "one"', 2)
  end
  local backlog = type(opts) == "table" and opts.backlog or nil
  local tls = type(opts) == "table" and opts.tls or nil
  local each = portable and accept == "every" and not tostring(addr):match("^unix:")
  if each then opts = { backlog = backlog, reuseport = true, tls = tls } end
  local ln, err = net.listen(addr, opts)
  if not ln then return nil, err end
  local path, cpath = package.path, package.cpath
  if each then
    every(ln, h, path, cpath, backlog, tls)
  elseif portable then
    go(accept_loop, ln, function(c) go.spawn("goluarun.serve:run", h, c, path, cpath) end)
  else
    go(accept_loop, ln, local_start(h))
  end
  return ln
end

return M
