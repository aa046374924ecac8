-- json.lua: a small JSON encoder and an LPeg decoder (RFC 8259).
--
--   local json = require "goluarun.json"
--   json.encode(value [, opts]) -> string      (raises on values JSON cannot hold)
--   json.decode(text)           -> value | nil, "json: <what> at byte N"
--   json.null                   the value JSON null decodes to / encodes from
--   json.array(t)               marks t as an array (so {} encodes as [])
--   json.object(t)              marks t as an object (so {} encodes as {})
--
-- Encoding: nil and json.null -> null; booleans; integers as integers;
-- floats with %.17g (shortest form that reads back the same when
-- possible; NaN and infinities raise); strings must be valid UTF-8 and
-- are escaped ("\"", "\\", control characters); a table whose keys are
-- exactly 1..n (n >= 1) is an array, otherwise an object whose keys must
-- be strings or numbers (numbers are written as strings). An empty table
-- is an object unless marked with json.array. Object keys are written in
-- sorted order when opts.sort is true (default: table order).
-- Cycles and nesting deeper than 200 raise. opts.indent (string) pretty
-- prints.
--
-- Decoding: objects -> tables, arrays -> tables (sequence, marked with
-- json.array so they encode back as arrays), null -> json.null, numbers
-- without fraction/exponent that fit in an integer -> integers, other
-- numbers -> floats, \uXXXX escapes (surrogate pairs too) -> UTF-8.
-- Leading/trailing whitespace is allowed; anything else after the value
-- is an error. Nesting deeper than 90 is an error ("json: nesting too
-- deep").
local lpeg = require "lpeg"

local P, R, S, C, Cc, Ct, Cp, Cmt, V =
  lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cc, lpeg.Ct, lpeg.Cp, lpeg.Cmt, lpeg.V
local type, pairs, tostring, tonumber, error, pcall, setmetatable,
  getmetatable, rawequal = type, pairs, tostring, tonumber, error, pcall,
  setmetatable, getmetatable, rawequal
local math_type, huge, tointeger = math.type, math.huge, math.tointeger
local format, gsub, byte, char, rep = string.format, string.gsub, string.byte,
  string.char, string.rep
local concat, sort = table.concat, table.sort
local utf8_len, utf8_char = utf8.len, utf8.char

local M = {}

local MAXDEPTH = 200        -- encoder
local DECODE_MAXDEPTH = 90 -- decoder (LPeg nests captures at most 200 deep)

-- json.null: a unique sentinel
M.null = setmetatable({}, {
  __tostring = function() return "json.null" end,
  __newindex = function() error("json.null is read-only", 2) end,
})
local null = M.null

local ARRAY = { __name = "json.array" }
local OBJECT = { __name = "json.object" }

function M.array(t)
  t = t or {}
  if type(t) ~= "table" then error("json.array: table expected", 2) end
  return setmetatable(t, ARRAY)
end

function M.object(t)
  t = t or {}
  if type(t) ~= "table" then error("json.object: table expected", 2) end
  return setmetatable(t, OBJECT)
end

---------------------------------------------------------------------------
-- Encoder
---------------------------------------------------------------------------

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
for i = 0, 31 do
  local c = char(i)
  if not ESC[c] then ESC[c] = format("\\u%04x", i) end
end
ESC["\127"] = "\\u007f"

local function quote(s)
  if not utf8_len(s) then
    error("json.encode: string is not valid UTF-8", 0)
  end
  return '"' .. gsub(s, '[%c"\\]', ESC) .. '"'
end

local function number(x)
  if math_type(x) == "integer" then return format("%d", x) end
  if x ~= x or x == huge or x == -huge then
    error("json.encode: cannot encode " .. tostring(x), 0)
  end
  -- the shortest of %.14g .. %.17g that reads back as the same double
  for prec = 14, 17 do
    local s = format("%." .. prec .. "g", x)
    if prec == 17 or tonumber(s) == x then return s end
  end
end

-- kind(t): "array", n  or  "object"
local function kind(t)
  local mt = getmetatable(t)
  if mt == ARRAY then return "array", #t end
  if mt == OBJECT then return "object" end
  local n = #t
  if n == 0 then return "object" end
  -- an array iff the keys are exactly 1..n
  local count = 0
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 or k > n then return "object" end
    count = count + 1
  end
  if count ~= n then return "object" end
  return "array", n
end

local encode_value

local function keystr(k)
  local tk = type(k)
  if tk == "string" then return k end
  if tk == "number" then return number(k) end
  error("json.encode: object key of type " .. tk, 0)
end

local function encode_table(t, buf, n, seen, depth, opts)
  if seen[t] then error("json.encode: circular reference", 0) end
  if depth > MAXDEPTH then error("json.encode: nesting too deep", 0) end
  seen[t] = true
  local indent = opts and opts.indent
  local nl, pad, padin, colon
  if indent then
    nl = "\n"
    pad = rep(indent, depth - 1)
    padin = pad .. indent
    colon = ": "
  else
    nl, pad, padin, colon = "", "", "", ":"
  end
  local k, len = kind(t)
  if k == "array" then
    if len == 0 then
      n = n + 1; buf[n] = "[]"
    else
      n = n + 1; buf[n] = "[" .. nl
      for i = 1, len do
        if i > 1 then n = n + 1; buf[n] = "," .. nl end
        n = n + 1; buf[n] = padin
        n = encode_value(t[i], buf, n, seen, depth + 1, opts)
      end
      n = n + 1; buf[n] = nl .. pad .. "]"
    end
  else
    local keys = {}
    local nk = 0
    for key in pairs(t) do
      nk = nk + 1
      keys[nk] = keystr(key)
    end
    if nk == 0 then
      n = n + 1; buf[n] = "{}"
    else
      local orig = {}
      for key in pairs(t) do orig[keystr(key)] = key end
      if opts and opts.sort then sort(keys) end
      n = n + 1; buf[n] = "{" .. nl
      for i = 1, nk do
        if i > 1 then n = n + 1; buf[n] = "," .. nl end
        local ks = keys[i]
        n = n + 1; buf[n] = padin .. quote(ks) .. colon
        n = encode_value(t[orig[ks]], buf, n, seen, depth + 1, opts)
      end
      n = n + 1; buf[n] = nl .. pad .. "}"
    end
  end
  seen[t] = nil
  return n
end

encode_value = function(v, buf, n, seen, depth, opts)
  local tv = type(v)
  local s
  if tv == "string" then
    s = quote(v)
  elseif tv == "number" then
    s = number(v)
  elseif tv == "boolean" then
    s = v and "true" or "false"
  elseif v == nil or rawequal(v, null) then
    s = "null"
  elseif tv == "table" then
    return encode_table(v, buf, n, seen, depth, opts)
  else
    error("json.encode: cannot encode a " .. tv, 0)
  end
  n = n + 1
  buf[n] = s
  return n
end

--- json.encode(value [, opts]) -> string; raises on values JSON cannot
--- represent (functions, NaN, cycles, invalid UTF-8, ...).
function M.encode(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("json.encode: opts must be a table", 2)
  end
  local tv = type(v)
  if tv == "string" then
    local ok, s = pcall(quote, v)
    if not ok then error(s, 2) end
    return s
  elseif tv == "number" then
    local ok, s = pcall(number, v)
    if not ok then error(s, 2) end
    return s
  end
  local buf = {}
  local ok, n = pcall(encode_value, v, buf, 0, {}, 1, opts)
  if not ok then error(n, 2) end
  return concat(buf, "", 1, n)
end

---------------------------------------------------------------------------
-- Decoder (LPeg)
---------------------------------------------------------------------------

local ws = S" \t\r\n"^0

-- numbers
local digit = R"09"
local int = P"-"^-1 * (P"0" + R"19" * digit^0)
local frac = P"." * digit^1
local exp = S"eE" * S"+-"^-1 * digit^1
local function tonum(s)
  if not s:find("[.eE]") then
    local i = tointeger(tonumber(s))
    -- integers that do not fit come back as floats from tonumber
    if i and math_type(tonumber(s)) == "integer" then return i end
  end
  return tonumber(s) + 0.0
end
local number_p = C(int * frac^-1 * exp^-1) / tonum

-- strings
local function utf8_of(cp) return utf8_char(cp) end
local hex4 = C(R("09", "af", "AF") * R("09", "af", "AF") * R("09", "af", "AF")
  * R("09", "af", "AF")) / function(h) return tonumber(h, 16) end
local function surrogate(hi, lo)
  return utf8_of(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
end
local pair = Cmt(P"\\u" * hex4 * P"\\u" * hex4, function(_, pos, hi, lo)
  if hi >= 0xD800 and hi <= 0xDBFF and lo >= 0xDC00 and lo <= 0xDFFF then
    return pos, surrogate(hi, lo)
  end
  return false
end)
local single = Cmt(P"\\u" * hex4, function(_, pos, cp)
  if cp >= 0xD800 and cp <= 0xDFFF then return false end -- lone surrogate
  return pos, utf8_of(cp)
end)
local simple_esc = P"\\" * C(S'"\\/bfnrt') / {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t",
}
local plain = C((P(1) - S'"\\' - R"\0\31")^1)
local string_p = P'"' * Ct((plain + simple_esc + pair + single)^0) / concat * P'"'

-- The grammar is recursive; the nesting depth is checked before decoding
-- with a cheap scan (depth_ok), so LPeg's backtrack stack cannot overflow.
local function mkarray(t) return setmetatable(t, ARRAY) end
local function mkobject(t)
  local o = {}
  for i = 1, #t, 2 do o[t[i]] = t[i + 1] end
  return o
end

local grammar = P{
  "doc",
  doc = ws * V"value" * ws * Cp(),
  value = V"object" + V"array" + string_p + number_p
    + P"true" * Cc(true) + P"false" * Cc(false) + P"null" * Cc(null),
  member = ws * string_p * ws * P":" * ws * V"value" * ws,
  object = P"{" * Ct((V"member" * (P"," * V"member")^0)^-1 + ws) / mkobject
    * P"}",
  elem = ws * V"value" * ws,
  array = P"[" * Ct((V"elem" * (P"," * V"elem")^0)^-1 + ws) / mkarray * P"]",
}

-- maximum nesting, counting brackets outside strings
local function depth_ok(s)
  if not s:find("[%[{]") then return true end
  local d, i, n = 0, 1, #s
  while i <= n do
    local b = byte(s, i)
    if b == 34 then -- '"': skip the string
      i = i + 1
      while i <= n do
        local c = byte(s, i)
        if c == 92 then i = i + 2
        elseif c == 34 then break
        else i = i + 1 end
      end
    elseif b == 91 or b == 123 then
      d = d + 1
      if d > DECODE_MAXDEPTH then return false end
    elseif b == 93 or b == 125 then
      d = d - 1
    end
    i = i + 1
  end
  return true
end

--- json.decode(text) -> value, or nil, "json: ..." for malformed text.
function M.decode(s)
  if type(s) ~= "string" then
    error("json.decode: string expected, got " .. type(s), 2)
  end
  if not depth_ok(s) then return nil, "json: nesting too deep" end
  local v, pos = grammar:match(s)
  if pos == nil then
    return nil, "json: syntax error"
  end
  if pos <= #s then
    return nil, format("json: unexpected data at byte %d", pos)
  end
  return v
end

--- json.isarray(t): was t marked with json.array (or decoded from [...])?
function M.isarray(t) return getmetatable(t) == ARRAY end

return M
