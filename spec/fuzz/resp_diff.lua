-- resp_diff.lua — the Lua half of the libFuzzer target resp_diff.c: returns
-- a function(data) that raises if the C RESP reader (goluarun.respparse
-- under resp.reader) and the Lua reference reader in resp.lua give
-- different results for the same bytes. data: byte 1 picks the limits
-- (odd: small random-ish ones), byte 2 where the input is cut in two
-- pieces, the rest is the input. Both readers read the same pieces,
-- through read() and through tryread()/fill().
local resp = require "goluarun.resp"

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

local function run(native, pieces, limits, use_try)
  resp.native = native
  local rd = resp.reader(pieces_conn(pieces), limits)
  local out = {}
  while true do
    local v, err
    if use_try then
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
  for _, use_try in ipairs({ false, true }) do
    local want = run(false, pieces, limits, use_try)
    local got = run(true, pieces, limits, use_try)
    if got ~= want then
      error(("C and Lua readers differ on %q cut at %d:\nC:\n%s\nLua:\n%s")
        :format(s, cut, got, want))
    end
  end
end
