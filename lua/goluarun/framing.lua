-- framing: message framing over a goluarun conn.
--
--   local framing = require "goluarun.framing"
--   local f = framing.lenprefix(conn, {size = 2, max = 65535})  -- 1/2/4-byte big-endian length
--   local f = framing.delimited(conn, "\r\n", {max = 4096})     -- records ended by a delimiter
--   local f = framing.fixed(conn, 16)                           -- records of exactly n bytes
--   f:read()          --> payload | nil, err
--   f:write(payload)  --> bytes written | nil, err, written   (raises if the payload cannot be framed)
--
--   framing.encode_len(payload, size)       --> header .. payload (raises if it does not fit)
--   framing.decode_len(buf, size [, max])   --> payload, rest | nil, "incomplete" | nil, "frame too large"
--
-- Errors from f:read(): "frame too large" (a declared length above `max`, or
-- a delimited record longer than `max`), otherwise the conn's own ("eof",
-- "closed", "timeout", "connection reset", ...), with the bytes of an
-- unfinished frame as the third value when the conn hands them back. After
-- "frame too large" the stream may have lost its place (a length-prefixed
-- body was not read; an over-long record may be only partly consumed), so
-- every later read of that framer returns the same error: close the conn.
--
-- No allocation follows a declared size: a payload is read in pieces of at
-- most 64 KiB, so memory grows with the bytes actually received.
local framing = {}

local pack, unpack, sub, find = string.pack, string.unpack, string.sub, string.find
local concat, mtype = table.concat, math.type

local PIECE = 64 * 1024
local SIZE_MAX = { [1] = 0xff, [2] = 0xffff, [4] = 0xffffffff }
local TOO_LARGE = "frame too large"

local function check_size(size, level)
  local m = SIZE_MAX[size]
  if not m then error("framing: size must be 1, 2 or 4, got " .. tostring(size), level + 1) end
  return m
end

local function check_max(max, limit, level)
  if max == nil then return limit end
  if mtype(max) ~= "integer" or max < 0 then
    error("framing: max must be a non-negative integer", level + 1)
  end
  if max > limit then return limit end
  return max
end

local function check_conn(conn, level)
  if conn == nil then error("framing: conn expected", level + 1) end
  return conn
end

---------------------------------------------------------------------------
-- Pure functions on strings
---------------------------------------------------------------------------

--- header .. payload, the header being #payload as a `size`-byte big-endian
--- integer. Raises if the payload does not fit the size field.
function framing.encode_len(payload, size)
  if type(payload) ~= "string" then error("framing.encode_len: string expected", 2) end
  local m = check_size(size, 2)
  if #payload > m then
    error(string.format("framing: payload of %d bytes exceeds the %d-byte length field",
      #payload, size), 2)
  end
  return pack(">I" .. size, #payload) .. payload
end

--- Decodes the frame at the start of `buf`: payload, rest; or nil,
--- "incomplete" when buf ends before the frame does; or nil,
--- "frame too large" when the header declares more than `max` bytes.
function framing.decode_len(buf, size, max)
  if type(buf) ~= "string" then error("framing.decode_len: string expected", 2) end
  local m = check_size(size, 2)
  max = check_max(max, m, 2)
  if #buf < size then return nil, "incomplete" end
  local n = unpack(">I" .. size, buf)
  if n > max then return nil, TOO_LARGE end
  if #buf < size + n then return nil, "incomplete" end
  return sub(buf, size + 1, size + n), sub(buf, size + n + 1)
end

---------------------------------------------------------------------------
-- Reading n bytes without allocating n up front
---------------------------------------------------------------------------

-- conn:read(n) reserves n bytes before any arrive, so a large n is read in
-- pieces. Returns the data, or nil, err, partial.
local function read_exact(conn, n)
  if n <= PIECE then
    local d, err, partial = conn:read(n)
    if d then return d end
    return nil, err, partial
  end
  local parts, got = {}, 0
  while got < n do
    local want = n - got
    if want > PIECE then want = PIECE end
    local d, err, partial = conn:read(want)
    if not d then
      parts[#parts + 1] = partial
      return nil, err, concat(parts)
    end
    parts[#parts + 1] = d
    got = got + #d
  end
  return concat(parts)
end

---------------------------------------------------------------------------
-- Length-prefixed frames
---------------------------------------------------------------------------

local LenPrefix = {}
LenPrefix.__index = LenPrefix
LenPrefix.__name = "framing.lenprefix"

--- Length-prefixed framer: opts.size (1, 2 or 4; default 4), opts.max
--- (largest payload accepted or sent; default and limit: what the size
--- field holds).
function framing.lenprefix(conn, opts)
  check_conn(conn, 2)
  opts = opts or {}
  local size = opts.size or 4
  local m = check_size(size, 2)
  return setmetatable({
    conn = conn, size = size, max = check_max(opts.max, m, 2),
    fmt = ">I" .. size,
  }, LenPrefix)
end

function LenPrefix:read()
  if self.err then return nil, self.err end
  local h, err, partial = self.conn:read(self.size)
  if not h then return nil, err, partial end
  local n = unpack(self.fmt, h)
  if n > self.max then
    self.err = TOO_LARGE
    return nil, TOO_LARGE
  end
  if n == 0 then return "" end
  local d, rerr, rpartial = read_exact(self.conn, n)
  if not d then return nil, rerr, h .. (rpartial or "") end
  return d
end

function LenPrefix:write(payload)
  if type(payload) ~= "string" then error("framing: payload must be a string", 2) end
  if #payload > self.max then
    error(string.format("framing: payload of %d bytes exceeds max %d", #payload, self.max), 2)
  end
  return self.conn:write(pack(self.fmt, #payload), payload)
end

---------------------------------------------------------------------------
-- Delimited records
---------------------------------------------------------------------------

local Delimited = {}
Delimited.__index = Delimited
Delimited.__name = "framing.delimited"

--- Records ended by `delim` (not included in the record); opts.max: longest
--- record (default 64 KiB). Sets the conn's line limit (conn:setlimit).
function framing.delimited(conn, delim, opts)
  check_conn(conn, 2)
  if type(delim) ~= "string" or #delim == 0 then
    error("framing.delimited: non-empty delimiter expected", 2)
  end
  opts = opts or {}
  local max = check_max(opts.max or 64 * 1024, 1 << 40, 2)
  local self = setmetatable({ conn = conn, delim = delim, max = max }, Delimited)
  -- the conn fails a record only when it is longer than the limit, or when
  -- `limit` bytes are buffered with no delimiter: with max + #delim, the
  -- latter means the record is longer than max, whatever the read sizes
  conn:setlimit(max + #delim)
  return self
end

function Delimited:read()
  local conn = self.conn
  if self.err then return nil, self.err end
  conn:setlimit(self.max + #self.delim) -- another user of the conn may have changed it
  local r, err, partial = conn:readuntil(self.delim)
  if r then
    if #r <= self.max then return r end
    err, partial = "line too long", r
  end
  if err == "line too long" then
    self.err = TOO_LARGE
    return nil, TOO_LARGE, partial
  end
  return nil, err, partial
end

function Delimited:write(payload)
  if type(payload) ~= "string" then error("framing: payload must be a string", 2) end
  if #payload > self.max then
    error(string.format("framing: record of %d bytes exceeds max %d", #payload, self.max), 2)
  end
  if find(payload, self.delim, 1, true) then
    error("framing: record contains the delimiter", 2)
  end
  return self.conn:write(payload, self.delim)
end

---------------------------------------------------------------------------
-- Fixed-length records
---------------------------------------------------------------------------

local Fixed = {}
Fixed.__index = Fixed
Fixed.__name = "framing.fixed"

--- Records of exactly n bytes (n >= 1).
function framing.fixed(conn, n)
  check_conn(conn, 2)
  if mtype(n) ~= "integer" or n < 1 then
    error("framing.fixed: positive integer size expected", 2)
  end
  return setmetatable({ conn = conn, n = n }, Fixed)
end

function Fixed:read()
  return read_exact(self.conn, self.n)
end

function Fixed:write(payload)
  if type(payload) ~= "string" then error("framing: payload must be a string", 2) end
  if #payload ~= self.n then
    error(string.format("framing: record of %d bytes, expected %d", #payload, self.n), 2)
  end
  return self.conn:write(payload)
end

return framing
