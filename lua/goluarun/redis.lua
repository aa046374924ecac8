-- goluarun.redis: a Redis client (RESP2) on goroutines, over the RESP codec.
--
--   local redis = require "goluarun.redis"
--   local r, err = redis.connect(addr [, opts])
--       opts = {password =, username =, db =, timeout = s, tls = T or true,
--               pool = p}                       --> client | nil, err
--   r:call(cmd, ...)      --> reply | nil, err
--   r:CMD(...)            any command by name: r:get("k"), r:SET("k", 1)
--   r:pipeline(fn)        fn(p) queues p:call(...) / p:CMD(...); one write
--                         --> {reply, ..., n = count} | nil, err
--   r:subscribe(ch, ...), r:psubscribe(pat, ...)   --> true | nil, err
--   r:unsubscribe([ch, ...]), r:punsubscribe([pat, ...]) --> true | nil, err
--   r:next([timeout])     --> kind, channel, payload [, pattern] | nil, err
--   r:release()           the conn back to the pool (or closed); r:close()
--   redis.null            the nil reply ("$-1" and "*-1")
--   redis.iserror(v)      true for an error reply inside a pipeline's list
--                         or an array (a table {err = "ERR ..."})
--
-- Replies: bulk and simple strings -> Lua strings, integers -> integers,
-- arrays -> sequences, nil bulk / nil array -> redis.null. An error reply
-- from r:call is nil, "ERR ..." (its text, the code first); in pipelines and
-- nested inside arrays (EXEC's) it stays in place as {err = "ERR ..."}.
-- Conditions of the world (refused, timeout, eof, a malformed reply) are
-- nil, err as well: after any of them mid-command the client is closed
-- (its replies would be out of step) and later calls give nil, "closed".
--
-- Arguments go out as bulk strings (resp.arg's rule): strings as they are,
-- integers in decimal, floats as the shortest exact text ("0.1", "inf");
-- booleans, nil and tables raise (a misuse, never a protocol error).
--
-- Pooling: connect takes a conn from opts.pool or net.defaultpool (when the
-- runtime has net.pool; without it connect dials and release closes). A
-- conn remembers the password, user and db it was set up with, so a conn
-- from the pool is given AUTH/SELECT only when they differ. release() pools
-- the conn only in a known state: every reply read, not subscribed, no
-- MULTI or WATCH open, no command that changes the session (CLIENT, HELLO,
-- RESET, MONITOR, READONLY, ...); otherwise it closes it.
--
-- Timeouts: opts.timeout (seconds, default none) bounds the dial and each
-- call or pipeline as a whole (a BLPOP longer than it times out: give the
-- client a longer timeout). r:next(timeout) waits for a message that long
-- (without one, as long as it takes); its "timeout" leaves the client
-- usable.
--
-- A client is used by one goroutine at a time (a second one raises);
-- run one client per goroutine.
local go = require "go"
local net = require "net"
local resp = require "goluarun.resp"

local redis = {}

local null, null_array = resp.null, resp.null_array
local arg_of = resp.arg
local upper, byte, tointeger, unpack = string.upper, string.byte, math.tointeger, table.unpack
local type, select, error, pcall = type, select, error, pcall
local now = go.now

redis.null = null

function redis.iserror(v)
  return type(v) == "table" and v.err ~= nil and not resp.isnull(v)
end

---------------------------------------------------------------------------
-- Conns: the only place that knows whether net.pool exists
---------------------------------------------------------------------------

local function pool_for(opts)
  if opts.pool ~= nil then return opts.pool end
  return net.defaultpool -- nil until the runtime has net.pool
end

local function dial(pool, addr, dopts)
  if pool then return pool:dial(addr, dopts) end
  return net.dial(addr, dopts)
end

local function put_back(pool, conn)
  if pool then return pool:put(conn) end
  conn:close()
  return true
end

-- a conn that must not be reused: closed, and given back to its pool all
-- the same (a pool counts every conn it handed out until its put: that is
-- what frees a max_conns slot)
local function discard(pool, conn)
  conn:close()
  if pool then pool:put(conn) end
end

-- what each live conn was set up with (password, username, db): weak, so a
-- closed and collected conn leaves no entry
local setup_of = setmetatable({}, { __mode = "k" })

---------------------------------------------------------------------------
-- Encoding commands
---------------------------------------------------------------------------

-- The wire text comes from resp's C writer, which takes a string name and
-- string or integer arguments; anything else (a float, a misuse) goes
-- through words(), which converts floats to resp.arg's text and raises on
-- misuse at the caller of r:CMD / p:CMD: `level` is that caller's level
-- as seen from words().
local writer = resp.writer
local ccommand, wbuf, append, take = writer.command, writer.wbuf, writer.append, writer.take

local function words(level, cmd, ...)
  if type(cmd) ~= "string" then
    error("redis: command name must be a string, got " .. type(cmd), level)
  end
  local n = select("#", ...)
  local w = { ... }
  for i = 1, n do
    local a = w[i]
    if type(a) == "number" then
      w[i] = arg_of(a)
    elseif type(a) ~= "string" then
      error("redis: argument " .. i .. " of " .. cmd .. " is a " .. type(a)
        .. " (strings and numbers only)", level)
    end
  end
  return cmd, unpack(w, 1, n)
end

-- one command's wire text (called by the function r:CMD tail-calls)
local function encode(cmd, ...)
  return ccommand(cmd, ...) or ccommand(words(4, cmd, ...))
end

---------------------------------------------------------------------------
-- Replies
---------------------------------------------------------------------------

-- nil arrays nested in an array become redis.null too
local function fix_nested(t)
  for i = 1, #t do
    local e = t[i]
    if type(e) == "table" then
      if e == null_array then t[i] = null
      elseif e.err == nil and e ~= null then fix_nested(e) end
    end
  end
  return t
end

-- a decoded top-level reply as a call returns it: value | nil, "ERR ..."
local function reply_of(v)
  if type(v) ~= "table" then return v end
  if v == null or v == null_array then return null end
  local e = v.err
  if e ~= nil then return nil, e end
  return fix_nested(v)
end

-- as reply_of, but an error reply stays in place (pipelines)
local function element_of(v)
  if type(v) ~= "table" then return v end
  if v == null or v == null_array then return null end
  if v.err ~= nil then return v end
  return fix_nested(v)
end

---------------------------------------------------------------------------
-- The client
---------------------------------------------------------------------------

local Client = {}
local methods = {}

-- commands after which the conn's session is not the one connect set up
local SESSION = {
  CLIENT = true, HELLO = true, RESET = true, MONITOR = true, READONLY = true,
  READWRITE = true, SYNC = true, PSYNC = true, QUIT = true, SUBSCRIBE = true,
  PSUBSCRIBE = true, SSUBSCRIBE = true, UNSUBSCRIBE = true, PUNSUBSCRIBE = true,
  SUNSUBSCRIBE = true,
}

-- fields (leading "_", which no command name has, so r:CMD never meets one):
--   _conn the conn (nil once closed or released), _rd its resp.reader,
--   _pool the pool or nil, _timeout, _setup {password, username, db},
--   _dirty the session changed, _multi / _watch a MULTI / WATCH is open,
--   _subs subscriptions held (server's count), _nch / _npat how many of
--   them are channels / patterns, _queue pub/sub messages read
--   while waiting for confirmations, _busy a goroutine is in a call,
--   _wb the pipelines' wire buffer (nil while a pipeline holds it)

local function fail(self, err)
  local conn = self._conn
  if conn then
    self._conn = nil
    discard(self._pool, conn)
  end
  return nil, err
end

-- Runs io(self, ...) as the client's one operation at a time: nil,
-- "closed" once closed; a Lua error raised inside (a cancelled group's
-- "cancelled") closes the client, whose replies would be out of step, and
-- goes on up.
local function exclusive(self, io, ...)
  if self._busy then error("redis: client used by two goroutines at once", 3) end
  if not self._conn then return nil, "closed" end
  self._busy = true
  local t = self._timeout
  if t then self._conn:setdeadline(now() + t) end
  local ok, a, b = pcall(io, self, ...)
  self._busy = false
  if not ok then
    fail(self)
    error(a, 0)
  end
  return a, b
end

-- reads one reply; on a conn or protocol error the client is closed
local function read_reply(self)
  local v, err = self._rd:read()
  if v == nil then return fail(self, err) end
  return v
end

-- the state changes a successful command makes (SELECT, AUTH, MULTI, ...)
local function track(self, name, ...)
  local u = upper(name)
  if u == "SELECT" then
    self._setup.db = tointeger(tonumber((...))) or self._setup.db
  elseif u == "AUTH" then
    local a, b = ...
    if b ~= nil then self._setup.username, self._setup.password = a, b
    else self._setup.username, self._setup.password = nil, a end
  elseif u == "MULTI" then self._multi = true
  elseif u == "EXEC" or u == "DISCARD" then self._multi, self._watch = false, false
  elseif u == "WATCH" then self._watch = true
  elseif u == "UNWATCH" then self._watch = false
  elseif SESSION[u] then self._dirty = true
  end
end

-- the commands track() follows, and the pub/sub ones (which have methods)
local TRACKED = {
  SELECT = true, AUTH = true, MULTI = true, EXEC = true, DISCARD = true, WATCH = true,
  UNWATCH = true,
}
local PUBSUB = {
  SUBSCRIBE = "subscribe", PSUBSCRIBE = "psubscribe", UNSUBSCRIBE = "unsubscribe",
  PUNSUBSCRIBE = "punsubscribe",
}

-- special[name]: false for an ordinary command (each name looked at once)
local special = setmetatable({}, { __index = function(t, name)
  local u = upper(name)
  local v = PUBSUB[u] or ((TRACKED[u] or SESSION[u]) and u) or false
  t[name] = v
  return v
end })

local function call_io(self, wire)
  local ok, werr = self._conn:write(wire)
  if not ok then return fail(self, werr) end
  return read_reply(self)
end

local function call(self, cmd, ...)
  local wire = encode(cmd, ...)
  local sp = special[cmd]
  if sp and PUBSUB[sp:upper()] then return methods[sp](self, ...) end
  if self._subs > 0 then
    error("redis: " .. cmd .. " on a subscribed client (only subscribe, psubscribe,"
      .. " unsubscribe, punsubscribe, next, close)", 3)
  end
  local v, err = exclusive(self, call_io, wire)
  if v == nil then return nil, err end
  if sp then
    if type(v) ~= "table" or v.err == nil then track(self, cmd, ...) end
    if sp == "QUIT" then fail(self, "closed") end
  end
  return reply_of(v)
end

methods.call = call

---------------------------------------------------------------------------
-- Pipelines
---------------------------------------------------------------------------

local Pipe = {}
local pipe_methods = {}

-- p[1] the wire buffer the commands go to (false once the pipeline ran: a
-- pipeline kept past its run must not add to another one's buffer),
-- p._track false or {[k] = table.pack(cmd, ...)} for the commands track()
-- follows.

local function ran(level)
  error("redis: pipeline used after it ran", level + 1)
end

function pipe_methods.call(p, cmd, ...)
  if not p[1] then ran(2) end
  local k = append(p, cmd, ...) or append(p, words(3, cmd, ...))
  local sp = special[cmd]
  if sp then
    if PUBSUB[sp:upper()] then error("redis: " .. cmd .. " in a pipeline (use r:" .. sp .. ")", 2) end
    local tr = p._track or {}
    tr[k], p._track = table.pack(cmd, ...), tr
  end
  return p
end

-- what the C appender of p:CMD leaves: a float (converted here), a misuse
-- (raised at the caller of p:CMD, behind the appender's C frame)
local function pipe_slow(p, name, ...)
  if type(p) ~= "table" or not p[1] then ran(3) end
  if not append(p, words(4, name, ...)) then error("redis: " .. name .. " on something not a pipeline", 3) end
  return p
end

-- The methods of `base`, and for any other name a function sending that
-- command, made once: a table, so that r:get finds its function with plain
-- table lookups (no __index call per command)
local function command_table(base, make)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  return setmetatable(t, { __index = function(cache, name)
    if type(name) ~= "string" or byte(name) == 95 then return nil end -- "_": a field
    local f = make(name)
    cache[name] = f
    return f
  end })
end

-- p:CMD: an ordinary command is appended by a C function, in one call; the
-- ones track() follows go through pipe_methods.call
local pipe_call = pipe_methods.call
Pipe.__index = command_table(pipe_methods, function(name)
  if special[name] then
    return function(p, ...) return pipe_call(p, name, ...) end
  end
  return writer.appender(name, pipe_slow)
end)
Pipe.__name = "redis.pipeline"

-- a write bigger than this goes out from a helper goroutine while the
-- replies are read, so a server that stops reading until its replies are
-- taken (its send buffer full) cannot deadlock the pipeline
local CONCURRENT_WRITE = 256 * 1024

-- the replies of a pipeline, in one table (the C reader decodes them
-- straight into it); a table among them is an error, a null or an array
local function read_replies(self, count)
  local replies, tables = self._rd:readn(count)
  if not replies then return fail(self, tables) end
  replies.n = count
  if tables == 0 then return replies end
  for i = 1, count do
    local v = replies[i]
    if type(v) == "table" then replies[i] = element_of(v) end
  end
  return replies
end

local function pipeline_io(self, wire, count)
  local conn = self._conn
  if #wire <= CONCURRENT_WRITE then
    local ok, err = conn:write(wire)
    if not ok then return fail(self, err) end
    return read_replies(self, count)
  end
  local writer = go(function()
    local ok, err = conn:write(wire)
    if not ok then conn:close() end -- wakes the reader
    return ok, err
  end)
  local replies, rerr = read_replies(self, count)
  local _, wok, werr = go.wait(writer)
  if replies and wok then return replies end
  -- the first failure is the cause: a failed write closes the conn, which
  -- the reader then sees as "closed" (and the other way round)
  if replies or (rerr == "closed" and not wok) then return fail(self, werr) end
  return fail(self, rerr)
end

-- The client keeps one wire buffer for its pipelines (self._wb), lent to
-- the pipeline while fn runs: a pipeline nested in fn, or one after an fn
-- that raised, makes a new one.
function methods.pipeline(self, fn)
  if type(fn) ~= "function" then error("redis: pipeline needs a function", 2) end
  if self._subs > 0 then error("redis: pipeline on a subscribed client", 2) end
  local wb = self._wb or wbuf()
  self._wb = nil
  local p = setmetatable({ wb, _track = false }, Pipe)
  fn(p)
  local wire, count = take(wb)
  local tracked = p._track
  p[1], self._wb = false, wb
  if count == 0 then return { n = 0 } end
  local replies, err = exclusive(self, pipeline_io, wire, count)
  if not replies then return nil, err end
  if tracked then
    for k, args in pairs(tracked) do
      if not redis.iserror(replies[k]) then track(self, table.unpack(args, 1, args.n)) end
    end
  end
  return replies
end

---------------------------------------------------------------------------
-- Pub/sub
---------------------------------------------------------------------------

local MESSAGE = { message = true, pmessage = true }
-- confirmation kind -> the counter it moves
local COUNTER = {
  subscribe = "_nch", unsubscribe = "_nch", psubscribe = "_npat", punsubscribe = "_npat",
}

-- a push reply: kind, channel, payload [, pattern]
local function push_of(v)
  if v[1] == "pmessage" then return "pmessage", v[3], v[4], v[2] end
  return v[1], v[2], v[3]
end

local function is_push(v)
  return type(v) == "table" and v.err == nil and not resp.isnull(v) and type(v[1]) == "string"
end

-- a confirmation carries the server's total of subscriptions: the change
-- tells whether this one added or removed a channel (or pattern)
local function confirm(self, v)
  local total = tointeger(v[3]) or 0
  local field = COUNTER[v[1]]
  self[field] = self[field] + (total - self._subs)
  self._subs = total
end

-- sends a (un)subscribe command and reads its `want` confirmations;
-- messages read meanwhile are queued for next()
local function subscription_io(self, wire, kind, want)
  local ok, werr = self._conn:write(wire)
  if not ok then return fail(self, werr) end
  local got = 0
  while got < want do
    local v, err = read_reply(self)
    if v == nil then return nil, err end
    if not is_push(v) then
      if type(v) == "table" and v.err then return nil, v.err end
      return fail(self, "protocol error: unexpected reply to " .. kind)
    end
    if v[1] == kind then
      got = got + 1
      confirm(self, v)
    elseif MESSAGE[v[1]] then
      local q = self._queue
      q[#q + 1] = v
    end
  end
  return true
end

local function names_check(what, ...)
  for i = 1, select("#", ...) do
    if type((select(i, ...))) ~= "string" then
      error("redis: " .. what .. ": argument " .. i .. " must be a string", 3)
    end
  end
end

-- (p)subscribe: one confirmation per name
local function subscribe(self, kind, ...)
  local n = select("#", ...)
  if n == 0 then error("redis: " .. kind .. " needs a name", 3) end
  names_check(kind, ...)
  return exclusive(self, subscription_io, encode(upper(kind), ...), kind, n)
end

-- (p)unsubscribe: one confirmation per name, or, without names, one per
-- subscription of that kind held (none held: nothing to send)
local function unsubscribe(self, kind, ...)
  names_check(kind, ...)
  local n = select("#", ...)
  if n == 0 then
    n = self[COUNTER[kind]]
    if n == 0 then return true end
  end
  return exclusive(self, subscription_io, encode(upper(kind), ...), kind, n)
end

function methods.subscribe(self, ...) return subscribe(self, "subscribe", ...) end
function methods.psubscribe(self, ...) return subscribe(self, "psubscribe", ...) end
function methods.unsubscribe(self, ...) return unsubscribe(self, "unsubscribe", ...) end
function methods.punsubscribe(self, ...) return unsubscribe(self, "punsubscribe", ...) end

local function next_io(self)
  while true do
    local v, err = self._rd:read()
    if v == nil then
      if err == "timeout" then return nil, err end -- the reader keeps any part read
      return fail(self, err)
    end
    if is_push(v) then
      if MESSAGE[v[1]] then return v end
      if COUNTER[v[1]] then confirm(self, v) end
    end
    -- anything else (a pong) is not a message: skipped
  end
end

local function next_wait(self, timeout)
  local conn = self._conn
  conn:setreaddeadline(timeout and now() + timeout or nil)
  local v, err = next_io(self)
  if self._conn then conn:setreaddeadline(nil) end -- no stale deadline for later calls
  return v, err
end

-- next message: kind ("message" or "pmessage"), channel, payload [, pattern]
function methods.next(self, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error("redis: next: timeout must be a number", 2)
  end
  local q = self._queue
  if q[1] then return push_of(table.remove(q, 1)) end
  if self._subs == 0 and self._conn then error("redis: next on a client with no subscription", 2) end
  local v, err = exclusive(self, next_wait, timeout)
  if v == nil then return nil, err end
  return push_of(v)
end

---------------------------------------------------------------------------
-- Life cycle
---------------------------------------------------------------------------

local function poolable(self)
  return self._subs == 0 and not self._dirty and not self._multi and not self._watch
    and not self._rd:partial() and self._queue[1] == nil
end

function methods.release(self)
  if self._busy then error("redis: release while a call is running", 2) end
  local conn = self._conn
  if not conn then return true end
  self._conn = nil
  if not poolable(self) then
    discard(self._pool, conn)
    return true
  end
  if self._timeout then conn:setdeadline(nil) end
  setup_of[conn] = self._setup
  return put_back(self._pool, conn)
end

function methods.close(self)
  local conn = self._conn
  self._conn = nil
  if conn then discard(self._pool, conn) end
  return true
end

Client.__name = "redis.client"
Client.__close = function(self) methods.release(self) end
Client.__tostring = function(self)
  return "redis.client (" .. (self._conn and "open" or "closed") .. ")"
end

Client.__index = command_table(methods, function(name)
  return function(self, ...) return call(self, name, ...) end
end)

---------------------------------------------------------------------------
-- Connecting
---------------------------------------------------------------------------

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("redis.connect: opts must be a table", 3) end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    error("redis.connect: timeout must be a non-negative number", 3)
  end
  for _, k in ipairs({ "password", "username" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error("redis.connect: " .. k .. " must be a string", 3)
    end
  end
  if opts.db ~= nil and not tointeger(opts.db) then
    error("redis.connect: db must be an integer", 3)
  end
  return opts
end

local function new_client(conn, pool, opts, setup)
  return setmetatable({
    _conn = conn, _rd = resp.reader(conn, { inline = false }), _pool = pool,
    _timeout = opts.timeout, _setup = setup, _dirty = false, _multi = false,
    _watch = false, _subs = 0, _nch = 0, _npat = 0, _queue = {}, _busy = false,
  }, Client)
end

-- brings a conn (fresh, or from the pool set up as `had`) to the wanted
-- user, password and db; nil, err closes the client
local function prepare(r, had, opts)
  local want_db = tointeger(opts.db) or 0
  if opts.password ~= nil and (had.password ~= opts.password or had.username ~= opts.username) then
    local ok, err
    if opts.username then ok, err = call(r, "AUTH", opts.username, opts.password)
    else ok, err = call(r, "AUTH", opts.password) end
    if not ok then return nil, err end
  end
  if had.db ~= want_db then
    local ok, err = call(r, "SELECT", want_db)
    if not ok then return nil, err end
  end
  return true
end

-- a pooled conn authenticated as someone else, when this connect has no
-- password, cannot be taken back to "no user": it is closed, not used
local function usable(had, opts)
  return opts.password ~= nil or had.password == nil
end

function redis.connect(addr, opts)
  if type(addr) ~= "string" then error("redis.connect: address string expected", 2) end
  opts = check_opts(opts)
  local pool = pool_for(opts)
  local dopts = { timeout = opts.timeout, tls = opts.tls }
  while true do
    local conn, err = dial(pool, addr, dopts)
    if not conn then return nil, err end
    local had = setup_of[conn] or { db = 0 }
    setup_of[conn] = nil
    if usable(had, opts) then
      local r = new_client(conn, pool, opts,
        { db = had.db, password = had.password, username = had.username })
      local ok, perr = prepare(r, had, opts)
      if not ok then
        r:close()
        return nil, perr
      end
      return r
    end
    discard(pool, conn)
  end
end

return redis
