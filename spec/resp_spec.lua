-- resp_spec: the RESP2 codec (lua/goluarun/resp.lua): encoding of every type,
-- round-trips, inline commands, malformed and hostile input, and the
-- streaming reader over real conns and over scripted chunkings.
local go = require "go"
local resp = require "goluarun.resp"
local H = require "support.helpers"

H.warmup()

local null, null_array = resp.null, resp.null_array

-- a conn-like object that hands out `data` in pieces of the given sizes
-- (cycled), then eof
local function script_conn(data, sizes)
  local pos, k = 1, 0
  return {
    reads = 0,
    read = function(self)
      if pos > #data then return nil, "eof" end
      k = k % #sizes + 1
      local piece = data:sub(pos, pos + sizes[k] - 1)
      pos = pos + #piece
      self.reads = self.reads + 1
      return piece
    end,
  }
end

local function decode_all(buf, limits)
  local out, pos = {}, 1
  while pos <= #buf do
    local v, np = resp.decode(buf, pos, limits)
    if v == nil then return nil, np, out end
    out[#out + 1] = v
    pos = np
  end
  return out
end

local function perr(buf, limits, pattern)
  local v, err = resp.decode(buf, 1, limits)
  assert.is_nil(v, "accepted: " .. string.format("%q", buf))
  assert.matches("^protocol error: ", err)
  if pattern then assert.matches(pattern, err) end
  return err
end

local SAMPLES = {
  "", "x", "hello world", "with\r\nCRLF\r\n", ("\0\1\2\255"):rep(10),
  0, 1, -1, 42, math.maxinteger, math.mininteger,
  null, null_array,
  { err = "ERR something bad" }, { err = "" },
  {}, { "a", "b" }, { resp.integer(1), "two", null, { err = "E" }, {} },
  { { { { "deep" } } }, { resp.integer(1), { resp.integer(2), { resp.integer(3) } } } },
  { null_array, { null, null_array }, "" },
  { resp.integer(math.mininteger), { resp.integer(-1) } },
}

-- a sample as it decodes: resp.integer markers become plain integers
local function plain(v)
  if type(v) ~= "table" or resp.isnull(v) then return v end
  if v.int ~= nil then return v.int end
  if v.err ~= nil or v.ok ~= nil then return v end
  local t = {}
  for i, e in ipairs(v) do t[i] = plain(e) end
  return t
end
local DECODED = plain(SAMPLES)

describe("resp.encode", function()
  it("encodes every type to the exact wire form", function()
    assert.are.equal("+OK\r\n", resp.encode({ ok = "OK" }))
    assert.are.equal("+OK\r\n", resp.encode(resp.simple("OK")))
    assert.are.equal("-ERR bad\r\n", resp.encode({ err = "ERR bad" }))
    assert.are.equal("-ERR bad\r\n", resp.encode(resp.error("ERR bad")))
    assert.are.equal(":42\r\n", resp.encode(42))
    assert.are.equal(":-7\r\n", resp.encode(-7))
    assert.are.equal(":3\r\n", resp.encode(3.0))
    assert.are.equal("$3\r\nfoo\r\n", resp.encode("foo"))
    assert.are.equal("$0\r\n\r\n", resp.encode(""))
    assert.are.equal("$-1\r\n", resp.encode(null))
    assert.are.equal("*-1\r\n", resp.encode(null_array))
    assert.are.equal("*0\r\n", resp.encode({}))
    assert.are.equal("*2\r\n$1\r\na\r\n:1\r\n", resp.encode({ "a", resp.integer(1) }))
    assert.are.equal(":1\r\n", resp.encode(resp.integer(1)))
    assert.are.equal("*2\r\n*1\r\n$-1\r\n*-1\r\n", resp.encode({ { null }, null_array }))
    assert.are.equal("*3\r\n$1\r\na\r\n$-1\r\n:2\r\n",
      resp.encode({ n = 3, "a", null, resp.integer(2) }))
  end)

  it("has the direct encoders and constants", function()
    assert.are.equal("+PONG\r\n", resp.encode_simple("PONG"))
    assert.are.equal("-ERR x\r\n", resp.encode_error("ERR x"))
    assert.are.equal(":-1\r\n", resp.encode_integer(-1))
    assert.are.equal("$2\r\n\r\n\r\n", resp.encode_bulk("\r\n"))
    assert.are.equal("+OK\r\n", resp.OK)
    assert.are.equal("$-1\r\n", resp.NULL)
    assert.are.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n", resp.command("SET", "k", 10))
  end)

  it("sends numbers inside an array as bulk strings (a command), never ':n'", function()
    -- the trap: {"INCRBY", "k", 5} once went out as ":5", which redis-server
    -- refuses with "ERR Protocol error"
    assert.are.equal("*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$1\r\n5\r\n",
      resp.encode({ "INCRBY", "k", 5 }))
    assert.are.equal(resp.command("INCRBY", "k", 5), resp.encode({ "INCRBY", "k", 5 }))
    assert.are.equal(resp.command("ZADD", "z", 0.1, "m", -3),
      resp.encode({ "ZADD", "z", 0.1, "m", -3 }))
    assert.are.equal("*2\r\n$3\r\nSET\r\n$3\r\n0.1\r\n", resp.command("SET", 0.1))
    assert.are.equal("0.30000000000000004", resp.arg(0.1 + 0.2))
    for _, x in ipairs({ 0.1, 1 / 3, math.pi, 1e300, -2.5e-300, 2 ^ 60 + 0.0, 123456789.123 }) do
      assert.are.equal(x, tonumber(resp.arg(x)), "round trip of " .. string.format("%a", x))
    end
    assert.are.equal("nan", resp.arg(0 / 0))
    -- an integral float is its integer text, infinities are redis' "inf"
    assert.are.same({ "5", "-7", "inf", "-inf", "1e+300", "9223372036854775807" },
      { resp.arg(5.0), resp.arg(-7), resp.arg(1 / 0), resp.arg(-1 / 0), resp.arg(1e300),
        resp.arg(math.maxinteger) })
    assert.are.equal("x", resp.arg("x"))
    for _, bad in ipairs({ true, false, {}, print }) do
      assert.has_error(function() resp.arg(bad) end)
      assert.has_error(function() resp.command("SET", "k", bad) end)
      if type(bad) ~= "table" then -- a table in an array is a nested array
        assert.has_error(function() resp.encode({ "SET", "k", bad }) end)
      end
    end
    assert.has_error(function() resp.arg(nil) end)
    assert.has_error(function() resp.command("SET", nil, "v") end)
    -- a number on its own stays an integer reply (servers answer INCR so)
    assert.are.equal(":5\r\n", resp.encode(5))
    assert.has_error(function() resp.integer(1.5) end)
    assert.has_error(function() resp.encode({ { int = 0.5 } }) end)
  end)

  it("raises on values RESP2 cannot carry", function()
    for _, bad in ipairs({ true, 1.5, 0 / 0, print, { err = 1 }, { ok = {} }, { "a", true } }) do
      assert.has_error(function() resp.encode(bad) end)
    end
    assert.has_error(function() resp.encode(nil) end)
    assert.has_error(function() resp.encode({ ok = "a\r\nb" }) end)
    assert.has_error(function() resp.encode({ err = "a\nb" }) end)
    assert.has_error(function() resp.encode_simple("x\r") end)
    assert.has_error(function() resp.encode_integer(0.5) end)
    assert.has_error(function() resp.command("SET", {}) end)
    local cyc = {}; cyc[1] = cyc
    assert.has_error(function() resp.encode(cyc) end)
  end)
end)

describe("resp.decode", function()
  it("decodes every type", function()
    assert.are.same({ "OK", 6 }, { resp.decode("+OK\r\n") })
    assert.are.same({ { err = "ERR x y" }, 11 }, { resp.decode("-ERR x y\r\n") })
    assert.are.same({ -42, 7 }, { resp.decode(":-42\r\n") })
    assert.are.same({ "foo", 10 }, { resp.decode("$3\r\nfoo\r\n") })
    assert.are.same({ "", 7 }, { resp.decode("$0\r\n\r\n") })
    assert.are.equal(null, (resp.decode("$-1\r\n")))
    assert.are.equal(null_array, (resp.decode("*-1\r\n")))
    assert.is_true(resp.isnull(null) and resp.isnull(null_array))
    assert.is_false(resp.isnull("") or resp.isnull({}))
    assert.are.same({ {}, 5 }, { resp.decode("*0\r\n") })
    assert.are.same({ math.maxinteger }, { (resp.decode(":9223372036854775807\r\n")) })
    assert.are.same({ math.mininteger }, { (resp.decode(":-9223372036854775808\r\n")) })
    assert.are.equal("integer", math.type(resp.decode(":5\r\n")))
  end)

  it("round-trips every sample, alone and concatenated", function()
    local all = {}
    for i, v in ipairs(SAMPLES) do
      local wire = resp.encode(v)
      local got, np = resp.decode(wire)
      assert.are.same(DECODED[i], got, "sample " .. i)
      assert.are.equal(#wire + 1, np)
      all[#all + 1] = wire
    end
    local got = assert(decode_all(table.concat(all)))
    assert.are.same(DECODED, got)
  end)

  it("decodes at a position and returns the next one", function()
    local buf = "junk" .. resp.encode({ "a", resp.integer(1) }) .. resp.encode("b")
    local v, np = resp.decode(buf, 5)
    assert.are.same({ "a", 1 }, v)
    assert.are.same({ "b", #buf + 1 }, { resp.decode(buf, np) })
  end)

  it("every strict prefix of a value is 'incomplete'", function()
    for i, v in ipairs(SAMPLES) do
      local wire = resp.encode(v)
      for cut = 0, #wire - 1 do
        local r, err = resp.decode(wire:sub(1, cut))
        assert.is_nil(r, "sample " .. i .. " cut " .. cut)
        assert.are.equal("incomplete", err, "sample " .. i .. " cut " .. cut)
      end
    end
  end)

  it("decodes inline commands as redis-server splits them", function()
    assert.are.same({ { "PING" }, 7 }, { resp.decode("PING\r\n") })
    assert.are.same({ "PING" }, (resp.decode("PING\n")))
    assert.are.same({ "SET", "k", "v" }, (resp.decode("  SET   k\tv  \r\n")))
    assert.are.same({ "SET", "k", "a b" }, (resp.decode('SET k "a b"\r\n')))
    assert.are.same({ "x", "\n\r\t\b\a\"\\A\1q" },
      (resp.decode('x "\\n\\r\\t\\b\\a\\"\\\\\\x41\\x01\\q"\r\n')))
    assert.are.same({ "it's", "a\\b" }, (resp.decode("'it\\'s' 'a\\b'\r\n")))
    assert.are.same({ "", "" }, (resp.decode("\"\" ''\r\n")))
    assert.are.same({ "ab", "c" }, (resp.decode('a"b" c\r\n')))
    -- empty lines are skipped, like redis-server does
    assert.are.same({ { "PING" }, 12 }, { resp.decode("\r\n \r\nPING\r\n") })
    assert.are.same({ nil, "incomplete" }, { resp.decode("\r\n\r\n") })
    assert.are.same({ nil, "incomplete" }, { resp.decode("PING") })
    perr('SET k "unterminated\r\n', nil, "unbalanced")
    perr("SET k 'x'y\r\n", nil, "unbalanced")
    perr('SET k "x"y\r\n', nil, "unbalanced")
    assert.are.same({ "a", "b" }, resp.split_inline("a b"))
    -- inline disabled: a client decoding replies
    perr("PING\r\n", { inline = false }, "expected a type byte")
  end)

  it("rejects malformed input with 'protocol error: ...'", function()
    -- a bad type byte inside an array (inline is only for the top level)
    perr("*1\r\nPING\r\n", nil, "expected a type byte")
    perr("*2\r\n$1\r\na\r\n!\r\n", nil, "expected a type byte")
    -- negative lengths other than -1
    perr("$-2\r\n", nil, "invalid bulk length")
    perr("*-5\r\n", nil, "invalid multibulk length")
    perr("$-0\r\n"); perr("*-1000\r\n")
    -- non-digits, signs, spaces, leading zeros, empty
    for _, b in ipairs({ "$abc\r\n", "$3x\r\nfoo\r\n", "$ 3\r\nfoo\r\n", "$+3\r\nfoo\r\n",
                         "$03\r\nfoo\r\n", "$\r\n", "*\r\n", "*1a\r\n", "*0x10\r\n",
                         ":\r\n", ":12a\r\n", ":1.5\r\n", ": 1\r\n", ":--1\r\n",
                         "$3.0\r\nfoo\r\n" }) do
      perr(b)
    end
    -- missing CR before LF, or missing CRLF after a bulk
    perr("$3\nfoo\r\n"); perr("*1\n:1\r\n"); perr(":1\n"); perr("+OK\n"); perr("-ERR\n")
    perr("$3\r\nfooXY", nil, "CRLF"); perr("$3\r\nfoo\n\n", nil, "CRLF")
    perr("$0\r\nxx")
    -- integers out of range
    perr(":9223372036854775808\r\n", nil, "invalid integer")
    perr(":-9223372036854775809\r\n", nil, "invalid integer")
    perr(":" .. ("9"):rep(400) .. "\r\n", nil, "invalid integer")
    perr("$" .. ("9"):rep(400) .. "\r\n", nil, "invalid bulk length")
  end)

  it("a truncated bulk or array is 'incomplete', not an error", function()
    for _, b in ipairs({ "$5\r\nab", "$5\r\nabcde", "$5\r\nabcde\r", "*3\r\n:1\r\n", "*1\r\n*1\r\n",
                         "$", "$1", "$1\r", "+OK", "+OK\r", ":12" }) do
      assert.are.same({ nil, "incomplete" }, { resp.decode(b) }, b)
    end
  end)

  it("enforces the limits before allocating", function()
    -- a declared bulk above max_bulk fails at once, with no body at all
    perr("$536870913\r\n", nil, "invalid bulk length")
    perr("$9223372036854775807\r\n", nil, "invalid bulk length")
    perr("$11\r\n", { max_bulk = 10 }, "invalid bulk length")
    assert.are.same({ ("x"):rep(10) }, { (resp.decode("$10\r\n" .. ("x"):rep(10) .. "\r\n", 1, { max_bulk = 10 })) })
    -- exactly max_bulk with no body: incomplete, and nothing of that size built
    collectgarbage(); collectgarbage()
    local kb = collectgarbage("count")
    assert.are.same({ nil, "incomplete" }, { resp.decode("$536870912\r\n") })
    assert.is_true(collectgarbage("count") - kb < 1024)
    -- array counts
    perr("*1048577\r\n", nil, "invalid multibulk length")
    perr("*4\r\n", { max_array = 3 }, "invalid multibulk length")
    assert.are.same({ nil, "incomplete" }, { resp.decode("*1048576\r\n") })
    -- nesting
    local deep = ("*1\r\n"):rep(33) .. ":1\r\n"
    perr(deep, nil, "nested too deep")
    assert.is_truthy(resp.decode(("*1\r\n"):rep(32) .. ":1\r\n"))
    perr("*1\r\n*1\r\n*0\r\n", { max_depth = 2 }, "nested too deep")
    perr("*1\r\n", { max_depth = 0 }, "nested too deep")
    -- line lengths
    perr(("A"):rep(100) .. "\r\n", { max_inline = 50 }, "line too long")
    perr(("A"):rep(100), { max_inline = 50 }, "line too long")
    perr("+" .. ("A"):rep(100) .. "\r\n", { max_inline = 50 }, "line too long")
    perr("$" .. ("1"):rep(100), { max_inline = 50 }, "line too long")
    assert.are.same({ ("A"):rep(50) }, (resp.decode(("A"):rep(50) .. "\r\n", 1, { max_inline = 50 })))
    perr(("A"):rep(64 * 1024 + 10), nil, "line too long")
  end)

  it("max_value bounds one value (a request): a bulk declared past it is refused before its body", function()
    -- "*2\r\n$3\r\nSET\r\n" is 13 bytes; "$20\r\n" + 20 + "\r\n" is 27 more: 40 in all
    local req = resp.command("SET", ("v"):rep(20))
    assert.are.equal(40, #req)
    assert.are.same({ "SET", ("v"):rep(20) }, (resp.decode(req, 1, { max_value = 40 })))
    perr(req, { max_value = 39 }, "value too large")
    perr("*2\r\n$3\r\nSET\r\n$20\r\n", { max_value = 39 }, "value too large")
    perr("$1073741824\r\n", { max_bulk = 1 << 31 }, "value too large") -- the 1 GiB default
    -- each value has its own budget: pipelined values never add up
    local two = req .. req
    local v, np = resp.decode(two, 1, { max_value = 40 })
    assert.are.same({ "SET", ("v"):rep(20) }, v)
    assert.are.same({ "SET", ("v"):rep(20) }, (resp.decode(two, np, { max_value = 40 })))
  end)

  it("flat arrays of bulks (the fast path) and everything near them", function()
    local v, np = resp.decode("*2\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
    assert.are.same({ { "a", "b" }, 19 }, { v, np })
    assert.are.same({ "a", null }, (resp.decode("*2\r\n$1\r\na\r\n$-1\r\n")))
    assert.are.same({ "a", 1 }, (resp.decode("*2\r\n$1\r\na\r\n:1\r\n")))
    assert.are.same({ "", "x" }, (resp.decode("*2\r\n$0\r\n\r\n$1\r\nx\r\n")))
    assert.are.same({ nil, "incomplete" }, { resp.decode("*2\r\n$1\r\na\r\n$1\r\n") })
    perr("*2\r\n$1\r\na\r\n$01\r\nb\r\n", nil, "invalid bulk length")
    perr("*2\r\n$1\r\na\r\n$1\r\nbb\r\n", nil, "CRLF")
    perr("*2\r\n$1\r\na\r\n$1\r\nb\r\n", { max_bulk = 0 }, "invalid bulk length")
    perr("*02\r\n$1\r\na\r\n$1\r\nb\r\n", nil, "invalid multibulk length")
    perr("*1\r\n$1\r\na\r\n", { max_depth = 0 }, "nested too deep")
    perr("*2\r\n$1\r\na\r\n$1\r\nb\r\n", { max_array = 1 }, "invalid multibulk length")
  end)

  it("decode and a byte-by-byte reader agree on mutated input, and never raise", function()
    math.randomseed(20240601)
    local base = {}
    for _, v in ipairs(SAMPLES) do base[#base + 1] = resp.encode(v) end
    base[#base + 1] = resp.command("SET", "key", "value")
    base[#base + 1] = "PING x \"y z\"\r\n"
    local alphabet = "*$:+-\r\n0123456789-ab \"'"
    for round = 1, H.scale(3000, 1000) do
      local buf = base[math.random(#base)] .. base[math.random(#base)]
      for _ = 1, math.random(1, 3) do
        local i = math.random(#buf)
        local k = math.random(#alphabet)
        local how = math.random(3)
        if how == 1 then
          buf = buf:sub(1, i - 1) .. alphabet:sub(k, k) .. buf:sub(i + 1)
        elseif how == 2 then
          buf = buf:sub(1, i - 1) .. buf:sub(i + 1)
        else
          buf = buf:sub(1, i) .. alphabet:sub(k, k) .. buf:sub(i + 1)
        end
      end
      local dv, derr = resp.decode(buf)
      -- byte by byte (parse()), and whole (read()'s fast path for simple replies)
      local rd = resp.reader(script_conn(buf, { 1 }))
      local rv, rerr = rd:read()
      local whole = resp.reader(script_conn(buf, { #buf }))
      whole:fill()
      assert.are.same({ rv, rerr }, { whole:read() }, string.format("%q", buf))
      if dv ~= nil then
        assert.are.same(dv, rv, "round " .. round .. ": " .. string.format("%q", buf))
      elseif derr == "incomplete" then
        assert.are.same({ nil, "eof" }, { rv, rerr }, string.format("%q", buf))
      else
        assert.matches("^protocol error: ", derr)
        assert.are.same({ nil, derr }, { rv, rerr }, string.format("%q", buf))
      end
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() resp.decode(nil) end)
    assert.has_error(function() resp.decode(42) end)
    assert.has_error(function() resp.decode("x", 0) end)
    assert.has_error(function() resp.decode("x", 1.5) end)
    assert.has_error(function() resp.decode("x", 1, "limits") end)
    assert.has_error(function() resp.decode("x", 1, { max_bulk = -1 }) end)
    assert.has_error(function() resp.decode("x", 1, { max_array = 1.5 }) end)
    assert.has_error(function() resp.reader(nil) end)
    assert.has_error(function() null.x = 1 end)
  end)
end)

describe("resp.reader", function()
  local wire_all
  setup(function()
    local parts = {}
    for _, v in ipairs(SAMPLES) do parts[#parts + 1] = resp.encode(v) end
    parts[#parts + 1] = "PING\r\n\r\nSET k \"v w\"\r\n"
    wire_all = table.concat(parts)
  end)

  local function expected_all()
    local e = {}
    for i, v in ipairs(DECODED) do e[i] = v end
    e[#e + 1] = { "PING" }
    e[#e + 1] = { "SET", "k", "v w" }
    return e
  end

  local function read_all(rd)
    local out = {}
    while true do
      local v, err = rd:read()
      if v == nil then return out, err end
      out[#out + 1] = v
    end
  end

  it("decodes the same values whatever the chunking", function()
    for _, sizes in ipairs({ { 1 }, { 2 }, { 3, 1 }, { 7 }, { 1, 13, 2 }, { 64 }, { #wire_all } }) do
      local rd = resp.reader(script_conn(wire_all, sizes))
      local got, err = read_all(rd)
      assert.are.equal("eof", err)
      assert.are.same(expected_all(), got, "sizes " .. table.concat(sizes, ","))
      assert.are.equal(0, rd:buffered())
    end
  end)

  it("decodes a long array arriving in small pieces in linear time", function()
    local n = H.scale(20000, 5000)
    local arr = {}
    for i = 1, n do arr[i] = "v" .. i end
    local wire = resp.encode(arr)
    local conn = script_conn(wire, { 3 })
    local rd = resp.reader(conn)
    local dt, v = H.timed(function() return rd:read() end)
    assert.are.same(arr, v)
    assert.is_true(dt < 3, "took " .. dt .. " s")
  end)

  it("a big bulk arriving in pieces is joined once", function()
    local body = H.payload(H.scale(4 * 1024 * 1024, 256 * 1024), 3)
    local wire = resp.encode(body) .. resp.encode("after")
    local rd = resp.reader(script_conn(wire, { 1000 }))
    local dt, v = H.timed(function() return rd:read() end)
    assert.are.equal(body, v)
    assert.are.equal("after", rd:read())
    assert.is_true(dt < 3, "took " .. dt .. " s")
  end)

  it("tryread does no I/O; buffered counts unconsumed bytes", function()
    local rd = resp.reader(script_conn("+A\r\n+B\r\n+C", { 100 }))
    assert.are.same({ nil, "incomplete" }, { rd:tryread() })
    assert.is_true(rd:fill())
    assert.are.equal(10, rd:buffered())
    assert.are.equal("A", rd:tryread())
    assert.are.equal(6, rd:buffered())
    assert.are.equal("B", rd:tryread())
    assert.are.same({ nil, "incomplete" }, { rd:tryread() })
    assert.are.equal(2, rd:buffered())
    assert.are.same({ nil, "eof" }, { rd:read() })
  end)

  it("partial tells a begun value from an idle stream, also inside an array", function()
    local rd = resp.reader(script_conn("*2\r\n$1\r\na\r\n", { 100 }))
    assert.is_false(rd:partial())
    assert.is_true(rd:fill())
    assert.is_true(rd:partial())
    assert.are.same({ nil, "incomplete" }, { rd:tryread() })
    assert.are.equal(0, rd:buffered()) -- "a" is held in the decoding state
    assert.is_true(rd:partial())
    local rd2 = resp.reader(script_conn("+A\r\n", { 100 }))
    assert.are.equal("A", rd2:read())
    assert.is_false(rd2:partial())
  end)

  it("a protocol error is sticky", function()
    local rd = resp.reader(script_conn(":1\r\n$-2\r\n:2\r\n", { 100 }))
    assert.are.equal(1, rd:read())
    local v, err = rd:read()
    assert.is_nil(v); assert.matches("^protocol error: invalid bulk length", err)
    assert.are.same({ nil, err }, { rd:read() })
    assert.are.same({ nil, err }, { rd:tryread() })
  end)

  it("max_value counts the elements of a value that arrived in earlier reads", function()
    local req = resp.command("MSET", "a", ("1"):rep(30), "b", ("2"):rep(30))
    for _, sizes in ipairs({ { 1 }, { 5 }, { 4096 } }) do
      local rd = resp.reader(script_conn(req, sizes), { max_value = #req })
      assert.are.same({ "MSET", "a", ("1"):rep(30), "b", ("2"):rep(30) }, (rd:read()))
      local conn = script_conn(req .. req, sizes)
      rd = resp.reader(conn, { max_value = #req - 1 })
      local v, err = rd:read()
      assert.is_nil(v); assert.matches("value too large", err)
      -- refused at the last bulk's declaration, before its body is read
      assert.is_true(conn.reads * sizes[1] < #req + sizes[1] - 30, "read " .. conn.reads * sizes[1])
    end
  end)

  it("encode with a maximum does not build a reply longer than it", function()
    assert.are.equal(resp.bulk_size(10), #resp.encode(("x"):rep(10)))
    assert.are.equal(17, resp.bulk_size(10))
    assert.are.equal("$3\r\nabc\r\n", resp.encode("abc", 9))
    assert.are.same({ nil, "reply too large" }, { resp.encode("abcd", 9) })
    local arr = { "abc", 12, resp.null }
    local wire = resp.encode(arr)
    assert.are.equal(wire, resp.encode(arr, #wire))
    assert.are.same({ nil, "reply too large" }, { resp.encode(arr, #wire - 1) })
    -- a reply naming one big string many times is refused without being built
    local big = ("z"):rep(1024 * 1024)
    local many = {}
    for i = 1, 1000 do many[i] = big end
    collectgarbage(); collectgarbage()
    local kb = collectgarbage("count")
    assert.are.same({ nil, "reply too large" }, { resp.encode(many, 64 * 1024 * 1024) })
    assert.is_true(collectgarbage("count") - kb < 10 * 1024)
  end)

  it("applies its limits", function()
    local rd = resp.reader(script_conn("*1\r\n*1\r\n:1\r\n", { 1 }), { max_depth = 1 })
    local _, err = rd:read()
    assert.matches("nested too deep", err)
    rd = resp.reader(script_conn("$100\r\n", { 1 }), { max_bulk = 99 })
    _, err = rd:read()
    assert.matches("invalid bulk length", err)
    -- an endless line is refused once it passes max_inline, whatever the chunking
    for _, sizes in ipairs({ { 1 }, { 7 }, { 4096 } }) do
      local conn = script_conn(("A"):rep(5000), sizes)
      rd = resp.reader(conn, { max_inline = 1000 })
      _, err = rd:read()
      assert.matches("line too long", err)
      -- it stops reading soon after the limit
      assert.is_true(conn.reads * sizes[1] <= 1003 + sizes[1], "read " .. conn.reads * sizes[1])
    end
  end)

  it("reads pipelined values over a real conn, then 'eof'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local n = H.scale(1000, 200)
      local parts = {}
      for i = 1, n do parts[i] = resp.command("SET", "key:" .. i, ("v"):rep(i % 50)) end
      local w = go(function()
        assert(c:write(table.concat(parts)))
        c:close()
      end)
      local rd = resp.reader(s)
      for i = 1, n do
        local v = rd:read()
        assert.are.same({ "SET", "key:" .. i, ("v"):rep(i % 50) }, v)
      end
      assert.are.same({ nil, "eof" }, { rd:read() })
      assert.is_true(go.wait(w, 5))
      s:close(); ln:close()
    end)
  end)

  it("a value cut by the peer closing mid-way gives 'eof'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(c:write("*2\r\n$5\r\nhel"))
      c:close()
      local rd = resp.reader(s)
      assert.are.same({ nil, "eof" }, { rd:read() })
      s:close(); ln:close()
    end)
  end)

  it("hostile declared sizes: no allocation follows the declaration", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local rd = resp.reader(s)
      collectgarbage(); collectgarbage()
      local kb = collectgarbage("count")
      -- 512 MiB declared (= max_bulk), 5 bytes sent, then the peer goes away
      assert(c:write("$536870912\r\nhello"))
      local g = go(function() return rd:read() end)
      go.sleep(0.02)
      assert.is_nil((go.wait(g, 0)))
      -- and a huge array count with 2 elements
      c:close()
      local ok, v, err = go.wait(g, 5)
      assert.is_true(ok); assert.is_nil(v); assert.are.equal("eof", err)
      assert.is_true(collectgarbage("count") - kb < 4096, "memory grew")
      s:close(); ln:close()

      c, s, ln = H.pair()
      rd = resp.reader(s)
      assert(c:write("*1048576\r\n:1\r\n:2\r\n"))
      c:close()
      assert.are.same({ nil, "eof" }, { rd:read() })
      assert.is_true(collectgarbage("count") - kb < 4096, "memory grew")
      s:close(); ln:close()

      -- above the limits: an error at once, without waiting for a body
      c, s, ln = H.pair()
      rd = resp.reader(s)
      assert(c:write("$536870913\r\n"))
      local v2, err2 = H.must_return(5, rd.read, rd)
      assert.is_nil(v2); assert.matches("invalid bulk length", err2)
      c:close(); s:close(); ln:close()
    end)
  end)

  it("passes the conn's timeout through and keeps the partial value", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local rd = resp.reader(s)
      assert(c:write("*2\r\n:1\r\n"))
      s:settimeout(0.05)
      local v, err = rd:read()
      assert.is_nil(v); assert.are.equal("timeout", err)
      s:settimeout(nil)
      assert(c:write(":2\r\n"))
      assert.are.same({ 1, 2 }, rd:read())
      c:close(); s:close(); ln:close()
    end)
  end)
end)
