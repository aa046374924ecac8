-- goluarun.socket: a LuaSocket 3 compatible `socket` API on goroutines,
-- built over `net` (every call that waits parks only its goroutine).
--
--   local socket = require("goluarun.socket").install()
--     -- package.loaded.socket and ["socket.core"] are now this table, so
--     -- LuaSocket's pure-Lua modules (socket.http, socket.smtp, socket.ftp,
--     -- socket.tp, socket.url, ltn12, mime) load over it unchanged.
--
--   socket.tcp() / tcp4() / tcp6()        -> master (tostring "tcp{master}: 0x...")
--   master:bind(host, port)  master:listen([backlog]) -> server
--   master:connect(host, port)            -> client
--   server:accept()                        -> client | nil, err
--   client:send(data [, i [, j]])          -> last index sent | nil, err, lastsent
--   client:receive([pattern | n [, prefix]]) "*l" "l" "*a" "a" n
--                                          -> data | nil, err, partial
--   any:settimeout(t [, "b" | "t"])  setoption(name, v)  getoption(name)
--   any:getsockname()  client:getpeername()  client:shutdown([how])
--   any:close()  dirty()  getfd()  getstats()  setstats(r, s, age)  getfamily()
--   socket.connect(host, port [, locaddr [, locport]])  connect4  connect6
--   socket.bind(host, port [, backlog])
--   socket.udp() / udp4() / udp6(): setsockname, setpeername, send,
--     sendto, receive, receivefrom, getsockname, getpeername, settimeout,
--     setoption, close   (tostring "udp{unconnected}" / "udp{connected}")
--   socket.select(recvt, sendt [, timeout]) -> readable, writable, err
--   socket.gettime()  socket.sleep(s)  socket.skip(n, ...)
--   socket.newtry(finalizer)  socket.try(...)  socket.protect(f)
--   socket.dns.toip(name)  tohostname(addr)  gethostname()  getaddrinfo(host)
--     getnameinfo(host)
--   socket.sink(mode, sock)  socket.source(mode, sock [, len])  sinkt
--     sourcet  choose  BLOCKSIZE  _VERSION  _SETSIZE  _SOCKETINVALID
--
-- Results follow LuaSocket 3.0 as Debian builds it for Lua 5.4, floats
-- included (send returns 6.0, connect 1.0). Differences: docs/API.md,
-- "LuaSocket compatibility".
local go = require "go"
local net = require "net"

local find, sub, gsub, concat = string.find, string.sub, string.gsub, table.concat
local mtype, floor = math.type, math.floor

local socket = {
  _VERSION = "LuaSocket 3.0.0",
  _SETSIZE = 1024,
  _SOCKETINVALID = -1,
  BLOCKSIZE = 2048,
}

-- a timeout of 0 means "try once": net fails an operation whose deadline
-- has passed before trying it, so 0 becomes this short wait
local TRY_ONCE = 1e-4

---------------------------------------------------------------------------
-- Argument errors, worded as LuaSocket's (method-call numbering)
---------------------------------------------------------------------------

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 0)
end

local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then return mt.__name end
  return v == nil and "no value" or type(v)
end

local function checkstring(v, n, fname)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  argerror(n, fname, "string expected, got " .. typename(v))
end

local function optnumber(v, n, fname, default)
  if v == nil then return default end
  local x = tonumber(v)
  if not x then argerror(n, fname, "number expected, got " .. typename(v)) end
  return x
end

-- C's (long) cast: truncation toward zero
local function trunc(x)
  if mtype(x) == "integer" then return x end
  return x >= 0 and floor(x) or -floor(-x)
end

---------------------------------------------------------------------------
-- Classes: one metatable per LuaSocket class name
---------------------------------------------------------------------------

local methods = {}
local classes = {}

local function defclass(name)
  local mt = { __index = methods, __name = name }
  mt.__tostring = function(self) return ("%s: %p"):format(name, self) end
  classes[mt] = name
  return mt
end

local MASTER, CLIENT, SERVER = defclass("tcp{master}"), defclass("tcp{client}"),
    defclass("tcp{server}")
local UNCONNECTED, CONNECTED = defclass("udp{unconnected}"), defclass("udp{connected}")

local groups = {
  ["tcp{any}"] = { [MASTER] = true, [CLIENT] = true, [SERVER] = true },
  ["udp{any}"] = { [UNCONNECTED] = true, [CONNECTED] = true },
  ["any"] = { [MASTER] = true, [CLIENT] = true, [SERVER] = true, [UNCONNECTED] = true,
    [CONNECTED] = true },
  ["tcp{master}"] = { [MASTER] = true },
  ["tcp{client}"] = { [CLIENT] = true },
  ["tcp{server}"] = { [SERVER] = true },
  ["tcp{client/server}"] = { [CLIENT] = true, [SERVER] = true },
  ["udp{unconnected}"] = { [UNCONNECTED] = true },
  ["udp{connected}"] = { [CONNECTED] = true },
}

-- check(self, fname, group): self must belong to the group
local function check(self, fname, group)
  local mt = getmetatable(self)
  if not groups[group][mt] then
    local want = group == "any" and "socket" or group
    error(("calling '%s' on bad self (%s expected)"):format(fname, want), 0)
  end
  return mt
end

local function isudp(self)
  local mt = getmetatable(self)
  return mt == UNCONNECTED or mt == CONNECTED
end

---------------------------------------------------------------------------
-- Errors: net's strings to LuaSocket's
---------------------------------------------------------------------------

local NOHOST = "host or service not provided, or not known"

-- lserr(err [, addr]): LuaSocket says "closed" for EOF, reset and broken
-- pipe; net appends ": addr" to dial and listen errors
local function lserr(err, addr)
  if err == nil then return nil end
  if find(err, "^timeout") then return "timeout" end
  if find(err, "^closed") or find(err, "^eof") or find(err, "^connection reset")
      or find(err, "^broken pipe") then
    return "closed"
  end
  if find(err, "^connection refused") then return "connection refused" end
  if find(err, "^address in use") then return "address already in use" end
  if find(err, "^no such host") then return NOHOST end
  if addr and sub(err, -#addr - 2) == ": " .. addr then return sub(err, 1, -#addr - 3) end
  return err
end

---------------------------------------------------------------------------
-- Addresses
---------------------------------------------------------------------------

local function hostport(host, port)
  if host == "*" then host = "0.0.0.0" end
  if find(host, ":", 1, true) and not find(host, "^%[") then host = "[" .. host .. "]" end
  return host .. ":" .. port
end

local SERVICES = { http = 80, https = 443, smtp = 25, ftp = 21, ["ftp-data"] = 20, pop3 = 110,
  imap = 143 }

-- port(v, n, fname): a number or numeric string (or a well-known service
-- name); nil when the service is unknown
local function portarg(v, n, fname)
  local s = checkstring(v, n, fname)
  local p = tonumber(s)
  if p then return trunc(p) end
  return SERVICES[s]
end

-- "ip:port" / "[ip6]:port" -> ip, port, family; the port is a string
-- for getsockname, an integer elsewhere (as LuaSocket's)
local function splitaddr(a, portstring)
  local ip, p = a:match("^%[(.*)%]:(%d+)$")
  local family = "inet6"
  if not ip then
    ip, p = a:match("^(.*):(%d+)$")
    family = "inet"
  end
  return ip, portstring and p or tonumber(p), family
end

local function isip(s)
  return find(s, "^%d+%.%d+%.%d+%.%d+$") ~= nil or find(s, ":", 1, true) ~= nil
end

---------------------------------------------------------------------------
-- Timeouts: LuaSocket's block ("b": each wait) and total ("t": the call)
---------------------------------------------------------------------------

local function settimeout(self, t, mode)
  check(self, "settimeout", "any")
  if t ~= nil then t = optnumber(t, 1, "settimeout") end
  if t and t < 0 then t = nil end
  mode = mode == nil and "b" or checkstring(mode, 2, "settimeout")
  local m = sub(mode, 1, 1)
  if m == "b" then self.block = t
  elseif m == "t" or m == "r" then self.total = t
  else argerror(2, "settimeout", "invalid timeout mode") end
  return 1.0
end
methods.settimeout = settimeout

-- op_deadline(self): the absolute end of a call started now, or nil
local function op_deadline(self)
  local t = self.total
  return t and go.now() + t or nil
end

-- wait_for(self, dl): seconds the next wait may take (nil: no limit)
local function wait_for(self, dl)
  local t = self.block
  if dl then
    local left = dl - go.now()
    if left < 0 then left = 0 end
    if not t or left < t then t = left end
  end
  if t == 0 then return TRY_ONCE end
  return t
end

-- arm(self, obj, t): the net object's per-operation timeout, set only on
-- change (a select watcher clears self.armed)
local function arm(self, obj, t)
  if self.armed ~= t then
    obj:settimeout(t)
    self.armed = t
  end
end

---------------------------------------------------------------------------
-- TCP: construction and state changes
---------------------------------------------------------------------------

local function newtcp(family)
  return setmetatable({ family = family or "inet", opts = {}, birth = go.now() }, MASTER)
end

function socket.tcp() return newtcp("inet") end
function socket.tcp4() return newtcp("inet") end
function socket.tcp6() return newtcp("inet6") end

local function apply_opts(self)
  local o, c = self.opts, self.conn
  if o["tcp-nodelay"] ~= nil then c:setnodelay(o["tcp-nodelay"] and true or false) end
  if o.keepalive then c:setkeepalive(o["tcp-keepidle"] or 7200) end
end

-- client(self, conn): the object (master or new) becomes a connected client
local function toclient(self, conn)
  self.conn, self.rb, self.rp = conn, "", 1
  self.received, self.sent = 0, 0
  self.armed = false
  setmetatable(self, CLIENT)
  apply_opts(self)
  return self
end

local function newclient(conn)
  local self = { family = "inet", opts = {}, birth = go.now() }
  if find(conn:localaddr() or "", "^%[") then self.family = "inet6" end
  return toclient(self, conn)
end

function methods:connect(host, port)
  local mt = check(self, "connect", "tcp{any}")
  host = checkstring(host, 1, "connect")
  local p = portarg(port, 2, "connect")
  if mt ~= MASTER then return nil, mt == CLIENT and "already connected" or "Invalid argument" end
  if not p then return nil, NOHOST end
  local addr = hostport(host, p)
  local laddr = self.localaddr
  if self.ln then -- bound: connect from the bound address
    laddr = self.ln:addr()
    self.ln:close()
    self.ln = nil
  end
  local conn, err = net.dial(addr, { timeout = wait_for(self, op_deadline(self)), localaddr = laddr })
  if not conn then return nil, lserr(err, addr) end
  toclient(self, conn)
  return 1.0
end

function methods:bind(host, port)
  check(self, "bind", "tcp{master}")
  host = checkstring(host, 1, "bind")
  local p = portarg(port, 2, "bind")
  if not p then return nil, NOHOST end
  if self.ln then return nil, "Invalid argument" end
  local addr = hostport(host, p)
  local ln, err = net.listen(addr, { reuseport = self.opts.reuseport and true or false })
  if not ln then return nil, lserr(err, addr) end
  self.ln = ln
  return 1.0
end

function methods:listen(backlog)
  check(self, "listen", "tcp{master}")
  optnumber(backlog, 1, "listen", 32)
  if not self.ln then return nil, "Bad file descriptor" end
  self.pending = {}
  setmetatable(self, SERVER)
  return 1.0
end

function methods:accept()
  check(self, "accept", "tcp{server}")
  local q = self.pending
  if #q > 0 then return newclient(table.remove(q, 1)) end
  local conn, err = self.ln:accept(wait_for(self, op_deadline(self)) or nil)
  if not conn then return nil, lserr(err) end
  return newclient(conn)
end

---------------------------------------------------------------------------
-- TCP: receive
---------------------------------------------------------------------------

-- fill(self, dl): one wait for the next chunk of bytes (LuaSocket's one
-- "block"), or nil, err
local function fill(self, dl)
  if self.rshut then return nil, "closed" end
  local conn = self.conn
  arm(self, conn, wait_for(self, dl))
  local d, err = conn:read()
  if not d then return nil, lserr(err) end
  self.received = self.received + #d
  return d
end

local function recv_line(self, prefix, dl)
  local parts = {}
  while true do
    local rb, rp = self.rb, self.rp
    local i = find(rb, "\n", rp, true)
    if i then
      parts[#parts + 1] = sub(rb, rp, i - 1)
      self.rp = i + 1
      local line = concat(parts)
      if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
      return prefix .. line, nil, nil
    end
    if rp <= #rb then parts[#parts + 1] = rp == 1 and rb or sub(rb, rp) end
    self.rb, self.rp = "", 1
    local d, err = fill(self, dl)
    if not d then return nil, err, prefix .. gsub(concat(parts), "\r", "") end
    self.rb = d
  end
end

local function recv_all(self, prefix, dl)
  local parts, total = { prefix }, 0
  local rb, rp = self.rb, self.rp
  if rp <= #rb then
    parts[2] = rp == 1 and rb or sub(rb, rp)
    total = #parts[2]
  end
  self.rb, self.rp = "", 1
  while true do
    local d, err = fill(self, dl)
    if not d then
      if err == "closed" and total > 0 then return concat(parts), nil, nil end
      return nil, err, concat(parts)
    end
    parts[#parts + 1] = d
    total = total + #d
  end
end

local function recv_count(self, need, prefix, dl)
  local parts = { prefix }
  while true do
    local rb, rp = self.rb, self.rp
    local have = #rb - rp + 1
    if have >= need and (need > 0 or have > 0) then
      if need > 0 then parts[#parts + 1] = (rp == 1 and have == need) and rb or sub(rb, rp, rp + need - 1) end
      self.rp = rp + need
      return concat(parts), nil, nil
    end
    if have > 0 then
      parts[#parts + 1] = rp == 1 and rb or sub(rb, rp)
      need = need - have
    end
    self.rb, self.rp = "", 1
    local d, err = fill(self, dl)
    if not d then return nil, err, concat(parts) end
    self.rb = d
  end
end

local function numeric(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return tonumber(v) end
end

function methods:receive(pattern, prefix)
  check(self, "receive", "tcp{client}")
  if prefix ~= nil then prefix = checkstring(prefix, 2, "receive") else prefix = "" end
  local n = numeric(pattern)
  if n then
    if n < 0 then argerror(1, "receive", "invalid receive pattern") end
    n = trunc(n)
    if #prefix > 0 and n <= #prefix then return prefix, nil, nil end
    return recv_count(self, n - #prefix, prefix, op_deadline(self))
  end
  if pattern == nil then pattern = "*l" end
  if type(pattern) ~= "string" then argerror(1, "receive", "string expected, got " .. typename(pattern)) end
  local p = sub(pattern, 1, 1) == "*" and sub(pattern, 2, 2) or sub(pattern, 1, 1)
  if p == "l" then return recv_line(self, prefix, op_deadline(self)) end
  if p == "a" then return recv_all(self, prefix, op_deadline(self)) end
  argerror(1, "receive", "invalid receive pattern")
end

---------------------------------------------------------------------------
-- TCP: send
---------------------------------------------------------------------------

-- sendraw(self, s): bytes sent and nil, or bytes sent and an error. A wait
-- that made progress starts a new block (LuaSocket restarts its block timer
-- at each wait)
local function sendraw(self, s)
  if self.wshut then return 0, "closed" end
  local dl, done, conn = op_deadline(self), 0, self.conn
  while true do
    arm(self, conn, wait_for(self, dl))
    local n, err, written = conn:write(done == 0 and s or sub(s, done + 1))
    if n then
      done = done + n
      self.sent = self.sent + n
      return done
    end
    written = written or 0
    done = done + written
    self.sent = self.sent + written
    err = lserr(err)
    if err ~= "timeout" or written == 0 or (dl and go.now() >= dl) then return done, err end
  end
end

function methods:send(data, i, j)
  check(self, "send", "tcp{client}")
  data = checkstring(data, 1, "send")
  local size = #data
  i = trunc(optnumber(i, 2, "send", 1))
  j = trunc(optnumber(j, 3, "send", -1))
  if i < 0 then i = size + i + 1 end
  if j < 0 then j = size + j + 1 end
  if i < 1 then i = 1 end
  if j > size then j = size end
  local sent, err = 0, nil
  if i <= j then sent, err = sendraw(self, (i == 1 and j == size) and data or sub(data, i, j)) end
  if err then return nil, err, (sent + i - 1) + 0.0 end
  return (sent + i - 1) + 0.0, nil, nil
end

---------------------------------------------------------------------------
-- Every class: names, options, close, fds, statistics
---------------------------------------------------------------------------

local function netobj(self)
  return self.conn or self.ln or self.udp
end

function methods:getsockname()
  check(self, "getsockname", "any")
  local o = netobj(self)
  if not o or self.closed then return nil, "Bad file descriptor" end
  local a, err = (self.conn and o.localaddr or self.ln and o.addr or o.localaddr)(o)
  if not a then return nil, lserr(err) end
  return splitaddr(a, true)
end

function methods:getpeername()
  local mt = check(self, "getpeername", "any")
  if mt == CONNECTED then return splitaddr(self.peer) end
  if mt ~= CLIENT then
    return nil, mt == MASTER and "Bad file descriptor" or "Transport endpoint is not connected"
  end
  if self.closed then return nil, "Bad file descriptor" end
  local a, err = self.conn:remoteaddr()
  if not a then return nil, lserr(err) end
  return splitaddr(a)
end

function methods:getfamily()
  check(self, "getfamily", "any")
  return self.family
end

local TCP_OPTIONS = { keepalive = true, reuseaddr = true, reuseport = true, ["tcp-nodelay"] = true,
  ["tcp-keepidle"] = true, ["tcp-keepcnt"] = true, ["tcp-keepintvl"] = true, linger = true,
  ["ipv6-v6only"] = true, ["send-buffer-size"] = true, ["recv-buffer-size"] = true }
local UDP_OPTIONS = { dontroute = true, broadcast = true, reuseaddr = true, reuseport = true,
  ["ip-multicast-ttl"] = true, ["ip-multicast-loop"] = true, ["ip-multicast-if"] = true,
  ["ip-add-membership"] = true, ["ip-drop-membership"] = true, ["ipv6-v6only"] = true,
  ["ipv6-unicast-hops"] = true, ["ipv6-multicast-hops"] = true, ["ipv6-multicast-loop"] = true,
  ["ipv6-add-membership"] = true, ["ipv6-drop-membership"] = true }

-- setoption: tcp-nodelay and keepalive (tcp-keepidle its idle time) reach
-- the socket; the rest is kept for getoption and otherwise ignored (net
-- sets SO_REUSEADDR on listeners itself; close never lingers)
function methods:setoption(name, value)
  check(self, "setoption", "any")
  name = checkstring(name, 1, "setoption")
  local known = isudp(self) and UDP_OPTIONS or TCP_OPTIONS
  if not known[name] then argerror(1, "setoption", "unsupported option `" .. name .. "'") end
  if name == "linger" and type(value) ~= "table" then argerror(2, "setoption", "table expected, got " .. typename(value)) end
  if name == "tcp-keepidle" then value = optnumber(value, 2, "setoption") end
  self.opts[name] = value
  if self.conn and not self.closed then
    if name == "tcp-nodelay" then self.conn:setnodelay(value and true or false)
    elseif name == "keepalive" then self.conn:setkeepalive(value and (self.opts["tcp-keepidle"] or 7200) or false)
    elseif name == "tcp-keepidle" and self.opts.keepalive then self.conn:setkeepalive(value) end
  end
  return 1.0
end

function methods:getoption(name)
  check(self, "getoption", "any")
  name = checkstring(name, 1, "getoption")
  local known = isudp(self) and UDP_OPTIONS or TCP_OPTIONS
  if not known[name] then argerror(1, "getoption", "unsupported option `" .. name .. "'") end
  local v = self.opts[name]
  if v == nil then
    if name == "tcp-nodelay" and self.conn then return true end -- net dials and accepts with Nagle off
    if name == "linger" then return { on = false, timeout = 0 } end
    return false
  end
  return v
end

function methods:shutdown(how)
  check(self, "shutdown", "tcp{client}")
  how = how == nil and "both" or checkstring(how, 1, "shutdown")
  if how ~= "both" and how ~= "send" and how ~= "receive" then
    argerror(1, "shutdown", "invalid option '" .. how .. "'")
  end
  if how ~= "receive" and not self.wshut then
    self.wshut = true
    self.conn:closewrite()
  end
  if how ~= "send" then self.rshut = true end
  return 1.0
end

function methods:close()
  check(self, "close", "any")
  local o = netobj(self)
  if o then o:close() end
  self.closed = true
  return 1.0
end

function methods:dirty()
  check(self, "dirty", "any")
  if self.rb then return self.rp <= #self.rb end
  return self.dgrams ~= nil and #self.dgrams > 0
end

function methods:getfd()
  check(self, "getfd", "any")
  local o = netobj(self)
  return (o and o:fd() or -1) + 0.0
end

function methods:setfd()
  error("goluarun.socket: setfd is not supported (net owns its descriptors)", 2)
end

function methods:getstats()
  check(self, "getstats", "any")
  return (self.received or 0) + 0.0, (self.sent or 0) + 0.0, go.now() - self.birth
end

function methods:setstats(r, s, age)
  check(self, "setstats", "any")
  self.received = optnumber(r, 1, "setstats", self.received or 0)
  self.sent = optnumber(s, 2, "setstats", self.sent or 0)
  if age ~= nil then self.birth = go.now() - optnumber(age, 3, "setstats") end
  return 1.0
end

---------------------------------------------------------------------------
-- UDP (over net.udp; bound lazily to 0.0.0.0:0, peers filtered here)
---------------------------------------------------------------------------

local function newudp(family)
  return setmetatable({ family = family or "inet", opts = {}, birth = go.now(), dgrams = {} },
    UNCONNECTED)
end

function socket.udp() return newudp("inet") end
function socket.udp4() return newudp("inet") end
function socket.udp6() return newudp("inet6") end

local function udp_bind(self, addr)
  if self.closed then return nil, "closed" end
  if self.udp then return self.udp end
  local u, err = net.udp(addr or (self.family == "inet6" and "[::]:0" or "0.0.0.0:0"))
  if not u then return nil, lserr(err, addr) end
  self.udp, self.armed = u, false
  return u
end

-- resolve(host): an IP literal for host, or nil, err
local function resolve(host)
  if host == "*" then return "0.0.0.0" end
  if isip(host) then return host end
  local list, err = net.lookup(host)
  if not list then return nil, lserr(err) end
  for _, a in ipairs(list) do
    if not find(a, ":", 1, true) then return a end
  end
  return list[1]
end

function methods:setsockname(host, port)
  check(self, "setsockname", "udp{unconnected}")
  host = checkstring(host, 1, "setsockname")
  local p = portarg(port, 2, "setsockname")
  if not p then return nil, NOHOST end
  if self.udp then return nil, "Invalid argument" end
  local ip, err = resolve(host)
  if not ip then return nil, err end
  local u
  u, err = udp_bind(self, hostport(ip, p))
  if not u then return nil, err end
  return 1.0
end

function methods:setpeername(host, port)
  check(self, "setpeername", "udp{any}")
  host = checkstring(host, 1, "setpeername")
  if host == "*" then
    self.peer = nil
    setmetatable(self, UNCONNECTED)
    return 1.0
  end
  local p = portarg(port, 2, "setpeername")
  if not p then return nil, NOHOST end
  local ip, err = resolve(host)
  if not ip then return nil, err end
  local u
  u, err = udp_bind(self)
  if not u then return nil, err end
  self.peer = hostport(ip, p)
  setmetatable(self, CONNECTED)
  return 1.0
end

local function udp_send(self, data, addr)
  local u, err = udp_bind(self)
  if not u then return nil, err end
  arm(self, u, wait_for(self, nil))
  local n
  n, err = u:sendto(data, addr)
  if not n then return nil, lserr(err, addr) end
  self.sent = (self.sent or 0) + n
  return n + 0.0
end

local udp_methods = {}

function udp_methods.send(self, data)
  check(self, "send", "udp{connected}")
  return udp_send(self, checkstring(data, 1, "send"), self.peer)
end

function udp_methods.sendto(self, data, host, port)
  check(self, "sendto", "udp{unconnected}")
  data = checkstring(data, 1, "sendto")
  host = checkstring(host, 2, "sendto")
  local p = portarg(port, 3, "sendto")
  if not p then return nil, NOHOST end
  local ip, err = resolve(host)
  if not ip then return nil, err end
  return udp_send(self, data, hostport(ip, p))
end

-- udp_recv(self, size): the next datagram (from the peer when connected)
local function udp_recv(self, size, fname)
  size = trunc(optnumber(size, 1, fname, 8192))
  if size < 0 then argerror(1, fname, "invalid receive size") end
  if size > 65536 then size = 65536 end
  local u, err = udp_bind(self)
  if not u then return nil, err end
  local dl = op_deadline(self)
  while true do
    local d, from
    if #self.dgrams > 0 then
      local dg = table.remove(self.dgrams, 1)
      d, from = dg[1], dg[2]
    else
      arm(self, u, wait_for(self, dl))
      d, from = u:recvfrom(65536)
      if not d then return nil, lserr(from) end
    end
    if not self.peer or from == self.peer then
      self.received = (self.received or 0) + #d
      return sub(d, 1, size), from
    end
  end
end

function udp_methods.receive(self, size)
  check(self, "receive", "udp{any}")
  local d, err = udp_recv(self, size, "receive")
  if not d then return nil, err end
  return d
end

function udp_methods.receivefrom(self, size)
  check(self, "receivefrom", "udp{unconnected}")
  local d, from = udp_recv(self, size, "receivefrom")
  if not d then return nil, from end
  local ip, p = splitaddr(from)
  return d, ip, p
end

-- one method table for every class: a method of the other protocol
-- raises as LuaSocket's argument checks do
local tcp_send, tcp_receive = methods.send, methods.receive
function methods:send(...)
  if isudp(self) then return udp_methods.send(self, ...) end
  return tcp_send(self, ...)
end
function methods:receive(...)
  if isudp(self) then return udp_methods.receive(self, ...) end
  return tcp_receive(self, ...)
end
methods.sendto = udp_methods.sendto
methods.receivefrom = udp_methods.receivefrom

---------------------------------------------------------------------------
-- socket.connect / bind (the helpers of LuaSocket's socket.lua)
---------------------------------------------------------------------------

function socket.connect(host, port, laddr, lport, family)
  host = checkstring(host, 1, "socket.connect")
  checkstring(port, 2, "socket.connect")
  local s = newtcp(family == "inet6" and "inet6" or "inet")
  if laddr ~= nil then
    local ip, err = resolve(checkstring(laddr, 3, "socket.connect"))
    if not ip then return nil, err end
    s.localaddr = hostport(ip, lport and portarg(lport, 4, "socket.connect") or 0)
  end
  local ok, err = s:connect(host, port)
  if not ok then return nil, err end
  return s
end

function socket.connect4(...) return socket.connect(...) end
function socket.connect6(host, port, laddr, lport) return socket.connect(host, port, laddr, lport, "inet6") end

function socket.bind(host, port, backlog)
  local s = socket.tcp()
  s:setoption("reuseaddr", true)
  local ok, err = s:bind(host, port)
  if not ok then return nil, err end
  ok, err = s:listen(backlog)
  if not ok then
    s:close()
    return nil, err
  end
  return s
end

---------------------------------------------------------------------------
-- select: one watcher goroutine per socket that is not ready yet; what a
-- watcher reads (bytes, a conn, a datagram) is kept by the socket for its
-- next receive/accept. A past read deadline ends the watchers.
---------------------------------------------------------------------------

local function ready_now(s)
  local mt = getmetatable(s)
  if mt == CLIENT then return s.rp <= #s.rb end
  if mt == SERVER then return #s.pending > 0 end
  return #s.dgrams > 0
end

local function watch(s, out)
  local mt, ok = getmetatable(s), false
  s.armed = false
  if mt == CLIENT then
    local conn = s.conn
    conn:settimeout(nil)
    local d, err = conn:read()
    if d then
      s.received = s.received + #d
      s.rb = (s.rp <= #s.rb and sub(s.rb, s.rp) or "") .. d
      s.rp = 1
      ok = true
    else
      ok = not find(err, "^timeout")
    end
  elseif mt == SERVER then
    local c, err = s.ln:accept(nil)
    if c then s.pending[#s.pending + 1] = c end
    ok = c ~= nil or not find(err, "^timeout")
  else
    s.udp:settimeout(nil)
    local d, from = s.udp:recvfrom(65536)
    if d then s.dgrams[#s.dgrams + 1] = { d, from } end
    ok = d ~= nil or not find(from, "^timeout")
  end
  out:send({ s, ok })
end

local function cancel(s, dl)
  local mt = getmetatable(s)
  if mt == CLIENT then s.conn:setreaddeadline(dl)
  elseif mt == SERVER then s.ln:setdeadline(dl)
  else s.udp:setdeadline(dl) end
end

local function selectable(s, fname)
  local mt = getmetatable(s)
  if not classes[mt] then
    if type(s) == "table" and s.getfd then return false end -- not ours: never ready
    error(("bad argument to '%s' (socket expected, got %s)"):format(fname, typename(s)), 0)
  end
  if s.closed then return false end
  if mt == MASTER then return false end
  if isudp(s) then return udp_bind(s) ~= nil end
  return true
end

local function addresult(t, s)
  if t[s] then return end
  t[#t + 1] = s
  t[s] = #t + 0.0
end

-- wait_watchers: timeout 0 polls (the watchers run once, then end)
local function wait_watchers(watched, timeout, readable)
  local out = go.chan(#watched)
  for _, s in ipairs(watched) do go(watch, s, out) end
  local got = 0
  local function take(r)
    got = got + 1
    if r[2] then addresult(readable, r[1]) end
  end
  if timeout == 0 then
    go.yield() -- every watcher runs once: reads what is there, or parks
    while got < #watched do
      local i, r = go.select({ { out, "recv" } }, 0)
      if not i then break end
      take(r)
    end
  elseif timeout then
    local i, r = go.select({ { out, "recv" } }, timeout)
    if i then take(r) end
  else
    take(out:recv())
  end
  if got < #watched then
    for _, s in ipairs(watched) do cancel(s, 1) end
    while got < #watched do take(out:recv()) end
  end
  for _, s in ipairs(watched) do cancel(s, nil) end
end

function socket.select(recvt, sendt, timeout)
  if recvt ~= nil and type(recvt) ~= "table" then argerror(1, "select", "table expected, got " .. typename(recvt)) end
  if sendt ~= nil and type(sendt) ~= "table" then argerror(2, "select", "table expected, got " .. typename(sendt)) end
  timeout = optnumber(timeout, 3, "select", -1)
  if timeout < 0 then timeout = nil end
  local readable, writable, watched, seen = {}, {}, {}, {}
  for _, s in ipairs(sendt or {}) do
    if selectable(s, "select") then addresult(writable, s) end
  end
  for _, s in ipairs(recvt or {}) do
    if selectable(s, "select") and not seen[s] then
      seen[s] = true
      if ready_now(s) then addresult(readable, s) else watched[#watched + 1] = s end
    end
  end
  if #watched > 0 then
    wait_watchers(watched, (#readable > 0 or #writable > 0) and 0 or timeout, readable)
  elseif #readable == 0 and #writable == 0 then
    go.sleep(timeout or math.huge)
  end
  if #readable == 0 and #writable == 0 then return readable, writable, "timeout" end
  return readable, writable, nil
end

---------------------------------------------------------------------------
-- Time
---------------------------------------------------------------------------

socket.gettime = go.time

function socket.sleep(s)
  s = optnumber(s, 1, "socket.sleep")
  if s ~= s then argerror(1, "sleep", "number expected, got nan") end
  if s > 0 then go.sleep(s) end
end

---------------------------------------------------------------------------
-- Exceptions: try raises a wrapped error that protect turns into nil, err
---------------------------------------------------------------------------

local wrapped = { __tostring = function(e) return tostring(e[1]) end }

function socket.skip(d, ...)
  return select(trunc(optnumber(d, 1, "skip")) + 1, ...)
end

function socket.newtry(finalizer)
  if finalizer ~= nil and type(finalizer) ~= "function" then
    argerror(1, "newtry", "function expected, got " .. typename(finalizer))
  end
  return function(...)
    if (...) then return ... end
    if finalizer then finalizer() end
    error(setmetatable({ (select(2, ...)) }, wrapped), 0)
  end
end

socket.try = socket.newtry()

local function protected(ok, ...)
  if ok then return ... end
  local e = ...
  if getmetatable(e) == wrapped then return nil, e[1] end
  error(e, 0)
end

function socket.protect(f)
  if type(f) ~= "function" then argerror(1, "protect", "function expected, got " .. typename(f)) end
  return function(...) return protected(pcall(f, ...)) end
end

---------------------------------------------------------------------------
-- DNS (names resolve on net's worker pool; reverse lookups read /etc/hosts)
---------------------------------------------------------------------------

local dns = {}
socket.dns = dns

local function hosts_names(ip)
  local f = io.open("/etc/hosts", "r")
  if not f then return nil end
  local names
  for line in f:lines() do
    line = gsub(line, "#.*", "")
    local addr, rest = line:match("^%s*(%S+)%s+(.+)$")
    if addr == ip then
      names = {}
      for n in rest:gmatch("%S+") do names[#names + 1] = n end
      break
    end
  end
  f:close()
  return names
end

local function lookup(name)
  if isip(name) then return { name } end
  local list = net.lookup(name)
  if not list or #list == 0 then return nil end
  return list
end

local function resolved(name, ips, aliases)
  return { name = name, alias = aliases or {}, ip = ips }
end

function dns.toip(name)
  name = checkstring(name, 1, "toip")
  local list = lookup(name)
  if not list then return nil, "host not found" end
  local pick = list[1]
  for _, a in ipairs(list) do
    if not find(a, ":", 1, true) then pick = a break end
  end
  return pick, resolved(name, list)
end

function dns.tohostname(addr)
  addr = checkstring(addr, 1, "tohostname")
  if isip(addr) then
    local names = hosts_names(addr)
    if not names or #names == 0 then return nil, "host not found" end
    return names[1], resolved(names[1], { addr }, { table.unpack(names, 2) })
  end
  local list = lookup(addr)
  if not list then return nil, "host not found" end
  return addr, resolved(addr, list)
end

function dns.gethostname()
  local f = io.open("/proc/sys/kernel/hostname", "r") or io.open("/etc/hostname", "r")
  if not f then return nil, "unknown host name" end
  local name = f:read("l")
  f:close()
  return name
end

function dns.getaddrinfo(host)
  host = checkstring(host, 1, "getaddrinfo")
  if host == "*" then host = "0.0.0.0" end
  local list = lookup(host)
  if not list then return nil, NOHOST end
  local out = {}
  for i, a in ipairs(list) do
    out[i] = { family = find(a, ":", 1, true) and "inet6" or "inet", addr = a }
  end
  return out
end

function dns.getnameinfo(host, port)
  if host == nil and port == nil then return nil, NOHOST end
  local names = {}
  if host ~= nil then
    local name = dns.tohostname(checkstring(host, 1, "getnameinfo"))
    if not name then return nil, NOHOST end
    names[1] = name
  end
  local service
  if port ~= nil then
    local p = tonumber(port)
    for k, v in pairs(SERVICES) do if v == p then service = k end end
    service = service or tostring(port)
  end
  return names, service
end

---------------------------------------------------------------------------
-- LTN12 sources and sinks over sockets (what LuaSocket's socket.lua adds)
---------------------------------------------------------------------------

function socket.choose(choices)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then name, opt1, opt2 = "default", name, opt1 end
    local f = choices[name or "nil"]
    if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
    return f(opt1, opt2)
  end
end

-- a callable that also answers getfd/dirty for socket.select
local function sockcall(sock, fn)
  return setmetatable({
    getfd = function() return sock:getfd() end,
    dirty = function() return sock:dirty() end,
  }, { __call = fn })
end

local sinkt, sourcet = {}, {}
socket.sinkt, socket.sourcet = sinkt, sourcet

sinkt["close-when-done"] = function(sock)
  return sockcall(sock, function(_, chunk)
    if chunk then return sock:send(chunk) end
    sock:close()
    return 1
  end)
end

sinkt["keep-open"] = function(sock)
  return sockcall(sock, function(_, chunk)
    if chunk then return sock:send(chunk) end
    return 1
  end)
end

sinkt.default = sinkt["keep-open"]
socket.sink = socket.choose(sinkt)

sourcet["by-length"] = function(sock, length)
  return sockcall(sock, function()
    if length <= 0 then return nil end
    local chunk, err = sock:receive(math.min(socket.BLOCKSIZE, length))
    if err then return nil, err end
    length = length - #chunk
    return chunk
  end)
end

sourcet["until-closed"] = function(sock)
  local done = false
  return sockcall(sock, function()
    if done then return nil end
    local chunk, err, partial = sock:receive(socket.BLOCKSIZE)
    if not err then return chunk end
    if err ~= "closed" then return nil, err end
    sock:close()
    done = true
    return partial
  end)
end

sourcet.default = sourcet["until-closed"]
socket.source = socket.choose(sourcet)

---------------------------------------------------------------------------
-- install
---------------------------------------------------------------------------

--- Makes this table `socket` and `socket.core` in this VM's
--- package.loaded (each VM installs its own); returns it.
function socket.install()
  package.loaded["socket.core"] = socket
  package.loaded.socket = socket
  return socket
end

return socket
