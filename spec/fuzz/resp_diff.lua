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
-- commands through rd:commands (reused tables) before tryread(). The runs
-- are spec/support/resp_runs.lua's, shared with resp_diff_spec.
local resp = require "goluarun.resp"
local cparse = require "goluarun.respparse"

local R = require "support.resp_runs"

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
    local want = R.reader(false, pieces, limits, use_try and true)
    local got = R.reader(true, pieces, limits, use_try, #pieces + 1)
    if got ~= want then
      error(("C and Lua readers differ on %q cut at %d:\nC:\n%s\nLua:\n%s")
        :format(s, cut, got, want))
    end
  end
  local k = (data:byte(1) >> 5) + 1
  local want = R.grouped_reads(pieces, limits, { k })
  for _, native in ipairs({ true, false }) do
    local got = R.readn(native, pieces, limits, { k })
    if got ~= want then
      error(("readn(%d) (native %s) differs from read() on %q cut at %d:\nreadn:\n%s\nread:\n%s")
        :format(k, tostring(native), s, cut, got, want))
    end
  end
  check_writer(s)
end
