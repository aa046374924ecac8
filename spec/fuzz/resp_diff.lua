-- resp_diff.lua — the Lua half of the libFuzzer target resp_diff.c: returns
-- a function(data) that raises if the C RESP reader (goluarun.respparse
-- under resp.reader) and the Lua reference reader in resp.lua give
-- different results for the same bytes. data: byte 1 picks the limits
-- (odd: small random-ish ones) and, in its top 3 bits, how many values a
-- readn() takes; byte 2 where the input is cut in two pieces, the rest is
-- the input. Both readers read the same pieces, through read(), through
-- tryread()/fill() and through readn(), which must give read()'s values k
-- at a time. The same bytes, cut into words at each "\1", are a command
-- for the C writer (respparse.command, a wbuf's append), which must write
-- resp.encode's bytes or name the first word it leaves. A third run takes
-- commands through rd:commands (reused tables) before tryread().
local resp = require "goluarun.resp"
local cparse = require "goluarun.respparse"

local null, null_array = resp.null, resp.null_array
local concat = table.concat

local function render(v)
  if v == null then return "N" end
  if v == null_array then return "NA" end
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t == "number" then return math.type(v) .. ":" .. v end
  if t ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. render(x) end
  table.sort(parts)
  return "{" .. concat(parts, ",") .. "}"
end

local function pieces_conn(pieces)
  local k = 0
  return { read = function()
    k = k + 1
    if pieces[k] == nil then return nil, "eof" end
    return pieces[k]
  end }
end

-- rd:commands into reused tables (at most max a call), each rendered as
-- read() renders the command (a slot left from an earlier command shows);
-- false when it took none
local function take_commands(rd, c, out)
  local k = rd:commands(c.pool, c.argc, c.max)
  for i = 1, k do
    local a = c.pool[i]
    if c.argc[i] ~= #a then error(("commands: argc %s for %d words"):format(c.argc[i], #a)) end
    out[#out + 1] = render(a)
  end
  return k > 0
end

-- use_try: false (read), true (tryread/fill), "commands" (commands first)
local function run(native, pieces, limits, use_try)
  resp.native = native
  local rd = resp.reader(pieces_conn(pieces), limits)
  local out = {}
  local c = { pool = {}, argc = {}, max = #pieces + 1 }
  while true do
    local v, err
    if use_try == "commands" and take_commands(rd, c, out) then
      -- taken: the next
    elseif use_try then
      v, err = rd:tryread()
      if err == "incomplete" then
        local ok, ferr = rd:fill()
        err = not ok and ferr or nil
      end
    else
      v, err = rd:read()
    end
    if v ~= nil then out[#out + 1] = render(v)
    elseif err then
      out[#out + 1] = "error " .. err
      return concat(out, "\n")
    end
  end
end

-- readn(k) until an error, each table rendered value by value
local function run_readn(native, pieces, limits, k)
  resp.native = native
  local rd = resp.reader(pieces_conn(pieces), limits)
  local out = {}
  while true do
    local t, tables = rd:readn(k)
    if not t then
      out[#out + 1] = "error " .. tables
      return concat(out, "\n")
    end
    local ntab = 0
    for j = 1, k do
      out[#out + 1] = render(t[j])
      if type(t[j]) == "table" then ntab = ntab + 1 end
    end
    if #t ~= k or ntab ~= tables then error(("readn(%d): %d values, %d tables of %d"):format(k, #t, tables, ntab)) end
  end
end

-- read() values k at a time, a group cut short by the error dropped
local function grouped_reads(pieces, limits, k)
  resp.native = false
  local rd = resp.reader(pieces_conn(pieces), limits)
  local out = {}
  while true do
    local group = {}
    for j = 1, k do
      local v, err = rd:read()
      if v == nil then
        out[#out + 1] = "error " .. err
        return concat(out, "\n")
      end
      group[j] = render(v)
    end
    table.move(group, 1, k, #out + 1, out)
  end
end

-- the words of a command made of s: pieces between "\1"; a piece that
-- starts with "#" and has 8 bytes more is an integer, "%" a float, "!" a
-- boolean. Returns the words, their count and the index of the first the
-- C writer leaves (0 the name) or nil.
local function words_of(s)
  local w, bad = {}, nil
  for piece in (s .. "\1"):gmatch("([^\1]*)\1") do
    local c, v = piece:sub(1, 1), piece
    if c == "#" and #piece >= 9 then
      v = string.unpack("<i8", piece, 2)
    elseif c == "%" and #piece >= 9 then
      v = string.unpack("<d", piece, 2)
    elseif c == "!" then
      v = true
    end
    w[#w + 1] = v
    if bad == nil and not (type(v) == "string" or (#w > 1 and math.type(v) == "integer")) then
      bad = #w - 1
    end
  end
  return w, #w, bad
end

local function check_writer(s)
  local w, n, bad = words_of(s)
  local got, i = cparse.command(table.unpack(w, 1, n))
  local p = { cparse.wbuf() }
  local k, ai = cparse.append(p, table.unpack(w, 1, n))
  local bytes, count = cparse.take(p[1])
  if bad then
    if got ~= nil or i ~= bad or k ~= nil or ai ~= bad or bytes ~= "" or count ~= 0 then
      error(("writer took %q: %s %s"):format(s, tostring(got), tostring(i)))
    end
    return
  end
  local want = resp.encode(table.move(w, 1, n, 1, { n = n }))
  if got ~= want or k ~= 1 or bytes ~= want or count ~= 1 then
    error(("writer on %q:\nC:   %q\nLua: %q"):format(s, tostring(got), want))
  end
end

local function limits_of(sel)
  if sel % 2 == 0 then return nil end
  return {
    max_bulk = sel % 7 * 3, max_value = sel % 13 * 8, max_array = sel % 5,
    max_inline = sel % 11 * 3, max_depth = sel % 4, inline = sel & 16 == 0,
  }
end

return function(data)
  if #data < 2 then return end
  local limits = limits_of(data:byte(1))
  local s = data:sub(3)
  local cut = data:byte(2) % (#s + 1)
  local pieces = {}
  if cut > 0 then pieces[1] = s:sub(1, cut) end
  if cut < #s then pieces[#pieces + 1] = s:sub(cut + 1) end
  for _, use_try in ipairs({ false, true, "commands" }) do
    local want = run(false, pieces, limits, use_try and true)
    local got = run(true, pieces, limits, use_try)
    if got ~= want then
      error(("C and Lua readers differ on %q cut at %d:\nC:\n%s\nLua:\n%s")
        :format(s, cut, got, want))
    end
  end
  local k = (data:byte(1) >> 5) + 1
  local want = grouped_reads(pieces, limits, k)
  for _, native in ipairs({ true, false }) do
    local got = run_readn(native, pieces, limits, k)
    if got ~= want then
      error(("readn(%d) (native %s) differs from read() on %q cut at %d:\nreadn:\n%s\nread:\n%s")
        :format(k, tostring(native), s, cut, got, want))
    end
  end
  check_writer(s)
end
