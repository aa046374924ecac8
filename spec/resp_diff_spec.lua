-- resp_diff_spec: differential test of the C RESP reader (goluarun.respparse,
-- used by resp.reader when resp.native is true) against the Lua reference
-- parser in resp.lua: for generated inputs (well-formed values of every
-- type, inline commands, mutated and truncated ones, random bytes) under
-- random limits, the same bytes give the same values in the same order and
-- then the same error (or "incomplete"), fed whole, byte by byte, and split
-- in two at every byte boundary. Bounded: a fixed seed and counts.
local resp = require "goluarun.resp"
local cparse = require "goluarun.respparse"

local null, null_array = resp.null, resp.null_array
local rand = math.random
local concat, char = table.concat, string.char

local R = require "support.resp_runs"
local pieces_conn, render = R.pieces_conn, R.render
local run_readn, grouped_reads = R.readn, R.grouped_reads

-- rd:commands takes at most 1 to 3 commands a call here
local function run_reader(native, pieces, limits, use_try)
  return R.reader(native, pieces, limits, use_try, #pieces % 3 + 1)
end

---------------------------------------------------------------------------
-- Generators
---------------------------------------------------------------------------

local function rand_text(max)
  local n, b = rand(0, max), {}
  local alphabet = { "a", "b", "Z", "0", "9", " ", "\r", "\n", "\0", "\t", "\"", "'", "\\", "-" }
  for i = 1, n do b[i] = alphabet[rand(#alphabet)] end
  return concat(b)
end

local function rand_word()
  local b = {}
  for i = 1, rand(1, 6) do b[i] = char(rand(97, 122)) end
  return concat(b)
end

local gen_value
local function gen_array(depth)
  local r = rand(10)
  if r == 1 then return "*-1\r\n" end
  local n = rand(0, depth > 2 and 2 or 4)
  local parts = { "*" .. n .. "\r\n" }
  for i = 1, n do parts[i + 1] = gen_value(depth + 1) end
  return concat(parts)
end

function gen_value(depth)
  local r = rand(depth > 3 and 6 or 7)
  if r == 1 then return "+" .. rand_text(6):gsub("[\r\n]", "") .. "\r\n" end
  if r == 2 then return "-ERR " .. rand_text(6):gsub("[\r\n]", "") .. "\r\n" end
  if r == 3 then
    local ints = { 0, -1, 42, math.maxinteger, math.mininteger, rand(-1000, 1000) }
    return ":" .. ints[rand(#ints)] .. "\r\n"
  end
  if r == 4 then return "$-1\r\n" end
  if r <= 6 then
    local s = rand_text(12)
    return "$" .. #s .. "\r\n" .. s .. "\r\n"
  end
  return gen_array(depth)
end

local function gen_command()
  local n = rand(1, 4)
  local parts = { "*" .. n .. "\r\n" }
  for i = 1, n do
    local s = i == 1 and rand_word() or rand_text(10)
    parts[i + 1] = "$" .. #s .. "\r\n" .. s .. "\r\n"
  end
  return concat(parts)
end

local function gen_inline()
  local forms = {
    function() return rand_word() .. " " .. rand_word() .. "\r\n" end,
    function() return "  " .. rand_word() .. "\t" .. rand_word() .. "  \n" end,
    function() return "\r\n" end,
    function() return rand_word() .. ' "a\\x41 b\\n" \'c\\\'d\'\r\n' end,
    function() return rand_word() .. ' "unbalanced\r\n' end,
    function() return rand_word() .. '"x"\r\n' end,
  }
  return forms[rand(#forms)]()
end

-- the corner lines: lengths and integers at and past their edges
local EDGES = {
  "$01\r\na\r\n", "$-2\r\n", "$-10\r\n", "$1\r\nab\r\n", "$1\r\na\n", "*01\r\n:1\r\n",
  ":9223372036854775807\r\n", ":9223372036854775808\r\n", ":-9223372036854775808\r\n",
  ":-9223372036854775809\r\n", ":00000000000000000000000012\r\n", ":-0\r\n", ":-\r\n",
  ":12\n", "+\r\n", "+\n", "-\r\n", "$99999999999999999999\r\n", "*99999999999999999999\r\n",
  "*1048577\r\n", "$536870913\r\n", "$0\r\n\r\n", "*0\r\n", "*3\r\n$1\r\na\r\n",
  "+a\rb\r\n", "\n", "x\0y\r\n",
}

local function mutate(s)
  local b = { s:byte(1, -1) }
  for _ = 1, rand(1, 3) do
    local r, i = rand(3), rand(#b + 1)
    if r == 1 and #b > 0 then
      b[math.min(i, #b)] = rand(0, 255)
    elseif r == 2 then
      table.insert(b, i, ({ 13, 10, 36, 42, 58, 43, 45, 48 })[rand(8)])
    elseif #b > 0 then
      table.remove(b, math.min(i, #b))
    end
  end
  return char(table.unpack(b))
end

local function gen_input()
  local parts = {}
  for i = 1, rand(1, 4) do
    local r = rand(10)
    if r <= 3 then
      parts[i] = gen_command()
    elseif r <= 6 then
      parts[i] = gen_value(0)
    elseif r <= 7 then
      parts[i] = gen_inline()
    elseif r <= 8 then
      parts[i] = EDGES[rand(#EDGES)]
    else
      parts[i] = mutate(gen_value(0))
    end
  end
  local s = concat(parts)
  if rand(4) == 1 then s = s:sub(1, rand(0, #s)) end -- truncated
  if rand(8) == 1 then s = mutate(s) end
  return s
end

local function gen_limits()
  if rand(3) == 1 then return nil end
  return {
    max_bulk = rand(0, 16),
    max_value = rand(0, 80),
    max_array = rand(0, 5),
    max_inline = rand(0, 24),
    max_depth = rand(0, 4),
    inline = rand(2) == 1,
  }
end

---------------------------------------------------------------------------
-- The comparisons
---------------------------------------------------------------------------

local function splits(s)
  local out = { { s }, {} }
  for i = 1, #s do out[2][i] = s:sub(i, i) end
  for i = 1, #s - 1 do out[#out + 1] = { s:sub(1, i), s:sub(i + 1) } end
  return out
end

local SIZES = { { 1 }, { 2, 1 }, { 3 }, { 16 }, { 1, 4, 2 } }

local function check_same(s, limits)
  for _, pieces in ipairs(splits(s)) do
    local sizes = SIZES[#s % #SIZES + 1]
    local want = grouped_reads(pieces, limits, sizes)
    for _, native in ipairs({ true, false }) do
      local got = run_readn(native, pieces, limits, sizes)
      if got ~= want then
        error(("readn (native %s) and read differ on %q (pieces %d, limits %s):\n"
          .. "readn:\n%s\nread:\n%s"):format(tostring(native), s, #pieces,
          render(limits or {}), got, want), 2)
      end
    end
    for _, use_try in ipairs({ false, true, "commands" }) do
      local want = run_reader(false, pieces, limits, use_try and true)
      local got = run_reader(true, pieces, limits, use_try)
      if got ~= want then
        error(("C and Lua readers differ on %q (pieces %d, limits %s, tryread %s):\n"
          .. "C:\n%s\nLua:\n%s"):format(s, #pieces, render(limits or {}), tostring(use_try),
          got, want), 2)
      end
    end
  end
end

describe("the C RESP reader against the Lua reference", function()
  it("is the one resp.reader uses in goluarun", function()
    assert.is_true(resp.native)
  end)

  it("takes only what the Lua reader gives, value for value, end for end", function()
    math.randomseed(15)
    local taken = 0
    for _ = 1, 1500 do
      local s, limits = gen_input(), gen_limits()
      local lim = resp.reader({}, limits).lim -- the checked limits
      local q, ends = {}, {}
      local k = cparse.batch(cparse.config(lim, null, null_array), s, 1, q, ends)
      local pos = 1
      for i = 1, k do
        -- the Lua reader on what follows the previous value
        resp.native = false
        local rd = resp.reader(pieces_conn({ s:sub(pos) }), limits)
        resp.native = true
        local want = rd:read()
        assert.are.equal(render(want), render(q[i]), ("value %d of %q"):format(i, s))
        assert.are.equal(#s + 1 - rd:buffered(), ends[i], ("end of value %d of %q"):format(i, s))
        pos = ends[i]
        taken = taken + 1
      end
      -- into a new table (q nil), after `base` slots, without ends: the
      -- same values, the end of the last one, the tables among them
      local k2, np, tables, q2 = cparse.batch(cparse.config(lim, null, null_array), s, 1, nil,
        nil, 256, 3)
      assert.are.equal(k, k2)
      assert.are.equal(k > 0 and ends[k] or 1, np)
      local ntab = 0
      for i = 1, k do
        assert.are.equal(render(q[i]), render(q2[i + 3]))
        if type(q[i]) == "table" then ntab = ntab + 1 end
      end
      assert.are.equal(ntab, tables)
      local keys = 0
      for key in pairs(q2) do
        keys = keys + 1
        assert.is_true(key > 3 and key <= k + 3)
      end
      assert.are.equal(k, keys)
    end
    assert.is_true(taken > 1000, "the generator exercises the C reader: " .. taken)
  end)

  it("reads the same values and the same error at every split", function()
    math.randomseed(13)
    for _ = 1, 250 do
      local s = gen_input()
      if #s <= 100 then check_same(s, gen_limits()) end
    end
    for _, s in ipairs(EDGES) do
      check_same(s)
      check_same(s .. ":1\r\n", { max_inline = 4 })
    end
  end)

  it("random bytes: the same results, no crash", function()
    math.randomseed(7)
    local alphabet = "*$:+-\r\n0123456789-ab \"'"
    for _ = 1, 200 do
      local b = {}
      for i = 1, rand(1, 40) do
        local j = rand(#alphabet)
        b[i] = alphabet:sub(j, j)
      end
      check_same(concat(b), gen_limits())
    end
  end)

  it("commands: reused tables, emptied past each command and past a smaller batch", function()
    local function conn_of(...) return pieces_conn({ ... }) end
    local ys = {}
    for i = 1, 64 do ys[i] = "y" end
    local big = resp.command("MSET", "a", "1", "b", "2") .. resp.command("GET", "a")
      .. resp.command("PING")
    local rd = resp.reader(conn_of(big, resp.command("SET", "k", "v"),
      resp.command("x", table.unpack(ys)) .. resp.command("z"), "*0\r\n", resp.command("Q")))
    local pool, argc = {}, {}
    assert.are.equal(0, rd:commands(pool, argc)) -- nothing buffered yet
    assert.is_true(rd:fill())
    assert.are.equal(3, rd:commands(pool, argc))
    assert.are.same({ { "MSET", "a", "1", "b", "2" }, { "GET", "a" }, { "PING" } }, pool)
    assert.are.same({ [0] = 3, 5, 2, 1 }, argc)
    local first = pool[1]
    assert.is_true(rd:fill())
    assert.are.equal(1, rd:commands(pool, argc, 1))
    assert.are.equal(first, pool[1]) -- the same table, its old slots emptied
    assert.are.same({ { "SET", "k", "v" }, {}, {} }, pool)
    assert.are.same({ [0] = 1, 3, 0, 0 }, argc)
    -- 65 words: past the fast path, left to tryread (the same table it gives)
    assert.is_true(rd:fill())
    assert.are.equal(0, rd:commands(pool, argc))
    local long = assert(rd:tryread())
    assert.are.equal(65, #long)
    assert.are.equal(0, rd:commands(pool, argc)) -- tryread decoded "z" ahead: its
    assert.are.same({ "z" }, rd:tryread())
    assert.is_true(rd:fill())
    assert.are.equal(0, rd:commands(pool, argc)) -- "*0": tryread's
    assert.are.same({}, rd:tryread())
    assert.is_true(rd:fill())
    assert.are.equal(1, rd:commands(pool, argc))
    assert.are.same({ "Q" }, pool[1])
    assert.are.same({ nil, "incomplete" }, { rd:tryread() })
    assert.are.same({ nil, "eof" }, { rd:fill() })
  end)

  it("commands after a bulk tryread waited for: the next chunk is read as a line", function()
    local long = ("v"):rep(100)
    local wire = resp.command("ECHO", long)
    local rd = resp.reader(pieces_conn({ wire:sub(1, 30), wire:sub(31), resp.command("PING") }))
    local pool, argc = {}, {}
    assert.is_true(rd:fill())
    assert.are.equal(0, rd:commands(pool, argc))
    assert.are.same({ nil, "incomplete" }, { rd:tryread() })
    assert.is_true(rd:fill())
    assert.are.equal(0, rd:commands(pool, argc)) -- an array half-filled: tryread's
    assert.are.same({ "ECHO", long }, rd:tryread())
    assert.are.equal(0, rd:commands(pool, argc))
    assert.is_false(rd:partial())
    assert.is_true(rd:fill()) -- 14 bytes: less than the bulk waited for before
    assert.are.equal(1, rd:commands(pool, argc))
    assert.are.same({ "PING" }, pool[1])
  end)

  it("commands: a batch past 64 KiB is dropped from the tables once nothing is buffered", function()
    local big = ("b"):rep(70000)
    local rd = resp.reader(pieces_conn({ resp.command("SET", "k", big) .. resp.command("GET", "k"),
      resp.command("SET", "k", "small") }))
    local pool, argc = {}, {}
    assert.is_true(rd:fill())
    assert.are.equal(2, rd:commands(pool, argc))
    assert.are.equal(big, pool[1][3])
    assert.are.equal(0, rd:commands(pool, argc))
    assert.are.same({ {}, {} }, pool)
    assert.are.same({ [0] = 0, 0, 0 }, argc)
    assert.is_true(rd:fill())
    assert.are.equal(1, rd:commands(pool, argc))
    assert.are.equal(0, rd:commands(pool, argc))
    assert.are.same({ { "SET", "k", "small" }, {} }, pool) -- small: kept until the next
  end)

  it("a pipeline of 10,000 commands: the same commands, in batches", function()
    local parts = {}
    for i = 1, 10000 do parts[i] = resp.command("SET", "key:" .. i, i) end
    local s = concat(parts)
    local rd = resp.reader(pieces_conn({ s:sub(1, 70001), s:sub(70002) }))
    for i = 1, 10000 do
      local v = assert(rd:read())
      assert.are.same({ "SET", "key:" .. i, tostring(i) }, v)
    end
    assert.are.same({ nil, "eof" }, { rd:read() })
    assert.are.equal(0, rd:buffered())
  end)
end)

---------------------------------------------------------------------------
-- The command writer (respparse.command, respparse.wbuf) against the Lua
-- encoder: resp.encode of the words as an array (strings as they are,
-- integers in decimal)
---------------------------------------------------------------------------

-- a random command: a name (now and then not a string) and 0..20 words
-- (more than the writer's groups of 8) of strings, integers and, now and
-- then, a float or a misuse; `ok`: whether every word is one C takes, else
-- the index of the first that is not (0: the name)
local function gen_words()
  local n = rand(0, 20)
  local w = { rand(12) == 1 and rand(100) or rand_word() }
  local bad = type(w[1]) ~= "string" and 0 or nil
  local ints = { 0, -1, 7, 10, 99, 100, -10, math.maxinteger, math.mininteger }
  for i = 1, n do
    local r = rand(40)
    if r <= 20 then
      w[i + 1] = rand(3) == 1 and ("x"):rep(rand(9, 300)) or rand_text(12)
    elseif r <= 37 then
      w[i + 1] = rand(2) == 1 and ints[rand(#ints)] or rand(-100000, 100000)
    else
      w[i + 1] = ({ 0.5, true, {}, 1 / 0 })[r - 37]
      bad = bad or i
    end
  end
  return w, n + 1, bad
end

describe("the C command writer against the Lua encoder", function()
  it("writes exactly resp.encode's bytes, or names the first word it leaves", function()
    math.randomseed(21)
    local wire = cparse.command
    local wb = cparse.wbuf()
    local p = { wb }
    local slow_calls = 0
    local function slow(q, name, ...)
      assert.are.equal(p, q)
      slow_calls = slow_calls + 1
      return { "slow", name, select("#", ...) }
    end
    local want_buf, count = {}, 0
    for _ = 1, 2000 do
      local w, n, bad = gen_words()
      local got, i = wire(table.unpack(w, 1, n))
      local k, ai = cparse.append(p, table.unpack(w, 1, n))
      -- the same command through an appender (its name bound)
      local f = type(w[1]) == "string" and cparse.appender(w[1], slow)
      local r1 = f and f(p, table.unpack(w, 2, n))
      if bad then
        assert.is_nil(got)
        assert.are.equal(bad, i)
        assert.is_nil(k)
        assert.are.equal(bad, ai)
        if f then assert.are.same({ "slow", w[1], n - 1 }, r1) end
      else
        local want = resp.encode(table.move(w, 1, n, 1, { n = n }))
        assert.are.equal(want, got)
        assert.are.equal(count + 1, k)
        assert.are.equal(p, r1)
        want_buf[#want_buf + 1] = want .. want
        count = count + 2
      end
      if rand(50) == 1 then -- now and then a take: everything appended since the last
        assert.are.same({ concat(want_buf), count }, { cparse.take(wb) })
        want_buf, count = {}, 0
      end
    end
    assert.are.same({ concat(want_buf), count }, { cparse.take(wb) })
    assert.are.same({ "", 0 }, { cparse.take(wb) })
    assert.is_true(slow_calls > 50, "misuse reached slow: " .. slow_calls)
  end)

  it("a pipeline table without a buffer: left to slow, or nil, -1; take checks", function()
    local f = cparse.appender("GET", function(...) return table.pack(...) end)
    assert.are.same({ false, "GET", "k", n = 3 }, f(false, "k"))
    assert.are.same({ { 1 }, "GET", "k", n = 3 }, f({ 1 }, "k"))
    assert.are.same({ nil, "GET", n = 2 }, f())
    local other = io.stdout -- a userdata of another kind in p[1]
    assert.are.same({ nil, -1 }, { cparse.append({ other }, "GET", "k") })
    assert.has_error(function() cparse.take(other) end)
    assert.has_error(function() cparse.take({}) end)
  end)

  it("a value past the capacity a take keeps, integers, an empty command", function()
    local wb = cparse.wbuf()
    local big = ("v"):rep(200 * 1024) -- past the capacity a take keeps
    for _ = 1, 3 do
      assert.are.equal(1, cparse.append({ wb }, "SET", "k", big, 12))
      assert.are.same({ resp.encode({ "SET", "k", big, "12" }), 1 }, { cparse.take(wb) })
    end
    assert.are.equal("*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$1\r\n5\r\n", cparse.command("INCRBY", "k", 5))
    assert.are.same({ nil, 0 }, { cparse.command() })
    assert.are.equal("*1\r\n$4\r\nPING\r\n", resp.command("PING"))
    assert.are.equal("*0\r\n", resp.command()) -- the Lua encoder's answer
  end)
end)

describe("the command writer under a memory limit", function()
  local H = require "support.helpers"

  -- under a 64 MiB limit: one 8 MiB command in the buffer (16 MiB of
  -- capacity), 34 MiB of ballast, then a second command whose growth to
  -- 32 MiB cannot be had; with the ballast gone, the buffer holds exactly
  -- the first command
  it("a command that does not fit is not half written: the buffer keeps the ones before", function()
    local r = H.run([[
      local cparse = require "goluarun.respparse"
      local wb = cparse.wbuf()
      local p = { wb }
      local v = string.rep("x", 8 * 1024 * 1024)
      collectgarbage()
      assert(cparse.append(p, "SET", "a", v) == 1)
      local ballast = {}
      for i = 1, 34 do ballast[i] = string.rep("b", 1024 * 1024 + i) end
      local ok, err = pcall(cparse.append, p, "SET", "b", v)
      ballast = nil
      collectgarbage()
      print(ok, err)
      assert(cparse.append(p, "GET", "a") == 2) -- usable after the error
      local bytes, n = cparse.take(wb)
      local head = "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$" .. #v .. "\r\n"
      local get = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
      print(n, #bytes == #head + #v + 2 + #get, bytes:sub(1, #head) == head,
        bytes:sub(-#get - 3) == "x\r\n" .. get)
    ]], {}, { env = { GOLUA_MEMLIMIT = "64MiB" } })
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.matches("^false\tnot enough memory\n2\ttrue\ttrue\ttrue\n$", r.stdout)
  end)
end)
