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
--   * X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host;
--     hop-by-hop fields (and those a Connection field names) are not
--     forwarded either way; the others go on as received, names' case kept,
--     copied from the bytes in one C call (httpparse.relay; the upstream's
--     Date and Server are replaced by the gateway's, and no Content-Type is
--     added that the upstream did not send)
--   * bodies stream both ways: a request body is read as it arrives
--     (req:read) and sent on chunked; an answer bigger than
--     `buffer_body` bytes (or without a length) goes out piece by piece
--   * `tls = {cert =, key =}`: HTTPS termination (plain HTTP upstreams,
--     or `tls = T or true` on a group for HTTPS upstreams)
-- It serves from the P it runs on (run it with -p 1; start one process per
-- core with `reuseport = true` to use more).
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local relay_fields = require("goluarun.httpparse").relay

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

-- groups: name -> { servers = { {addr, base, down_until} }, next, tls }
local groups = {}
for name, g in pairs(cfg.upstreams or {}) do
  local list = g.servers or g
  local grp = { servers = {}, next = 1, tls = g.tls, name = name }
  local scheme = g.tls and "https://" or "http://"
  for i, addr in ipairs(list) do
    if type(addr) ~= "string" or not find(addr, ":%d+$") then
      die("upstream " .. name .. ": server " .. i .. " must be \"host:port\"")
    end
    grp.servers[i] = { addr = addr, base = scheme .. addr, down_until = 0, urls = {}, nurls = 0 }
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

-- Hop-by-hop fields (and those a Connection field names) are never sent
-- on: httpparse.relay leaves them out as it copies a head's field lines,
-- names as received; these are left out too, the gateway's own:
-- (name sets as strings: httpparse reads them without a table walk)
local REQUEST_DROP = "x-forwarded-for,x-forwarded-proto,x-forwarded-host"
local RELAY_EXCEPT = "date,server" -- (as nginx does)
-- the upstream's answer is relayed from its bytes (res:relay): its fields
-- as values only where the client reads them (framing)
local NO_VALUES = {}

-- per client conn: its address's X-Forwarded lines, and the table handed
-- to http.request, filled again for each request (requests on one conn come one at a
-- time, and http.request keeps no reference to it: a fresh table's nine
-- keys would be nine insertions per request)
local conn_state = setmetatable({}, { __mode = "k" })
local TLS_ON = cfg.tls ~= nil
local PROTO_LINE = TLS_ON and "\r\nX-Forwarded-Proto: https\r\n" or "\r\nX-Forwarded-Proto: http\r\n"
-- (a conn's first request: handle reads conn_state itself)
local function state_of(conn)
  local ra = conn:remoteaddr()
  local ip = ra and (ra:match("^%[(.*)%]:%d+$") or ra:match("^(.*):%d+$") or ra) or "unknown"
  -- ip: the end of an X-Forwarded-For that has one already, fwd: the
  -- lines of a request that has none (built once per conn)
  local cs = { ip = ip .. PROTO_LINE, fwd = "X-Forwarded-For: " .. ip .. PROTO_LINE,
    ureq = { method = false, url = false, fields = false, body = false, timeout = false,
      pool = pool, stream = true, tls = false, only_headers = NO_VALUES,
      relay = RELAY_EXCEPT } }
  conn_state[conn] = cs
  return cs
end

local function fail(res, code, msg)
  res:status(code):send(msg .. "\n")
end

-- "X-Forwarded-Host: H\r\n" of the Host values seen last (bounded: they
-- come from clients)
local HOST_CACHE_MAX = 256
local host_lines, nhosts = {}, 0
local function host_line(host)
  local l = "X-Forwarded-Host: " .. host .. "\r\n"
  if nhosts >= HOST_CACHE_MAX then host_lines, nhosts = {}, 0 end
  nhosts = nhosts + 1
  host_lines[host] = l
  return l
end

-- a server's URL for a target (bounded per server: targets come from
-- clients)
local URL_CACHE_MAX = 1024
local function url_of(s, target)
  local url = s.base .. target
  if s.nurls >= URL_CACHE_MAX then s.urls, s.nurls = {}, 0 end
  s.nurls = s.nurls + 1
  s.urls[target] = url
  return url
end

-- the request body to send on: nil, a string (small, so it can be sent to
-- a second server), or a function streaming it
local function body_of(req)
  local h = req.headers
  local cl = h["content-length"]
  if cl then
    local n = tonumber(cl)
    if n == 0 then return "" end
    if n and n <= BUFFER_BODY then return req:body() end
  elseif not h["transfer-encoding"] then
    return nil
  end
  return function()
    local d, err = req:read()
    if err then error("gateway: request body: " .. err, 0) end
    return d
  end
end

-- sends the upstream's answer on (its fields in one step: the lines its
-- read made, ureq.relay)
local function relay(res, up, req)
  local code = up.status
  if req.method == "HEAD" or code == 204 or code == 304 then
    up:close()
    return res:forward(up, "")
  end
  local cl = tonumber(up.headers["content-length"] or "") -- (a key present: no __index)
  if cl and cl <= BUFFER_BODY then
    local ok, err = res:forward(up) -- (a body that came whole with the head: no read)
    if ok ~= false then return ok, err end
    up:settimeout(BODY_TIMEOUT) -- the body: per read, not the whole
    local body
    body, err = up:readall() -- (one piece)
    if not body then return fail(res, 502, "bad gateway: " .. err) end
    return res:forward(up, body)
  end
  up:settimeout(BODY_TIMEOUT)
  res:status(code):relay(up)
  while true do
    local d, err = up:read()
    if not d then
      if err then error("gateway: upstream body: " .. err, 0) end
      break
    end
    if not res:write(d) then
      up:close()
      return
    end
  end
  return res:finish()
end

local NONE_TRIED = setmetatable({}, { __newindex = function() error("NONE_TRIED is read-only") end })

local function handle(req, res)
  local path = req.path
  local r = route_cache[path]
  if r == nil then r = route_miss(path) end
  if not r then return fail(res, 404, "no route") end
  local start = now()
  local target = req.target
  if r.strip then
    target = sub(target, r.n + 1)
    if sub(target, 1, 1) ~= "/" then target = "/" .. target end
  end
  local rh, conn = req.headers, req.conn
  local cs = conn_state[conn] or state_of(conn)
  local xff, host = rh["x-forwarded-for"], rh.host
  local hostl = host and (host_lines[host] or host_line(host)) or ""
  local head, hpos = req:rawhead()
  local fields -- (the X-Forwarded lines appended by relay: one string made)
  if xff then
    fields = relay_fields(head, hpos, REQUEST_DROP, "X-Forwarded-For: ", xff, ", ", cs.ip, hostl)
  else
    fields = relay_fields(head, hpos, REQUEST_DROP, cs.fwd, hostl)
  end
  if not fields then return fail(res, 431, "too many header fields to relay") end
  local body -- (none: no call)
  if rh["content-length"] or rh["transfer-encoding"] then body = body_of(req) end
  local grp, tried, t = r.group, NONE_TRIED, start
  -- the first server: round-robin's next when it is not marked down
  local s = grp.servers[grp.next]
  if s.down_until <= t then grp.next = grp.next % grp.n + 1 else s = pick(grp, tried, t) end
  while true do
    if not s then return fail(res, 502, "bad gateway: no upstream of " .. grp.name .. " answers") end
    if tried == NONE_TRIED then -- the first server: no table
      tried = s
    else -- a retry (rare)
      if tried.addr then tried = { [tried] = true } end
      tried[s] = true
    end
    local left = r.timeout - (t - start)
    if left <= 0 then return fail(res, 504, "gateway timeout") end
    local ureq = cs.ureq
    ureq.method, ureq.url, ureq.fields, ureq.body = req.method,
      s.urls[target] or url_of(s, target), fields, body
    ureq.timeout, ureq.tls = left, grp.tls
    local up, err = http.request(ureq)
    if up then
      s.down_until = 0
      return relay(res, up, req) -- (each read of the body: BODY_TIMEOUT)
    end
    t = now()
    if find(err, "^connection refused") then
      s.down_until = t + FAIL_TIMEOUT
    elseif err == "timeout" then
      return fail(res, 504, "gateway timeout")
    else
      return fail(res, 502, "bad gateway: " .. err)
    end
    s = pick(grp, tried, t)
  end
end

local quiet = function(err)
  if not find(tostring(err), "^gateway: ") then
    io.stderr:write("gateway: ", tostring(err), "\n")
  end
end

local addr = listen_override or cfg.listen or "127.0.0.1:8080"
local ln, err = http.serve(addr, handle, {
  tls = cfg.tls, reuseport = cfg.reuseport, on_error = quiet,
  max_body = cfg.max_body or 1024 * 1024 * 1024,
  idle_timeout = cfg.idle_timeout, header_timeout = cfg.header_timeout,
})
if not ln then die(addr .. ": " .. tostring(err)) end
print("listening on " .. ln:addr())
io.stdout:flush()
