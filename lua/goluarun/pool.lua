-- pool.lua: connection pools, net.pool and net.defaultpool (per VM).
--
--   local net = require "net"
--   local p = net.pool({ max_idle = 16, idle_timeout = 60, max_conns = 100 })
--   local c = assert(p:dial("127.0.0.1:8080", { timeout = 2 }))
--   ... use c ...
--   p:put(c)          -- back to the pool (closed instead when it cannot be)
--
-- net.pool([opts]) -> pool            (this module's new)
--   opts.max_idle      idle conns kept per key, most recently used first (16)
--   opts.idle_timeout  seconds an idle conn is kept (60)
--   opts.max_conns     conns handed out at once per key (default unlimited);
--                      past it dial waits for a put, within its timeout
-- pool:dial(addr [, opts]) -> conn | nil, err   opts as net.dial's (a timeout
--   or {timeout =, tls = T or true}); the key is the address and, with TLS,
--   the servername, CA, client certificate and ALPN list
-- pool:put(conn) -> true | nil, why   (why: "closed", "eof", "unread bytes",
--   "in use", "pool closed", ...; the conn is then closed). A conn put back
--   loses its deadlines and timeout (the next user starts clean). Every conn from
--   pool:dial goes back through put, failed or closed ones too: that is
--   what frees its max_conns slot.
-- pool._take(addr [, deadline]) -> conn | nil, pool._put(conn) -> bool
--   (internal, for goluarun.http's client: dial's and put's common cases
--   as C closures, no Lua; _take sets the conn's deadline; nil/false:
--   use dial/put)
-- pool:stats() -> { idle =, active =, dials =, reuses = }
-- pool:close()      closes the idle conns; later puts close theirs
-- net.defaultpool   this module's default(): the pool the clients use
-- totals()          stats summed over every live pool of this VM
--
-- Mechanism (bindings/lpool.c): idle conns sit in a C idle set, each one
-- watched by its pollDesc, so the peer's close (or any byte, or the idle
-- timeout) closes it and takes it out of the count from the scheduler loop
-- as it happens: no goroutine, no timer of this module, nothing keeps the
-- process alive. The per-key lists here may still hold such a dropped conn
-- (a closed userdata) until the key is next used; set:take tells.
local go = require "go"
local net = require "net"

local type, pairs, ipairs, error, setmetatable, tostring, math_type =
  type, pairs, ipairs, error, setmetatable, tostring, math.type
local concat, remove = table.concat, table.remove
local now = go.now
-- Goroutines of one VM share a pool, and preemption may stop one between
-- any two Lua instructions: every multi-step update of the pool's state
-- runs through atomic(fn, ...), which preemption skips (bindings/lpool.c).
local atomic = net._nopreempt

local M = {}

local Pool = {}
Pool.__index = Pool
Pool.__name = "net.pool"

local function check_opts(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("net.pool: opts must be a table", 3) end
  local max_idle = opts.max_idle or 16
  local idle_timeout = opts.idle_timeout or 60
  local max_conns = opts.max_conns
  if math_type(max_idle) ~= "integer" or max_idle < 0 then
    error("net.pool: opts.max_idle must be a non-negative integer", 3)
  end
  if type(idle_timeout) ~= "number" or not (idle_timeout > 0) then
    error("net.pool: opts.idle_timeout must be a positive number", 3)
  end
  if max_conns ~= nil and (math_type(max_conns) ~= "integer" or max_conns < 1) then
    error("net.pool: opts.max_conns must be a positive integer", 3)
  end
  return max_idle, idle_timeout, max_conns
end

-- every live pool of this VM (weak keys), for M.totals
local live = setmetatable({}, { __mode = "k" })

--- net.pool([opts]) -> pool
function M.new(opts)
  local max_idle, idle_timeout, max_conns = check_opts(opts)
  -- key -> list of conns, oldest first: every conn in the set is in its
  -- key's list until taken (the set's __gc finds them there)
  local lists, keyof = {}, {}
  -- (the set keeps the counts active, reuses and idle: set:counts())
  local set = net._idleset(max_idle, idle_timeout, max_conns == nil, lists)
  local take, put = set:bind(lists, keyof) -- (pool._take, pool._put: lpool.c)
  local pool = setmetatable({
    max_idle = max_idle, idle_timeout = idle_timeout, max_conns = max_conns,
    set = set, lists = lists, _take = take, _put = put,
    keyof = keyof,    -- conn handed out -> its key
    nactive = {},     -- key -> conns handed out (and dials in progress)
    waiters = {},     -- key -> FIFO of channels waiting for a slot
    dials = 0, closed = false,
  }, Pool)
  live[pool] = true
  return pool
end

local default
--- net.defaultpool
function M.default()
  if not default then default = M.new() end
  return default
end

-- the key: the address and, with TLS, what decides whom we talk to
local function tls_key(t)
  if t == true then return "tls" end
  if type(t) ~= "table" then return "tls?" .. tostring(t) end
  local alpn = t.alpn
  if type(alpn) == "table" then alpn = concat(alpn, ",") end
  return concat({ "tls", tostring(t.servername or ""), tostring(t.ca or ""),
    tostring(t.cert or ""), tostring(t.key or ""), tostring(alpn or ""),
    tostring(t.verify == nil and "" or t.verify) }, "\0")
end

local function key_of(addr, opts)
  if type(opts) == "table" and opts.tls then
    return addr .. "\0" .. tls_key(opts.tls)
  end
  return addr
end

local function timeout_of(opts)
  if type(opts) == "number" then return opts end
  if type(opts) == "table" then return opts.timeout end
  return nil
end

-- the most recently used idle conn of key that is still alive, or nil
local function take_idle(self, key)
  local list = self.lists[key]
  if not list then return nil end
  local set = self.set
  for i = #list, 1, -1 do
    local c = list[i]
    list[i] = nil
    if set:take(c) then return c end
  end
  self.lists[key] = nil
  return nil
end

local function hand_out(self, key, c, reused)
  self.keyof[c] = key
  self.set:moved(1, reused)
end

-- an idle conn of key handed out, or nil
local function take_out(self, key)
  local c = take_idle(self, key)
  if c then hand_out(self, key, c, 1) end
  return c
end

-- frees one slot of key: to the first waiter, else the count
local function release_slot(self, key)
  local q = self.waiters[key]
  if q and #q > 0 then
    remove(q, 1):send(true) -- a channel of capacity 1, empty: no wait
    if #q == 0 then self.waiters[key] = nil end
    return
  end
  local n = (self.nactive[key] or 1) - 1
  self.nactive[key] = n > 0 and n or nil
end

-- dial's first step: a max_conns slot ("wait" if none), then an idle conn
local function dial_begin(self, key)
  local max = self.max_conns
  if max then
    local n = self.nactive[key] or 0
    if n >= max then return "wait" end
    self.nactive[key] = n + 1
  end
  return take_out(self, key)
end

-- dial's last step, after net.dial
local function dial_end(self, key, c)
  if not c then
    if self.max_conns then release_slot(self, key) end
    return
  end
  self.dials = self.dials + 1
  hand_out(self, key, c, 0)
end

local function enqueue(self, key, ch)
  local q = self.waiters[key]
  if not q then
    q = {}
    self.waiters[key] = q
  end
  q[#q + 1] = ch
end

-- a waiter that timed out leaves the queue: true if the slot came meanwhile
local function dequeue(self, key, ch)
  local q = self.waiters[key]
  for j = 1, q and #q or 0 do
    if q[j] == ch then
      remove(q, j)
      if #q == 0 then self.waiters[key] = nil end
      return false
    end
  end
  return true -- release_slot took it out and sent the slot
end

-- waits for a max_conns slot of key: true, or nil, "timeout" / "closed"
local function wait_slot(self, key, timeout)
  local ch = go.chan(1)
  atomic(enqueue, self, key, ch)
  local got
  if timeout then
    local i, v = go.select({ { ch, "recv" } }, timeout > 0 and timeout or 0)
    if i then
      got = v
    elseif atomic(dequeue, self, key, ch) then
      got = ch:recv() -- the slot came as the time ran out: it is there
    else
      return nil, "timeout"
    end
  else
    got = ch:recv()
  end
  if not got then return nil, "closed" end -- pool:close()
  return true
end

-- opts with the time left of a dial that waited
local function with_timeout(opts, timeout)
  if type(opts) ~= "table" then return timeout end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.timeout = timeout
  return o
end

local function check_addr(addr)
  if type(addr) ~= "string" then error("pool:dial: address must be a string", 3) end
end

--- pool:dial(addr [, opts]) -> conn | nil, err
function Pool:dial(addr, opts)
  local key = addr -- (no TLS: the address; a number is a timeout)
  if opts ~= nil and type(opts) ~= "number" then
    check_addr(addr)
    key = key_of(addr, opts)
  end
  local list = not self.max_conns and self.lists[key] -- (string keys only)
  if list and not self.closed then -- the common case: one C call (set:takelast, lpool.c)
    local c = self.set:takelast(list, self.keyof, key)
    if c then return c end
  end
  check_addr(addr) -- (a hit above is a string key)
  if self.closed then return nil, "closed" end
  local c = atomic(dial_begin, self, key)
  if c == "wait" then -- past max_conns: a put hands its slot over
    local timeout, start = timeout_of(opts), now()
    local ok, err = wait_slot(self, key, timeout)
    if not ok then return nil, err end
    if timeout then
      timeout = timeout - (now() - start)
      if timeout <= 0 then
        atomic(release_slot, self, key)
        return nil, "timeout"
      end
      opts = with_timeout(opts, timeout)
    end
    c = atomic(take_out, self, key)
  end
  if c then return c end
  local err
  c, err = net.dial(addr, opts)
  atomic(dial_end, self, key, c)
  if not c then return nil, err end
  return c
end

-- the list of key with room for one more: dropped conns leave, then the
-- least recently used live ones are closed
local function make_room(self, list)
  local set, max = self.set, self.max_idle
  if #list < max then return end
  local j = 0
  for i = 1, #list do
    local c = list[i]
    if set:idle(c) then
      j = j + 1
      list[j] = c
    else
      set:take(c)
    end
  end
  for i = #list, j + 1, -1 do list[i] = nil end
  while #list >= max and #list > 0 do
    local c = remove(list, 1)
    set:take(c)
    c:close()
  end
end

local function put(self, c, key)
  self.keyof[c] = nil
  self.set:moved(-1, 0)
  if self.max_conns then release_slot(self, key) end
  if self.closed then
    c:close()
    return nil, "pool closed"
  end
  if self.max_idle == 0 then
    c:close()
    return nil, "pool full"
  end
  local ok, why = self.set:add(c, self.idle_timeout)
  if not ok then
    c:close()
    return nil, why
  end
  local list = self.lists[key]
  if not list then
    list = {}
    self.lists[key] = list
  end
  make_room(self, list)
  list[#list + 1] = c
  return true
end

--- pool:put(conn) -> true | nil, why
function Pool:put(c)
  -- the common case: one C call (self._put: set:putlast on c's list)
  if self._put(c) then return true end
  local key = self.keyof[c]
  if not key then error("pool:put: this connection did not come from this pool", 2) end
  return atomic(put, self, c, key)
end

local function stats(self)
  local idle, active, reuses = self.set:counts()
  return { idle = idle, active = active, dials = self.dials, reuses = reuses }
end

--- pool._take(addr [, deadline]) -> conn | nil, pool._put(conn) -> bool
--   (internal, for goluarun.http's client: dial's and put's common cases
--   as C closures, no Lua; _take sets the conn's deadline; nil/false:
--   use dial/put)
-- pool:stats() -> { idle =, active =, dials =, reuses = }
function Pool:stats() return atomic(stats, self) end

--- M.totals() -> { idle =, active =, dials =, reuses = } summed over every
--- live pool of this VM (what goluarun.pprof's /metrics shows per P)
function M.totals()
  local t = { idle = 0, active = 0, dials = 0, reuses = 0 }
  for pool in pairs(live) do
    local s = pool:stats()
    for k, v in pairs(s) do t[k] = t[k] + v end
  end
  return t
end

local function close(self)
  self.closed = true
  local set = self.set
  set:close()
  for key, list in pairs(self.lists) do
    for _, c in ipairs(list) do
      if set:take(c) then c:close() end
    end
    self.lists[key] = nil
  end
  for key, q in pairs(self.waiters) do
    for _, ch in ipairs(q) do ch:send(false) end
    self.waiters[key] = nil
  end
end

--- pool:close(): closes the idle conns; waiting dials get "closed"; later
--- puts close theirs
function Pool:close() atomic(close, self) end

return M
