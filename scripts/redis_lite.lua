-- redis_lite.lua: a small Redis-compatible server on the RESP codec.
--   goluarun scripts/redis_lite.lua [port | host:port] [request_timeout]
-- (default 6379, 30 s). Prints "listening on ADDR" once listening. Works
-- with redis-cli and redis-benchmark. An idle client may stay connected as
-- long as it likes (as with redis-server's default `timeout 0`), but a
-- client that has sent part of a request must send the rest within
-- request_timeout seconds, or it is disconnected (an inline command that
-- never gets its newline cannot pin a goroutine and an fd for good).
--
-- Commands: PING [msg], ECHO msg, GET, SET key value [EX s] [PX ms]
-- [NX|XX] [KEEPTTL], MSET, MGET, DEL, EXISTS, INCR, TTL, PTTL, COMMAND (an
-- empty array: redis-cli asks for it), CONFIG GET name... (`save` is "" and
-- `appendonly` is "no", what redis-benchmark asks for; any other name is
-- left out, so mostly an empty array; no glob patterns), QUIT. Inline
-- commands ("PING\r\n") work as with redis-server. Errors use redis'
-- wording. A protocol error is answered with "-ERR Protocol error: ..."
-- and the connection is closed, as redis-server does.
--
-- Limits: a request's bulk is at most 512 MiB (redis' proto-max-bulk-len)
-- and a whole request at most 1 GiB (redis' client-query-buffer-limit),
-- refused as a protocol error when declared, before the body is read. A
-- reply is at most 64 MiB: a GET or MGET whose reply would be longer gets
-- "-ERR reply exceeds ..." instead, decided from the sizes before the
-- reply is built (an MGET naming a big value many times costs nothing).
-- Run it with GOLUA_MEMLIMIT to bound the whole process.
--
-- Pipelining: replies are collected while complete commands are still
-- buffered and sent with one conn:write when the input runs dry (or the
-- batch passes 64 KiB). The commands buffered are decoded in one call
-- (rd:commands) into argv tables the connection reuses: a command keeps
-- strings from its argv, never the table.
--
-- Data lives in go.shared dictionaries, visible to every VM of the process
-- (so the same code can serve from every P once net.serve takes a module):
-- "redis_lite" holds the values with their TTLs (the dictionary expires
-- them, and d:ttl gives TTL/PTTL/KEEPTTL the time left). INCR is the dictionary's atomic incr: a value that
-- is still the string a SET stored is converted to a number once.
local go = require "go"
local net = require "net"
local lpeg = require "lpeg"
local resp = require "goluarun.resp"

local spec = arg and arg[1] or "6379"
local addr = spec:find(":") and spec or (":" .. spec)

local LIMITS = {
  max_bulk = 512 * 1024 * 1024, -- redis' proto-max-bulk-len
  max_value = 1024 * 1024 * 1024, -- redis' client-query-buffer-limit
  max_array = 1024 * 1024,
  max_inline = 64 * 1024,       -- redis' PROTO_INLINE_MAX_SIZE
  max_depth = 1,                -- commands are flat arrays
}
local BATCH = 64 * 1024
local MAX_REPLY = 64 * 1024 * 1024
local REQUEST_TIMEOUT = tonumber(arg and arg[2]) or 30

local now = go.now
local concat, upper, tointeger = table.concat, string.upper, math.tointeger

---------------------------------------------------------------------------
-- Store
---------------------------------------------------------------------------

local data = go.shared("redis_lite") -- key -> value (string or integer), TTL
local dget, dset, dttl = data.get, data.set, data.ttl

-- the value of key as a string, or nil (the dictionary drops expired keys)
local function lookup(key)
  local v = dget(data, key)
  if v ~= nil and type(v) ~= "string" then return tostring(v) end
  return v
end

-- the seconds key has left, nil when it has no TTL (or is gone)
local function time_left(key)
  local left = dttl(data, key)
  if left and left > 0 then return left end
  return nil
end

---------------------------------------------------------------------------
-- Replies
---------------------------------------------------------------------------

local OK, PONG, NULL = "+OK\r\n", "+PONG\r\n", "$-1\r\n"
local EMPTY = "*0\r\n"
local ERR_INT = "-ERR value is not an integer or out of range\r\n"
local ERR_SYNTAX = "-ERR syntax error\r\n"
local ERR_REPLY = "-ERR reply exceeds the server's " .. MAX_REPLY .. " byte limit\r\n"
local bulk_size = resp.bulk_size

-- LEN[n]: "$n\r\n", cached for small n (a reply costs no number formatting)
local LEN = setmetatable({}, { __index = function(t, n)
  local s = "$" .. n .. "\r\n"
  if n < 4096 then t[n] = s end
  return s
end })

local function bulk(s)
  return LEN[#s] .. s .. "\r\n"
end

local function int(n)
  return ":" .. n .. "\r\n"
end

-- an error line: CR/LF in user text become spaces (no reply injection)
local function err(msg)
  return "-" .. msg:gsub("[\r\n]", " ") .. "\r\n"
end

local function arity_err(name)
  return err("ERR wrong number of arguments for '" .. name:lower() .. "' command")
end

-- integers as redis' string2ll accepts them: optional '-', no leading
-- zeros, no spaces or '+', within 64 bits
local integer_pat = lpeg.C((lpeg.P "-" ^ -1 * lpeg.R "19" * lpeg.R "09" ^ 0) + lpeg.P "0") * -1

local function to_integer(s)
  local digits = integer_pat:match(s)
  local n = digits and tonumber(digits)
  if math.type(n) ~= "integer" then return nil end
  return n
end

---------------------------------------------------------------------------
-- Commands: fn(argv, argc) -> reply [, "quit"]
---------------------------------------------------------------------------

local commands = {}

function commands.PING(a, n)
  if n == 1 then return PONG end
  if n == 2 then return bulk(a[2]) end
  return arity_err("ping")
end

function commands.ECHO(a, n)
  if n ~= 2 then return arity_err("echo") end
  return bulk(a[2])
end

function commands.GET(a, n)
  if n ~= 2 then return arity_err("get") end
  local v = dget(data, a[2])
  if v == nil then return NULL end
  v = v .. "" -- an integer (INCR) as text; a string as it is, not copied
  local len = #v
  if len > MAX_REPLY - 32 and bulk_size(len) > MAX_REPLY then return ERR_REPLY end
  return LEN[len] .. v .. "\r\n"
end

function commands.SET(a, n)
  if n == 3 then -- the common case: no options
    dset(data, a[2], a[3])
    return OK
  end
  if n < 3 then return arity_err("set") end
  local key, value = a[2], a[3]
  local nx, xx, keepttl, ttl_ms = false, false, false, nil
  local i = 4
  while i <= n do
    local opt = upper(a[i])
    if opt == "NX" and not xx then
      nx = true
    elseif opt == "XX" and not nx then
      xx = true
    elseif opt == "KEEPTTL" and not ttl_ms then
      keepttl = true
    elseif (opt == "EX" or opt == "PX") and not ttl_ms and not keepttl and i < n then
      local v = to_integer(a[i + 1])
      if not v then return ERR_INT end
      -- as redis 7: the deadline in ms (now + ttl) must not overflow
      local limit = math.maxinteger - math.ceil(now() * 1000)
      if v <= 0 or v > (opt == "EX" and limit // 1000 or limit) then
        return err("ERR invalid expire time in 'set' command")
      end
      ttl_ms = opt == "EX" and v * 1000 or v
      i = i + 1
    else
      return ERR_SYNTAX
    end
    i = i + 1
  end
  if nx or xx then
    local exists = lookup(key) ~= nil
    if (nx and exists) or (xx and not exists) then return NULL end
  end
  if ttl_ms then
    dset(data, key, value, ttl_ms / 1000)
  else
    dset(data, key, value, keepttl and time_left(key) or nil)
  end
  return OK
end

function commands.MSET(a, n)
  if n < 3 or n % 2 == 0 then return arity_err("mset") end
  for i = 2, n, 2 do
    dset(data, a[i], a[i + 1])
  end
  return OK
end

-- the reply's size is added up first, each key fetched once, and the
-- reply refused as soon as it would pass MAX_REPLY
function commands.MGET(a, n)
  if n < 2 then return arity_err("mget") end
  local vals, size = {}, #tostring(n - 1) + 3
  for i = 2, n do
    local k = a[i]
    local v = vals[k]
    if v == nil then
      v = lookup(k) or false
      vals[k] = v
    end
    size = size + (v and bulk_size(#v) or #NULL)
    if size > MAX_REPLY then return ERR_REPLY end
  end
  local out = { "*" .. (n - 1) .. "\r\n" }
  for i = 2, n do
    local v = vals[a[i]]
    out[i] = v and bulk(v) or NULL
  end
  return concat(out)
end

function commands.DEL(a, n)
  if n < 2 then return arity_err("del") end
  local count = 0
  for i = 2, n do
    local k = a[i]
    if lookup(k) ~= nil then
      data:delete(k)
      count = count + 1
    end
  end
  return int(count)
end

function commands.EXISTS(a, n)
  if n < 2 then return arity_err("exists") end
  local count = 0
  for i = 2, n do
    if lookup(a[i]) ~= nil then count = count + 1 end
  end
  return int(count)
end

function commands.INCR(a, n)
  if n ~= 2 then return arity_err("incr") end
  local key = a[2]
  for _ = 1, 2 do
    local v = data:get(key)
    if v == nil or math.type(v) == "integer" then
      if v == math.maxinteger then return err("ERR increment or decrement would overflow") end
      local new = data:incr(key, 1, 0) -- atomic across VMs; keeps the TTL
      if new then return int(new) end
    else
      -- a string from SET: convert it to a number once, keeping its TTL
      local cur = type(v) == "string" and to_integer(v) or nil
      if not cur then return ERR_INT end
      dset(data, key, cur, time_left(key))
    end
  end
  return ERR_INT
end

local function ttl(a, n, name, scale)
  if n ~= 2 then return arity_err(name) end
  local left = dttl(data, a[2])
  if left == nil then return int(-2) end
  if left == 0 then return int(-1) end
  return int(tointeger(math.floor(left * scale + 0.5)) or 0)
end

function commands.TTL(a, n) return ttl(a, n, "ttl", 1) end
function commands.PTTL(a, n) return ttl(a, n, "pttl", 1000) end

function commands.COMMAND()
  return EMPTY
end

-- the parameters redis-benchmark reads (it warns "Could not fetch server
-- CONFIG" unless both come back as name/value pairs); any other is unknown
local CONFIG = { save = "", appendonly = "no" }

function commands.CONFIG(a, n)
  if n < 2 then return arity_err("config") end
  if upper(a[2]) == "GET" then
    if n < 3 then return err("ERR wrong number of arguments for 'config|get' command") end
    local out = {}
    for i = 3, n do
      local name = a[i]:lower()
      local v = CONFIG[name]
      if v then out[#out + 1] = bulk(name) .. bulk(v) end
    end
    return "*" .. (2 * #out) .. "\r\n" .. concat(out)
  end
  return err("ERR unknown subcommand '" .. a[2]:sub(1, 128) .. "'. Try CONFIG HELP.")
end

function commands.QUIT()
  return OK, "quit"
end

local function unknown(a, n)
  local args = {}
  for i = 2, n do
    args[#args + 1] = "'" .. a[i]:sub(1, 128) .. "' "
    if #args >= 10 then break end
  end
  return err("ERR unknown command '" .. a[1]:sub(1, 128) .. "', with args beginning with: "
    .. concat(args))
end

local function dispatch(a, n)
  local name = a[1]
  local fn = commands[name]
  if not fn then
    fn = commands[upper(name)] or unknown
  end
  return fn(a, n)
end

---------------------------------------------------------------------------
-- Connections
---------------------------------------------------------------------------

-- an array's count if every element is a string, else nil, why
local function check_args(v)
  local n = #v
  for i = 2, n do
    if type(v[i]) ~= "string" then return nil, "expected bulk strings in the array" end
  end
  return n
end

-- a decoded request: a non-empty array of strings (nil: skip it)
local function check_request(v)
  if type(v) ~= "table" or v.err ~= nil or v.ok ~= nil or resp.isnull(v) then
    return nil, "expected an array of bulk strings"
  end
  if type(v[1]) ~= "string" then return nil, "expected bulk strings in the array" end
  return check_args(v)
end

-- Closing with unread input makes the kernel send a RST, which can destroy
-- the last reply before the client reads it: send FIN first, then drain
-- what the client still sends for a bounded time and size.
local LINGER_TIME, LINGER_BYTES = 2, 1024 * 1024

local function lingering_close(conn)
  if not conn:closewrite() then return end
  conn:setreaddeadline(now() + LINGER_TIME)
  local drained = 0
  while drained <= LINGER_BYTES do
    local d = conn:read()
    if not d then break end
    drained = drained + #d
  end
  conn:close()
end

local function handle(conn)
  local rd = resp.reader(conn, LIMITS)
  local out, nout, size = {}, 0, 0

  local function flush()
    if nout == 0 then return true end
    local ok = conn:write(concat(out, "", 1, nout))
    for i = 1, nout do out[i] = nil end
    nout, size = 0, 0
    return ok
  end

  -- a reply into the batch: false to stop (the conn is done)
  local function answer(reply, quit)
    nout = nout + 1
    out[nout] = reply
    size = size + #reply
    if quit then
      if flush() then lingering_close(conn) end
      return false
    end
    return size < BATCH or flush()
  end

  -- the commands decoded ahead into reused argv tables: false to stop
  local pool, argc = {}, {}
  -- (the loop keeps nout and size in locals: no upvalue access per
  -- command; they are written back before anything that uses them)
  local function run_batch(k)
    local cmds, replies, n, sz = commands, out, nout, size
    for i = 1, k do
      local a = pool[i]
      local name = a[1]
      local fn = cmds[name] or cmds[upper(name)] or unknown
      local reply, quit = fn(a, argc[i])
      n = n + 1
      replies[n] = reply
      sz = sz + #reply
      if quit or sz >= BATCH then
        nout, size = n, sz
        if quit then
          if flush() then lingering_close(conn) end
          return false
        end
        if not flush() then return false end
        n, sz = 0, 0
      end
    end
    nout, size = n, sz
    return true
  end

  -- nothing complete is buffered: send what is ready, then wait (for the
  -- rest of a started request, at most REQUEST_TIMEOUT): false to stop
  local timeout = nil -- the conn's timeout now (set only when it changes)
  local function wait_input()
    if not flush() then return false end
    local want = rd:partial() and REQUEST_TIMEOUT or nil
    if want ~= timeout then
      conn:settimeout(want)
      timeout = want
    end
    return rd:fill()
  end

  while true do
    local k = rd:commands(pool, argc)
    if k > 0 then
      if not run_batch(k) then return end
      goto continue
    elseif not rd:partial() then -- the common case after a batch: nothing left
      if not wait_input() then return end
      goto continue
    end
    local req, rerr = rd:tryread()
    if type(req) == "table" and type(req[1]) == "string" then
      -- the common case, a command: an array starting with a bulk string
      -- (an error reply {err = ...} or a null has no [1])
      local n, perr = check_args(req)
      local reply, quit
      if n then
        reply, quit = dispatch(req, n)
      else
        reply, quit = err("ERR Protocol error: " .. perr), "quit"
      end
      if not answer(reply, quit) then return end
    elseif req == nil then
      if rerr ~= "incomplete" then
        if rerr:find("^protocol error: ") then
          nout = nout + 1
          out[nout] = err("ERR Protocol error: " .. rerr:sub(17))
          if flush() then lingering_close(conn) end
        end
        return
      end
      if not wait_input() then return end
    elseif req == resp.null_array or (type(req) == "table" and not resp.isnull(req)
        and req[1] == nil and req.err == nil and req.ok == nil) then
      -- "*-1" and "*0": ignored, as redis-server does (a top-level "$-1"
      -- is a null bulk, not an array: check_request refuses it)
    else
      local _, perr = check_request(req)
      if not answer(err("ERR Protocol error: " .. perr), "quit") then return end
    end
    ::continue::
  end
end

local ln, lerr = net.serve(addr, handle)
if not ln then
  io.stderr:write("redis_lite: ", addr, ": ", tostring(lerr), "\n")
  os.exit(1)
end
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
