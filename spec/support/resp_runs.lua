-- resp_runs.lua — the reader runs that the differential spec
-- (spec/resp_diff_spec.lua) and the libFuzzer harness (spec/fuzz/resp_diff.lua)
-- compare: the same pieces through the C or the Lua reader, by read(),
-- tryread()/fill(), rd:commands or readn(k), each rendered as one string.
--   M.pieces_conn(pieces), M.render(v),
--   M.reader(native, pieces, limits, use_try, max) -> string, rd
--   M.readn(native, pieces, limits, sizes) -> string
--   M.grouped_reads(pieces, limits, sizes) -> string (what readn must give)
local resp = require "goluarun.resp"

local null, null_array = resp.null, resp.null_array
local concat = table.concat

local M = {}

-- a conn-like object handing out the given pieces, then eof
function M.pieces_conn(pieces)
  local k = 0
  return {
    read = function()
      k = k + 1
      if pieces[k] == nil then return nil, "eof" end
      return pieces[k]
    end,
  }
end

-- a value rendered as one string (tables by sorted keys)
function M.render(v)
  if v == null then return "N" end
  if v == null_array then return "NA" end
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t == "number" then return math.type(v) .. ":" .. v end
  if t ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. M.render(x) end
  table.sort(parts)
  return "{" .. concat(parts, ",") .. "}"
end

-- a reader of the pieces: the C one (native) or the Lua reference
local function reader_of(native, pieces, limits)
  local saved = resp.native
  resp.native = native
  local rd = resp.reader(M.pieces_conn(pieces), limits)
  resp.native = saved
  return rd
end

-- rd:commands into reused tables (at most max a call), each rendered as
-- read() renders the command (a slot left from an earlier command shows);
-- false when it took none
local function take_commands(rd, c, out)
  local k = rd:commands(c.pool, c.argc, c.max)
  for i = 1, k do
    local a = c.pool[i]
    if c.argc[i] ~= #a then error(("commands: argc %s for %d words"):format(c.argc[i], #a)) end
    out[#out + 1] = M.render(a)
  end
  return k > 0
end

-- every result of a reader until its first error, rendered as one string,
-- and the reader. use_try: false (read), true (tryread/fill), "commands"
-- (commands first, at most max a call)
function M.reader(native, pieces, limits, use_try, max)
  local rd = reader_of(native, pieces, limits)
  local out = {}
  local c = { pool = {}, argc = {}, max = max }
  for _ = 1, 10000 do
    local v, err
    if use_try == "commands" and take_commands(rd, c, out) then
      -- taken: the next
    elseif use_try then
      v, err = rd:tryread()
      if err == "incomplete" then
        local ok, ferr = rd:fill()
        if not ok then err = ferr else err = nil end
      end
    else
      v, err = rd:read()
    end
    if v ~= nil then
      out[#out + 1] = M.render(v)
    elseif err then
      out[#out + 1] = "error " .. err
      return concat(out, "\n"), rd
    end
  end
  error("reader did not stop")
end

-- rd:readn(k) calls, k cycling through `sizes`, rendered as run_reader does;
-- each table is checked: exactly k values, `tables` of them tables
function M.readn(native, pieces, limits, sizes)
  local rd = reader_of(native, pieces, limits)
  local out = {}
  for i = 1, 10000 do
    local k = sizes[i % #sizes + 1]
    local t, tables = rd:readn(k)
    if not t then
      out[#out + 1] = "error " .. tables
      return concat(out, "\n")
    end
    local n, ntab = 0, 0
    for _, v in pairs(t) do
      n = n + 1
      if type(v) == "table" then ntab = ntab + 1 end
    end
    assert(n == k and #t == k, "readn gave " .. n .. " values for " .. k)
    assert(ntab == tables, "readn counted " .. tables .. " tables of " .. ntab)
    for j = 1, k do out[#out + 1] = M.render(t[j]) end
  end
  error("reader did not stop")
end

-- what readn must give: the Lua reader's read() results taken k at a time,
-- a group cut short by an error dropped
function M.grouped_reads(pieces, limits, sizes)
  local rd = reader_of(false, pieces, limits)
  local out = {}
  for i = 1, 10000 do
    local k, group = sizes[i % #sizes + 1], {}
    for j = 1, k do
      local v, err = rd:read()
      if v == nil then
        out[#out + 1] = "error " .. err
        return concat(out, "\n")
      end
      group[j] = M.render(v)
    end
    for j = 1, k do out[#out + 1] = group[j] end
  end
  error("reader did not stop")
end

return M
