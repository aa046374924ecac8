-- resp: a RESP2 (Redis serialization protocol) codec.
--
--   local resp = require "goluarun.resp"
--   resp.encode(v [, max])              --> wire string (raises on values RESP2 cannot carry)
--                                       --  | nil, "reply too large" (longer than max bytes)
--   resp.command(...)                   --> a command: an array of bulk strings
--   resp.arg(v)                         --> the bulk text of a command argument
--   resp.integer(n)                     --> {int = n}: an integer element of an array
--   resp.bulk_size(n)                   --> bytes of the bulk reply of an n-byte string
--   resp.decode(buf [, pos [, limits]]) --> value, nextpos
--                                       --  | nil, "incomplete" | nil, "protocol error: ..."
--   local rd = resp.reader(conn [, limits])
--   rd:read()    --> value | nil, err   (err: "protocol error: ..." or the conn's error)
--   rd:readn(n)  --> {v1, ..., vn}, tables | nil, err   (n values in one table;
--                                       --  tables: how many of them are tables)
--   rd:tryread() --> value | nil, "incomplete" (no I/O) | nil, err
--   rd:fill()    --> true | nil, err    (one conn:read() into the buffer)
--   rd:commands(pool, argc [, max]) --> k (no I/O; a server's fast path)
--                 the complete commands buffered at the front (arrays of
--                 1 .. 64 bulk strings, at most max, default 256) decoded
--                 into the REUSED tables pool[1 .. k], command i's count in
--                 argc[i]: the tables are overwritten by the next call, so
--                 keep strings, never the tables. 0 at anything else (or
--                 without the C reader): tryread() takes it. Slots past a
--                 count are nil; with nothing buffered it returns 0 and
--                 empties the tables if the last batch passed 64 KiB.
--   rd:buffered() --> bytes received and not yet consumed
--   rd:partial()  --> true while a value has begun but is not complete
--
-- Lua <-> RESP2 mapping:
--   simple string "+OK"  -> "OK" (a Lua string)    <- {ok = "OK"}  or resp.simple("OK")
--   error "-ERR x"       -> {err = "ERR x"}          <- {err = "ERR x"} or resp.error("ERR x")
--   integer ":42"        -> 42 (a Lua integer)       <- a top-level integer (or integral
--                                                      float); in an array resp.integer(42)
--   bulk string "$3 foo" -> "foo"                    <- a Lua string
--   null bulk "$-1"      -> resp.null                <- resp.null
--   array "*2 ..."       -> { ... } (a sequence)     <- a sequence (n = #t, or t.n if set)
--   null array "*-1"     -> resp.null_array          <- resp.null_array
--   inline command "PING a\r\n" (first byte not a type byte, top level only, as
--   redis-server accepts them) -> { "PING", "a" }; quoting as redis-cli /
--   sdssplitargs: "..." with \n \r \t \b \a \xHH \<c>, '...' with \'. Empty
--   inline lines are skipped.
-- resp.isnull(v) is true for both nulls. Simple strings decode to plain Lua
-- strings, so they re-encode as bulk strings.
--
-- Numbers: a number on its own encodes as an integer reply (what a server
-- answers INCR with), but a number inside an array encodes as a bulk string
-- (resp.arg's text), because an array of strings and numbers is what a
-- client sends as a command, and redis-server refuses anything but bulk
-- strings there: resp.encode({"INCRBY", "k", 5}) is "*3 $6 INCRBY $1 k $1 5".
-- A server that replies with integers inside an array marks them:
-- resp.encode({"a", resp.integer(1)}) is "*2 $1 a :1". Decoding gives plain
-- Lua integers either way (so integers nested in a decoded reply re-encode
-- as bulk strings).
--
-- Command arguments (resp.arg, resp.command, arrays in resp.encode):
-- strings as they are; integers in decimal; floats as the shortest of
-- "%.15g", "%.16g", "%.17g" that reads back as the same float (0.1 ->
-- "0.1", 0.1 + 0.2 -> "0.30000000000000004", 5.0 -> "5", 1/0 -> "inf",
-- -1/0 -> "-inf", NaN -> "nan", as redis writes them); anything else
-- (booleans, nil, tables) raises, so no argument ever becomes a protocol
-- error on the wire.
--
-- Limits (resp.decode and resp.reader), checked before anything is
-- allocated for the declared size:
--   max_bulk   (512 MiB)   a declared bulk length above it is a protocol error
--   max_value  (1 GiB)     bytes of one top-level value (a request): a bulk
--                          declared past it is a protocol error ("value too
--                          large"), so the reader never holds more than
--                          this plus one read's chunk for a value
--   max_array  (1 Mi)      a declared array count above it is a protocol error
--   max_inline (64 KiB)    longest line (inline command or type line) without its CRLF
--   max_depth  (32)        deepest array nesting
--   inline     (true)      accept inline commands at the top level
--
-- Invariants of the streaming reader: values are decoded incrementally (the
-- arrays being filled are kept between reads, so input arriving slowly is
-- scanned once, never re-parsed from the start of the value); received data
-- is only joined when the value needs it (a pending bulk waits for its
-- whole length, a pending line for a "\n"), so memory grows with the bytes
-- actually received, never with a declared size. After a protocol error the
-- reader is unusable and keeps returning that error.
local lpeg = require "lpeg"

local P, R, S, C, Cs, Ct, Cp = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cs, lpeg.Ct, lpeg.Cp
local byte, sub, find, char = string.byte, string.sub, string.find, string.char
local concat, tointeger, mtype = table.concat, math.tointeger, math.type
local format = string.format

local resp = {}

-- The C reader (goluarun.respparse, built into goluarun; absent under a
-- plain Lua): readers made while resp.native is true decode complete
-- values through it in batches, the Lua parser below stays the reference
-- and handles everything the C loop leaves to it. GOLUARUN_RESP_LUA=1 in
-- the environment starts with it off (to compare the two).
local has_cparse, cparse = pcall(require, "goluarun.respparse")
if not has_cparse then cparse = nil end
resp.native = cparse ~= nil and os.getenv("GOLUARUN_RESP_LUA") ~= "1"

-- The C command writer (nil without goluarun.respparse), whatever
-- resp.native says: resp.command tries it first, and goluarun.redis builds
-- its commands and pipelines with it. writer.command(name, ...) --> wire |
-- nil, i, when the name is a string and every argument a string or an
-- integer (else i: the first word it leaves, 0 the name). Pipelines:
-- writer.wbuf() --> wb, a buffer of commands a pipeline table holds in
-- p[1]; writer.append(p, name, ...) --> k (commands in it) | nil, i;
-- writer.appender(name, slow) --> f, f(p, ...) appends that command and
-- returns p, or returns slow(p, name, ...) for what append leaves;
-- writer.take(wb) --> bytes, count (and empties it). See bindings/lresp.c.
resp.writer = cparse and {
  command = cparse.command, wbuf = cparse.wbuf, append = cparse.append,
  appender = cparse.appender, take = cparse.take,
} or nil
local ccommand = cparse and cparse.command
local ccommands = cparse and cparse.commands

---------------------------------------------------------------------------
-- Sentinels
---------------------------------------------------------------------------

local function sentinel(name)
  return setmetatable({}, {
    __name = name,
    __tostring = function() return name end,
    __newindex = function() error(name .. " is read-only", 2) end,
  })
end

resp.null = sentinel("resp.null")
resp.null_array = sentinel("resp.null_array")

local null, null_array = resp.null, resp.null_array

function resp.isnull(v)
  return v == null or v == null_array
end

--- {ok = s}: a value that encodes as a simple string.
function resp.simple(s)
  if type(s) ~= "string" then error("resp.simple: string expected", 2) end
  return { ok = s }
end

--- {int = n}: a value that encodes as an integer reply, inside an array too
--- (a plain number inside an array is a bulk string: see "Numbers").
function resp.integer(n)
  local i = tointeger(n)
  if not i then error("resp.integer: integer expected, got " .. tostring(n), 2) end
  return { int = i }
end

--- {err = msg}: a value that encodes as an error reply.
function resp.error(msg)
  if type(msg) ~= "string" then error("resp.error: string expected", 2) end
  return { err = msg }
end

---------------------------------------------------------------------------
-- Encoding
---------------------------------------------------------------------------

resp.OK = "+OK\r\n"
resp.PONG = "+PONG\r\n"
resp.NULL = "$-1\r\n"
resp.NULL_ARRAY = "*-1\r\n"
resp.EMPTY_ARRAY = "*0\r\n"

local function check_line(s, what)
  if find(s, "[\r\n]") then
    error("resp: " .. what .. " must not contain CR or LF", 3)
  end
  return s
end

function resp.encode_simple(s)
  return "+" .. check_line(s, "simple string") .. "\r\n"
end

function resp.encode_error(msg)
  return "-" .. check_line(msg, "error message") .. "\r\n"
end

function resp.encode_integer(n)
  local i = tointeger(n)
  if not i then error("resp: integer expected, got " .. tostring(n), 2) end
  return ":" .. i .. "\r\n"
end

function resp.encode_bulk(s)
  return "$" .. #s .. "\r\n" .. s .. "\r\n"
end

-- The bulk text of a command argument (see "Command arguments" above), or
-- nil for a value that is not a string or a number.
-- the shortest of these that reads back as the same float ("%.17g" always does)
local FLOAT_FORMATS = { "%.15g", "%.16g" }

local function float_text(x)
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  for _, f in ipairs(FLOAT_FORMATS) do
    local s = format(f, x)
    if tonumber(s) == x then return s end
  end
  return format("%.17g", x)
end

local function arg_text(a)
  local t = type(a)
  if t == "string" then return a end
  if t == "number" then
    if mtype(a) == "integer" then return tostring(a) end
    return float_text(a)
  end
  return nil
end

local encode_into

local function encode_table(out, n, v, depth)
  if v == null then
    out[n + 1] = "$-1\r\n"; return n + 1
  elseif v == null_array then
    out[n + 1] = "*-1\r\n"; return n + 1
  end
  local err, ok, int = v.err, v.ok, v.int
  if int ~= nil then
    local i = tointeger(int)
    if not i then error("resp: {int=...} needs an integer", depth + 2) end
    out[n + 1] = ":" .. i .. "\r\n"; return n + 1
  elseif err ~= nil then
    if type(err) ~= "string" then error("resp: {err=...} needs a string", depth + 2) end
    out[n + 1] = "-" .. check_line(err, "error message") .. "\r\n"; return n + 1
  elseif ok ~= nil then
    if type(ok) ~= "string" then error("resp: {ok=...} needs a string", depth + 2) end
    out[n + 1] = "+" .. check_line(ok, "simple string") .. "\r\n"; return n + 1
  end
  if depth > 64 then error("resp: nesting too deep (or a cycle)", depth + 2) end
  local count = v.n or #v
  n = n + 1
  out[n] = "*" .. count .. "\r\n"
  for i = 1, count do
    n = encode_into(out, n, v[i], depth + 1)
  end
  return n
end

function encode_into(out, n, v, depth)
  local t = type(v)
  if t == "string" then
    out[n + 1] = "$" .. #v .. "\r\n"
    out[n + 2] = v
    out[n + 3] = "\r\n"
    return n + 3
  elseif t == "number" then
    if depth > 0 then -- an argument of a command: a bulk string
      local a = arg_text(v)
      out[n + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
      return n + 1
    end
    local i = tointeger(v)
    if not i then error("resp: cannot encode non-integral number " .. tostring(v), depth + 2) end
    out[n + 1] = ":" .. i .. "\r\n"
    return n + 1
  elseif t == "table" then
    return encode_table(out, n, v, depth)
  elseif v == nil then
    error("resp: cannot encode nil (use resp.null)", depth + 2)
  end
  error("resp: cannot encode a " .. t, depth + 2)
end

function resp.arg(v)
  local s = arg_text(v)
  if s == nil then error("resp.arg: string or number expected, got " .. type(v), 2) end
  return s
end

--- Bytes of the bulk reply carrying an n-byte string ("$n\r\n...\r\n"):
--- to check a reply's size before building it.
function resp.bulk_size(n)
  return #tostring(n) + n + 5
end

local TOO_LARGE = "reply too large"

--- Encodes one Lua value (see the mapping above); raises on anything RESP2
--- cannot carry (nil, booleans, functions, a non-integral float on its own,
--- CR/LF in a simple string or error). With `max`, a reply longer than max bytes is
--- not built: nil, "reply too large".
function resp.encode(v, max)
  local t = type(v)
  if t == "string" then
    if max and resp.bulk_size(#v) > max then return nil, TOO_LARGE end
    return "$" .. #v .. "\r\n" .. v .. "\r\n"
  end
  local out = {}
  local n = encode_into(out, 0, v, 0)
  if max then -- the parts are the value's own strings and small headers
    local size = 0
    for i = 1, n do size = size + #out[i] end
    if size > max then return nil, TOO_LARGE end
  end
  return concat(out, "", 1, n)
end

--- Encodes a command as clients send it: an array of bulk strings (numbers
--- converted as resp.arg does). resp.command("SET", "k", 1).
function resp.command(...)
  if ccommand then -- strings and integers: the C writer
    local wire = ccommand(...)
    if wire then return wire end
  end
  local n = select("#", ...)
  local args = { ... }
  local out = { "*" .. n .. "\r\n" }
  for i = 1, n do
    local a = arg_text(args[i])
    if a == nil then error("resp.command: argument " .. i .. " is a " .. type(args[i]), 2) end
    out[i + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return concat(out, "", 1, n + 1)
end

---------------------------------------------------------------------------
-- LPeg grammars: length / integer lines and the inline tokenizer
---------------------------------------------------------------------------

local digit = R "09"
-- a declared length: -1, 0 or a number without leading zeros
local len_pat = (P "-1" + P "0" + R "19" * digit ^ 0) / tonumber * P "\r\n" * Cp()
-- an integer reply
local int_pat = (P "-" ^ -1 * digit ^ 1) / tonumber * P "\r\n" * Cp()

-- inline commands, as redis' sdssplitargs splits them
local space = S " \t\r\n\v\f\0"
local hex = R("09", "af", "AF")
local dq_escape = (P "\\x" * C(hex * hex)) / function(h) return char(tonumber(h, 16)) end
  + P "\\n" / "\n" + P "\\r" / "\r" + P "\\t" / "\t" + P "\\b" / "\b" + P "\\a" / "\a"
  + (P "\\" / "") * P(1)
local quote_end = #(space + -1) -- a closing quote must end the word
local dquoted = (P '"' / "") * (dq_escape + (1 - S '"\\')) ^ 0 * (P '"' / "") * quote_end
local squoted = (P "'" / "") * (P "\\'" / "'" + (1 - P "'")) ^ 0 * (P "'" / "") * quote_end
local bare = (1 - space - S "\"'") ^ 1
local word = Cs(bare * (dquoted + squoted) ^ -1 + dquoted + squoted)
local inline_pat = space ^ 0 * Ct((word * space ^ 0) ^ 0) * -1

--- Splits an inline command line into words (nil if the quotes do not
--- balance). Exposed for tests and tools.
function resp.split_inline(line)
  return inline_pat:match(line)
end

---------------------------------------------------------------------------
-- Decoding
---------------------------------------------------------------------------

local DEFAULTS = {
  max_bulk = 512 * 1024 * 1024,
  max_value = 1024 * 1024 * 1024,
  max_array = 1024 * 1024,
  max_inline = 64 * 1024,
  max_depth = 32,
  inline = true,
}

local function check_limits(limits, level)
  if limits == nil then return DEFAULTS end
  if type(limits) ~= "table" then error("resp: limits must be a table", level + 1) end
  local l = {}
  for k, dv in pairs(DEFAULTS) do
    local v = limits[k]
    if v == nil then v = dv end
    if type(dv) == "number" then
      if mtype(v) ~= "integer" or v < 0 then
        error("resp: limit " .. k .. " must be a non-negative integer", level + 1)
      end
    end
    l[k] = v
  end
  return l
end

local INCOMPLETE = "incomplete"

local function perr(msg)
  return nil, "protocol error: " .. msg
end

-- The fast path for the commonest value, a complete flat array of bulk
-- strings (every client request): one LPeg match. It takes the value only
-- when exactly the declared count of well-formed bulks is there; anything
-- else (nulls, other types, nesting, incomplete or malformed input, or more
-- bulks following) is left to the general parser below, which decides.
local Cmt, Carg = lpeg.Cmt, lpeg.Carg
local count_pat = (R "19" * digit ^ 0) / tonumber
local function fast_bulk(s, i, n, lim, vstart)
  local stop = i + n
  if n > lim.max_bulk or stop + 2 - vstart > lim.max_value then return false end
  if byte(s, stop) == 13 and byte(s, stop + 1) == 10 then
    return stop + 2, sub(s, i, stop - 1)
  end
  return false
end
local function fast_count(_, i, n, lim)
  if n > lim.max_array or lim.max_depth < 1 then return false end
  return i, n
end
local fast_array = P "*" * Cmt(count_pat * "\r\n" * Carg(1), fast_count)
  * Ct((P "$" * Cmt((P "0" / tonumber + count_pat) * "\r\n" * Carg(1) * Carg(2), fast_bulk)) ^ 0)
  * Cp()

-- Why the line at `pos` did not match its pattern: nil, "incomplete", pos,
-- last, "line" while its "\n" has not arrived (and it is not too long yet),
-- else a protocol error.
local function bad_line(buf, pos, lim, msg)
  local nl = find(buf, "\n", pos, true)
  if not nl then
    if #buf - pos > lim.max_inline + 1 then return perr("line too long") end
    return nil, INCOMPLETE, pos, #buf + 1, "line"
  end
  if nl - pos - 1 > lim.max_inline then return perr("line too long") end
  return perr(msg)
end

-- Decoding state: the arrays being filled, as parallel stacks (no table
-- per frame): st.arr[d] the array, st.cnt[d] its declared count, st.got[d]
-- the elements so far, st.depth the number of open arrays; st.used the
-- bytes of the current top-level value before the buffer parse starts in.
local function new_state()
  return { arr = {}, cnt = {}, got = {}, depth = 0, used = 0 }
end

-- parse() decodes from `pos` until one top-level value is complete:
--   value, nextpos                       complete
--   nil, "incomplete", at, last, kind    more input needed: `at` is where the
--        unfinished element starts (st keeps the finished ones); kind
--        "bulk": the buffer must reach position `last`; kind "line": a "\n"
--        must arrive first
--   nil, "protocol error: ..."
-- Type lines are matched by their LPeg pattern first (the fast path); only
-- a line that does not match is looked at again (bad_line).
local function parse(st, buf, pos, lim)
  local len = #buf
  local arr, cnt, got = st.arr, st.cnt, st.got
  local vstart = pos -- where the current value's bytes in buf begin
  while true do
    local c = byte(buf, pos)
    if not c then return nil, INCOMPLETE, pos, pos, "line" end
    local value
    if st.depth == 0 then
      vstart, st.used = pos, 0
      if c == 42 then
        local n, t, after = fast_array:match(buf, pos, lim, pos)
        if n and #t == n then return t, after end
      end
    end
    if c == 36 then -- '$' bulk string
      local n, after = len_pat:match(buf, pos + 1)
      if not n then return bad_line(buf, pos, lim, "invalid bulk length") end
      if n == -1 then
        value = null
        pos = after
      else
        if n > lim.max_bulk then return perr("invalid bulk length") end
        local stop = after + n -- where the closing CRLF must be
        if st.used + stop + 2 - vstart > lim.max_value then return perr("value too large") end
        if stop + 1 > len then return nil, INCOMPLETE, pos, stop + 1, "bulk" end
        if byte(buf, stop) ~= 13 or byte(buf, stop + 1) ~= 10 then
          return perr("bulk string not followed by CRLF")
        end
        value = sub(buf, after, stop - 1)
        pos = stop + 2
      end
    elseif c == 42 then -- '*' array
      local n, after = len_pat:match(buf, pos + 1)
      if not n then return bad_line(buf, pos, lim, "invalid multibulk length") end
      if n > lim.max_array then return perr("invalid multibulk length") end
      pos = after
      if n == -1 then
        value = null_array
      else
        local d = st.depth
        if d >= lim.max_depth then return perr("arrays nested too deep") end
        if n == 0 then
          value = {}
        else
          d = d + 1
          st.depth = d
          arr[d], cnt[d], got[d] = {}, n, 0
        end
      end
    elseif c == 58 then -- ':' integer
      local n, after = int_pat:match(buf, pos + 1)
      if mtype(n) ~= "integer" then return bad_line(buf, pos, lim, "invalid integer") end
      value = n
      pos = after
    else
      local nl = find(buf, "\n", pos, true)
      if not nl or nl - pos - 1 > lim.max_inline then
        return bad_line(buf, pos, lim, "line too long")
      end
      if c == 43 or c == 45 then -- '+' simple string, '-' error
        if nl - 1 <= pos or byte(buf, nl - 1) ~= 13 then
          return perr("line not terminated by CRLF")
        end
        local text = sub(buf, pos + 1, nl - 2)
        if c == 43 then value = text else value = { err = text } end
      else
        if st.depth > 0 or not lim.inline then
          return perr(string.format("expected a type byte, got %q", char(c)))
        end
        local words = inline_pat:match(sub(buf, pos, nl - 1))
        if not words then return perr("unbalanced quotes in inline request") end
        if #words > 0 then value = words end -- empty lines are skipped
      end
      pos = nl + 1
    end
    -- attach the finished value to the arrays being filled
    while value ~= nil do
      local d = st.depth
      if d == 0 then return value, pos end
      local i = got[d] + 1
      local t = arr[d]
      t[i] = value
      if i < cnt[d] then
        got[d] = i
        break
      end
      arr[d] = nil
      st.depth = d - 1
      value = t
    end
  end
end

--- Decodes one value from `buf` at `pos` (default 1). Returns the value and
--- the position after it, nil, "incomplete" if `buf` ends before the value
--- does, or nil, "protocol error: ...".
function resp.decode(buf, pos, limits)
  if type(buf) ~= "string" then error("resp.decode: string expected", 2) end
  pos = pos or 1
  if mtype(pos) ~= "integer" or pos < 1 then error("resp.decode: bad position", 2) end
  local lim = check_limits(limits, 2)
  local v, np = parse(new_state(), buf, pos, lim)
  if v == nil then return nil, np end
  return v, np
end

---------------------------------------------------------------------------
-- Streaming reader over a conn
---------------------------------------------------------------------------

local Reader = {}
Reader.__index = Reader
Reader.__name = "resp.reader"

--- A streaming decoder over `conn` (anything with conn:read() returning a
--- chunk or nil, err).
function resp.reader(conn, limits)
  if conn == nil then error("resp.reader: conn expected", 2) end
  local lim = check_limits(limits, 2)
  return setmetatable({
    conn = conn,
    lim = lim,
    -- the C reader's config, and the values it decoded ahead: q[qh .. qn],
    -- value i ending before buf position qend[i]
    cfg = resp.native and cparse and cparse.config(lim, null, null_array) or nil,
    q = {}, qend = {}, qh = 1, qn = 0,
    st = new_state(), -- arrays being filled
    buf = "",       -- joined input
    pos = 1,        -- first unconsumed byte of buf
    chunks = {},    -- input received but not joined yet
    nchunks = 0,
    pending = 0,    -- bytes in chunks
    need = 0,       -- kind "bulk": bytes (from pos) that complete the element
    kind = "line",  -- what the element waits for: "line" (a "\n") or "bulk"
    newline = false, -- a chunk with a "\n" arrived since the last parse
    err = nil,      -- sticky protocol error
    held = 0,       -- bytes of the commands the last rd:commands put in its tables
  }, Reader)
end

--- Bytes received and not consumed yet.
function Reader:buffered()
  return #self.buf - self.pos + 1 + self.pending
end

--- Whether a value has begun and is not complete yet: bytes are buffered,
--- or an array's finished elements are held in the decoding state.
function Reader:partial()
  return self.st.depth > 0 or self:buffered() > 0
end

-- the next value decoded ahead by the C reader (the queue is not empty)
local function dequeue(self)
  local qh, q = self.qh, self.q
  local v = q[qh]
  q[qh] = nil
  self.pos = self.qend[qh]
  if qh < self.qn then
    self.qh = qh + 1
  else
    self.qh, self.qn = 1, 0
    if self.pos > #self.buf then self.buf, self.pos = "", 1 end
  end
  return v
end

-- decodes every complete value at pos with the C reader: true if it took any
local function batch(self)
  local k = cparse.batch(self.cfg, self.buf, self.pos, self.q, self.qend)
  if k == 0 then return false end
  self.qh, self.qn = 1, k
  return true
end

-- joins the pending chunks onto the unconsumed part of the buffer
local function join(self)
  local ch = self.chunks
  if self.nchunks == 1 and self.pos > #self.buf then -- the common case: no copy
    self.buf, ch[1] = ch[1], nil
    self.nchunks, self.pending, self.pos = 0, 0, 1
    return
  end
  ch[0] = self.pos <= #self.buf and sub(self.buf, self.pos) or ""
  self.buf = concat(ch, "", 0, self.nchunks)
  for i = 0, self.nchunks do ch[i] = nil end
  self.nchunks, self.pending, self.pos = 0, 0, 1
end

-- joins the pending chunks when they may complete the waiting element (tryread,
-- readn): false while they cannot
local function join_ready(self)
  if self.pending == 0 then return true end
  local ready
  if self.kind == "line" then
    ready = self.newline or self:buffered() > self.lim.max_inline + 2
  else
    ready = self:buffered() >= self.need
  end
  if ready then join(self) end
  return ready
end

--- Decodes one value from what is buffered, without I/O: value, or
--- nil, "incomplete", or nil, "protocol error: ...".
function Reader:tryread()
  if self.qn > 0 then return dequeue(self) end
  if self.err then return nil, self.err end
  if not join_ready(self) then return nil, INCOMPLETE end
  if self.cfg and self.st.depth == 0 and batch(self) then return dequeue(self) end
  local start = self.pos
  local v, np, at, last, kind = parse(self.st, self.buf, self.pos, self.lim)
  if v ~= nil then
    if np > #self.buf then self.buf, np = "", 1 end
    self.pos = np
    return v
  end
  if np ~= INCOMPLETE then
    self.err = np
    self.st = new_state()
    self.buf, self.pos = "", 1
    return nil, np
  end
  self.st.used = self.st.used + (at - start) -- the value's finished elements
  self.pos = at
  self.need = last - at + 1
  self.kind = kind
  self.newline = false
  return nil, INCOMPLETE
end

--- Reads one chunk from the conn into the buffer: true, or nil, err.
function Reader:fill()
  local data, err = self.conn:read()
  if not data then return nil, err end
  local n = self.nchunks + 1
  self.chunks[n] = data
  self.nchunks = n
  self.pending = self.pending + #data
  if not self.newline and find(data, "\n", 1, true) then self.newline = true end
  return true
end

--- Reads one value: the value, or nil, err (a protocol error, or the
--- conn's "eof", "closed", "timeout", ...).
-- The fast path of read() on the Lua reader (the C one's batch is faster
-- even for one reply) for the commonest replies: a simple string, an
-- integer or a bulk string complete in the joined buffer, at the top level
-- and with nothing pending. Anything else, or anything it is unsure of (a
-- limit, a malformed line), returns nil and is left to parse(), which
-- decides; the value and position it gives are the ones parse() would.
local function quick(self)
  local buf, pos, lim = self.buf, self.pos, self.lim
  local c = byte(buf, pos)
  local v, np
  if c == 43 then -- '+'
    local nl = find(buf, "\n", pos + 1, true)
    if not nl or nl - pos - 1 > lim.max_inline or byte(buf, nl - 1) ~= 13 then return nil end
    v, np = sub(buf, pos + 1, nl - 2), nl + 1
  elseif c == 36 then -- '$': the length's digits read by hand (no leading zeros)
    local n, i = 0, pos + 1
    local b = byte(buf, i)
    if b == 48 then
      i = i + 1
    elseif b and b > 48 and b <= 57 then
      repeat
        n = n * 10 + (b - 48)
        i = i + 1
        b = byte(buf, i)
      until not b or b < 48 or b > 57 or i - pos > 12
    elseif b == 45 and byte(buf, i + 1) == 49 and byte(buf, i + 2) == 13
      and byte(buf, i + 3) == 10 then -- "$-1\r\n"
      v, np = null, i + 4
    else
      return nil
    end
    if v == nil then
      if n > lim.max_bulk or byte(buf, i) ~= 13 or byte(buf, i + 1) ~= 10 then return nil end
      local after = i + 2
      local stop = after + n
      if stop + 2 - pos > lim.max_value or stop + 1 > #buf
        or byte(buf, stop) ~= 13 or byte(buf, stop + 1) ~= 10 then return nil end
      v, np = sub(buf, after, stop - 1), stop + 2
    end
  elseif c == 58 then -- ':' (up to 18 digits here; longer ones go to parse)
    local i, sign = pos + 1, 1
    local b = byte(buf, i)
    if b == 45 then sign, i = -1, i + 1; b = byte(buf, i) end
    if not b or b < 48 or b > 57 then return nil end
    local n, first = 0, i
    repeat
      n = n * 10 + (b - 48)
      i = i + 1
      b = byte(buf, i)
    until not b or b < 48 or b > 57
    if i - first > 18 or b ~= 13 or byte(buf, i + 1) ~= 10 then return nil end
    v, np = sign * n, i + 2
  else
    return nil
  end
  if np > #buf then self.buf, np = "", 1 end
  self.pos = np
  return v
end

-- nothing is buffered: the next chunk completes whatever line it ends, as
-- parse() says at the end of the buffer ("incomplete", kind "line")
local function expect_line(self)
  self.kind, self.need, self.newline = "line", 1, false
end

function Reader:read()
  if self.qn > 0 then return dequeue(self) end
  if self.cfg == nil and self.pending == 0 and self.st.depth == 0 and not self.err then
    local v = quick(self)
    if v ~= nil then return v end
  end
  while true do
    local v, err
    if self.pending == 0 and self.pos > #self.buf and self.st.depth == 0 and not self.err then
      expect_line(self) -- what tryread would find, without the parse
    else
      v, err = self:tryread()
      if v ~= nil then return v end
      if err ~= INCOMPLETE then return nil, err end
    end
    local ok, rerr = self:fill()
    if not ok then return nil, rerr end
  end
end

-- readn's steps: each moves values into t (nil: none yet) after the `got`
-- already there and returns t, the new count and how many of the values
-- it moved are tables.

-- the values decoded ahead by an earlier read()
local function take_queued(self, t, got, count)
  t = t or {}
  local tables = 0
  while self.qn > 0 and got < count do
    local v = dequeue(self)
    got = got + 1
    t[got] = v
    if type(v) == "table" then tables = tables + 1 end
  end
  return t, got, tables
end

-- the complete values in the joined buffer, by the C reader, straight into
-- t (which it makes, sized for them, when there is none yet)
local function take_batch(self, t, got, count)
  local k, np, tables, q = cparse.batch(self.cfg, self.buf, self.pos, t, nil, count - got, got)
  if k == 0 then return t, got, 0 end
  if np > #self.buf then self.buf, np = "", 1 end
  self.pos = np
  return q, got + k, tables
end

-- one value as read() reads it (the Lua parser's, or a conn error)
local function take_one(self, t, got)
  local v, err = self:read()
  if v == nil then return nil, err end
  t = t or {}
  t[got + 1] = v
  return t, got + 1, type(v) == "table" and 1 or 0
end

--- The complete commands at the front of the buffer into reused tables
--- (see the header): how many, 0 when tryread() must take the next value.
--- With nothing buffered it resets the wait to "a line" (what tryread()
--- would find), so a caller may fill() straight away, and empties the
--- tables when the last batch held more than POOL_HOLD bytes (an idle
--- connection keeps no big strings alive).
local POOL_HOLD = 64 * 1024
function Reader:commands(pool, argc, max)
  if self.qn > 0 or self.err or self.st.depth > 0 then return 0 end
  if self.pending == 0 and self.pos > #self.buf then
    expect_line(self)
    if self.held > POOL_HOLD then
      ccommands(self.cfg, "", 1, pool, argc) -- 0 commands: every table emptied
      self.held = 0
    end
    return 0
  end
  if not self.cfg then return 0 end
  if self.pending > 0 and not join_ready(self) then return 0 end
  local pos = self.pos
  local k, np = ccommands(self.cfg, self.buf, pos, pool, argc, max)
  if k > 0 then
    self.held = np - pos
    if np > #self.buf then self.buf, np = "", 1 end
    self.pos = np
  end
  return k
end

-- the next chunk when nothing at all is buffered
local function fill_empty(self)
  expect_line(self)
  return self:fill()
end

--- Reads `count` values into one table: {v1, ..., vcount}, and how many
--- of them are tables (arrays, errors, nulls: a caller that maps those can
--- skip the scan when there are none); or nil, err as read() gives it (the
--- values read before the error are dropped). The same values as `count`
--- read() calls: on the C reader, what is buffered is decoded straight
--- into the table, one C call per chunk received.
function Reader:readn(count)
  local t, got, tables = nil, 0, 0
  while got < count do
    local before, more = got, 0
    if self.qn > 0 then
      t, got, more = take_queued(self, t, got, count)
    elseif self.cfg and not self.err and self.st.depth == 0 and join_ready(self) then
      if self.pos > #self.buf then
        local ok, err = fill_empty(self)
        if not ok then return nil, err end
        before = -1 -- nothing to take yet
      else
        t, got, more = take_batch(self, t, got, count)
      end
    end
    if got == before then -- left to the Lua parser
      t, got, more = take_one(self, t, got)
      if not t then return nil, got end
    end
    tables = tables + more
  end
  return t or {}, tables
end

return resp
