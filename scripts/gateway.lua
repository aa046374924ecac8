-- gateway.lua: an HTTP reverse proxy / API gateway on goluarun.http.
--   goluarun scripts/gateway.lua CONFIG.lua [host:port]
-- CONFIG.lua returns a table (scripts/gateway.example.lua shows every
-- field); the second argument overrides its `listen`. Prints "listening on
-- ADDR" once listening.
--
--   * routes: the first route whose `prefix` starts the request path
--     picks an upstream group (`strip = true` removes the prefix; a
--     route's own `timeout` replaces the global one); no route: 404
--   * upstream groups: round-robin over their servers; a server that
--     refuses the connection is skipped for `fail_timeout` seconds (passive
--     health) and the next one is tried; every server refusing: 502
--   * pooled keep-alive conns to the upstreams (one net.pool)
--   * `timeout` per request, from the gateway's first byte to the
--     upstream until the upstream's answer head: 504; then each read of
--     the answer's body has `body_timeout` seconds
--   * each request goes on through http.proxy: X-Forwarded-For
--     (appended), X-Forwarded-Proto, X-Forwarded-Host; hop-by-hop fields
--     (and those a Connection field names) are not forwarded either way;
--     the others go on as received, names' case kept, copied from the
--     bytes (the upstream's Date and Server are replaced by the gateway's,
--     and no Content-Type is added that the upstream did not send)
--   * bodies stream both ways: a request body bigger than `buffer_body`
--     bytes (or chunked) is read as it arrives and sent on chunked; an
--     answer bigger than `buffer_body` bytes (or without a length) goes
--     out piece by piece
--   * `tls = {cert =, key =}`: HTTPS termination (plain HTTP upstreams,
--     or `tls = T or true` on a group for HTTPS upstreams)
-- It serves from the P it runs on (run it with -p 1; start one process per
-- core with `reuseport = true` to use more).
local go = require "go"
local net = require "net"
local http = require "goluarun.http"

local now = go.now
local find, sub = string.find, string.sub

local function die(msg)
  io.stderr:write("gateway: ", msg, "\n")
  os.exit(2)
end

local config_path, listen_override = arg and arg[1], arg and arg[2]
if not config_path then die("usage: goluarun scripts/gateway.lua CONFIG.lua [host:port]") end
local chunk, lerr = loadfile(config_path, "t", {})
if not chunk then die(lerr) end
local ok, cfg = pcall(chunk)
if not ok or type(cfg) ~= "table" then die(config_path .. ": must return a table (" .. tostring(cfg) .. ")") end

local TIMEOUT = cfg.timeout or 30
local FAIL_TIMEOUT = cfg.fail_timeout or 10
local BUFFER_BODY = cfg.buffer_body or 64 * 1024
local BODY_TIMEOUT = cfg.body_timeout or 60
local pool = net.pool(cfg.pool or { max_idle = 128, idle_timeout = 60 })

-- groups: name -> { servers = { {addr, down_until, up (http.proxy's)} }, next, n, name }
local groups = {}
for name, g in pairs(cfg.upstreams or {}) do
  local list = g.servers or g
  local grp = { servers = {}, next = 1, tls = g.tls, name = name }
  for i, addr in ipairs(list) do
    if type(addr) ~= "string" or not find(addr, ":%d+$") then
      die("upstream " .. name .. ": server " .. i .. " must be \"host:port\"")
    end
    grp.servers[i] = { addr = addr, down_until = 0, up = { addr = addr, tls = g.tls, pool = pool,
      body_timeout = BODY_TIMEOUT, buffer_body = BUFFER_BODY } }
  end
  grp.n = #grp.servers
  if grp.n == 0 then die("upstream " .. name .. " has no servers") end
  groups[name] = grp
end

local routes = {}
for i, r in ipairs(cfg.routes or {}) do
  if type(r.prefix) ~= "string" or sub(r.prefix, 1, 1) ~= "/" then
    die("route " .. i .. ": prefix must start with /")
  end
  local grp = groups[r.upstream]
  if not grp then die("route " .. i .. ": unknown upstream " .. tostring(r.upstream)) end
  routes[i] = { prefix = r.prefix, n = #r.prefix, group = grp, strip = r.strip,
    timeout = r.timeout or TIMEOUT }
end
if #routes == 0 then die("no routes") end

local function route_of(path)
  for i = 1, #routes do
    local r = routes[i]
    if sub(path, 1, r.n) == r.prefix then return r end
  end
  return false
end

-- path -> its route (false: none), for the paths seen last (bounded: paths
-- come from clients); a hit is one table read, no sub() string per route
local ROUTE_CACHE_MAX = 1024
local route_cache, nroutes = {}, 0
local function route_miss(path)
  local r = route_of(path)
  if nroutes >= ROUTE_CACHE_MAX then route_cache, nroutes = {}, 0 end
  nroutes = nroutes + 1
  route_cache[path] = r
  return r
end

-- round-robin over the servers that are not marked down (all down: the
-- next one anyway, so a recovered server is found)
local function pick(grp, tried, t)
  if tried.addr then tried = { [tried] = true } end -- (one server tried)
  local servers, n = grp.servers, #grp.servers
  for _ = 1, n do
    local i = grp.next
    grp.next = i % n + 1
    local s = servers[i]
    if not tried[s] and s.down_until <= t then return s end
  end
  for i = 1, n do
    if not tried[servers[i]] then return servers[i] end
  end
  return nil
end

local function fail(res, code, msg)
  res:status(code):send(msg .. "\n")
end

local NONE_TRIED = setmetatable({}, { __newindex = function() error("NONE_TRIED is read-only") end })

local function handle(req, res)
  local path = req.path
  local r = route_cache[path]
  if r == nil then r = route_miss(path) end
  if not r then return fail(res, 404, "no route") end
  local target -- (nil: req.target as it is)
  if r.strip then
    target = sub(req.target, r.n + 1)
    if sub(target, 1, 1) ~= "/" then target = "/" .. target end
  end
  local grp, tried, timeout = r.group, NONE_TRIED, r.timeout
  local start = now()
  -- the first server: round-robin's next when it is not marked down
  local s = grp.servers[grp.next]
  if s.down_until <= start then grp.next = grp.next % grp.n + 1 else s = pick(grp, tried, start) end
  while true do
    if not s then return fail(res, 502, "bad gateway: no upstream of " .. grp.name .. " answers") end
    if tried == NONE_TRIED then -- the first server: no table
      tried = s
    else -- a retry (rare)
      if tried.addr then tried = { [tried] = true } end
      tried[s] = true
    end
    local ok, err = http.proxy(req, res, s.up, target, timeout)
    if ok ~= nil then -- the answer went out (false: cut short, the conn closes)
      s.down_until = 0
      return
    end
    if find(err, "^request body: ") then return end -- (the server answers 400/408/413)
    local t = now()
    if find(err, "^connection refused") then
      s.down_until = t + FAIL_TIMEOUT
    elseif err == "timeout" then
      return fail(res, 504, "gateway timeout")
    else
      return fail(res, 502, "bad gateway: " .. err)
    end
    timeout = r.timeout - (t - start)
    if timeout <= 0 then return fail(res, 504, "gateway timeout") end
    s = pick(grp, tried, t)
  end
end

local addr = listen_override or cfg.listen or "127.0.0.1:8080"
local ln, err = http.serve(addr, handle, {
  tls = cfg.tls, reuseport = cfg.reuseport,
  max_body = cfg.max_body or 1024 * 1024 * 1024,
  idle_timeout = cfg.idle_timeout, header_timeout = cfg.header_timeout,
})
if not ln then die(addr .. ": " .. tostring(err)) end
print("listening on " .. ln:addr())
io.stdout:flush()
