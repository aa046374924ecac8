-- framing_spec: length-prefixed, delimited and fixed-length framing
-- (lua/goluarun/framing.lua), the pure encode_len/decode_len, and hostile peers:
-- truncated headers, lengths above max, zero-length frames, huge declared
-- lengths with no body, peers closing mid-frame.
local go = require "go"
local framing = require "goluarun.framing"
local H = require "support.helpers"

H.warmup()

local KiB = 1024

-- runs fn(client, server) on a fresh pair, checking fds
local function with_pair(fn)
  H.no_fd_leak(function()
    local c, s, ln = H.pair()
    local ok, err = pcall(fn, c, s)
    c:close(); s:close(); ln:close()
    if not ok then error(err, 0) end
  end)
end

local function kbytes()
  collectgarbage(); collectgarbage()
  return collectgarbage("count")
end

describe("framing.encode_len / decode_len", function()
  it("encodes a big-endian length of 1, 2 or 4 bytes", function()
    assert.are.equal("\3abc", framing.encode_len("abc", 1))
    assert.are.equal("\0\3abc", framing.encode_len("abc", 2))
    assert.are.equal("\0\0\1\0" .. ("x"):rep(256), framing.encode_len(("x"):rep(256), 4))
    assert.are.equal("\0", framing.encode_len("", 1))
    assert.are.equal("\255" .. ("y"):rep(255), framing.encode_len(("y"):rep(255), 1))
  end)

  it("round-trips with the rest of the buffer", function()
    for _, size in ipairs({ 1, 2, 4 }) do
      for _, p in ipairs({ "", "a", "\0\r\n\255", H.payload(200, size) }) do
        local buf = framing.encode_len(p, size) .. "REST"
        assert.are.same({ p, "REST" }, { framing.decode_len(buf, size) })
      end
    end
    local two = framing.encode_len("one", 2) .. framing.encode_len("", 2) .. framing.encode_len("three", 2)
    local a, rest = framing.decode_len(two, 2)
    local b, rest2 = framing.decode_len(rest, 2)
    local c, rest3 = framing.decode_len(rest2, 2)
    assert.are.same({ "one", "", "three", "" }, { a, b, c, rest3 })
  end)

  it("truncated headers and bodies are 'incomplete'", function()
    for _, size in ipairs({ 1, 2, 4 }) do
      local wire = framing.encode_len("hello", size)
      for cut = 0, #wire - 1 do
        assert.are.same({ nil, "incomplete" }, { framing.decode_len(wire:sub(1, cut), size) })
      end
    end
  end)

  it("a length above max is 'frame too large', even without a body", function()
    assert.are.same({ nil, "frame too large" }, { framing.decode_len("\0\11", 2, 10) })
    assert.are.same({ nil, "frame too large" }, { framing.decode_len("\255\255\255\255", 4, 1000) })
    assert.are.same({ "0123456789", "" }, { framing.decode_len("\0\10" .. "0123456789", 2, 10) })
    -- a huge declared length within max: incomplete, and nothing allocated for it
    local kb = kbytes()
    assert.are.same({ nil, "incomplete" }, { framing.decode_len("\255\255\255\255abc", 4) })
    assert.is_true(kbytes() - kb < 1024)
  end)

  it("raises on misuse", function()
    assert.has_error(function() framing.encode_len(("x"):rep(256), 1) end)
    assert.has_error(function() framing.encode_len(("x"):rep(65536), 2) end)
    assert.has_error(function() framing.encode_len("x", 3) end)
    assert.has_error(function() framing.encode_len(nil, 2) end)
    assert.has_error(function() framing.decode_len("x", 8) end)
    assert.has_error(function() framing.decode_len({}, 2) end)
    assert.has_error(function() framing.decode_len("x", 2, -1) end)
    assert.has_error(function() framing.decode_len("x", 2, 1.5) end)
  end)
end)

describe("framing.lenprefix", function()
  it("writes and reads frames of every size field, zero-length ones too", function()
    with_pair(function(c, s)
      for _, size in ipairs({ 1, 2, 4 }) do
        local w, r = framing.lenprefix(c, { size = size }), framing.lenprefix(s, { size = size })
        local msgs = { "", "a", "", H.payload(size == 1 and 255 or 3000, size), "\0\0\0\0", "" }
        local g = go(function()
          for _, m in ipairs(msgs) do assert(w:write(m)) end
        end)
        for _, m in ipairs(msgs) do assert.are.equal(m, r:read()) end
        assert.is_true(go.wait(g, 5))
      end
    end)
  end)

  it("defaults to a 4-byte length; a frame bigger than 64 KiB arrives whole", function()
    with_pair(function(c, s)
      local w, r = framing.lenprefix(c), framing.lenprefix(s)
      local big = H.payload(H.scale(3 * 1024 * KiB, 200 * KiB), 9)
      local g = go(function() assert(w:write(big)); assert(w:write("tail")) end)
      assert.are.equal(big, r:read())
      assert.are.equal("tail", r:read())
      assert.is_true(go.wait(g, 20))
    end)
  end)

  it("write raises if the payload exceeds max or the size field", function()
    with_pair(function(c)
      assert.has_error(function() framing.lenprefix(c, { size = 2, max = 10 }):write(("x"):rep(11)) end)
      assert.has_error(function() framing.lenprefix(c, { size = 1 }):write(("x"):rep(256)) end)
      assert.has_error(function() framing.lenprefix(c, { size = 2 }):write(42) end)
      -- max above what the size field holds is capped to it
      assert.has_error(function() framing.lenprefix(c, { size = 1, max = 1000 }):write(("x"):rep(256)) end)
    end)
  end)

  it("constructors raise on misuse", function()
    with_pair(function(c)
      assert.has_error(function() framing.lenprefix(nil) end)
      assert.has_error(function() framing.lenprefix(c, { size = 3 }) end)
      assert.has_error(function() framing.lenprefix(c, { size = 2, max = -5 }) end)
      assert.has_error(function() framing.lenprefix(c, { max = "big" }) end)
    end)
  end)

  it("a declared length above max: 'frame too large', and it stays so", function()
    with_pair(function(c, s)
      local r = framing.lenprefix(s, { size = 2, max = 100 })
      assert(c:write("\0\5hello", "\0\101", ("x"):rep(101), "\0\1z"))
      assert.are.equal("hello", r:read())
      assert.are.same({ nil, "frame too large" }, { r:read() })
      assert.are.same({ nil, "frame too large" }, { r:read() })
    end)
  end)

  it("a truncated header then close: 'eof' with the partial header", function()
    with_pair(function(c, s)
      local r = framing.lenprefix(s, { size = 4 })
      assert(c:write("\0\0"))
      c:close()
      local v, err, partial = r:read()
      assert.is_nil(v); assert.are.equal("eof", err); assert.are.equal("\0\0", partial)
    end)
  end)

  it("the peer closing mid-frame: 'eof' with what arrived", function()
    with_pair(function(c, s)
      local r = framing.lenprefix(s, { size = 2 })
      assert(c:write("\0\10abc"))
      c:close()
      local v, err, partial = r:read()
      assert.is_nil(v); assert.are.equal("eof", err); assert.are.equal("\0\10abc", partial)
    end)
    -- same with a body longer than one 64 KiB piece
    with_pair(function(c, s)
      local r = framing.lenprefix(s, { size = 4 })
      local sent = H.payload(H.scale(100 * KiB, 70 * KiB))
      local g = go(function()
        assert(c:write(string.pack(">I4", 200 * KiB), sent))
        c:close()
      end)
      local v, err, partial = r:read()
      assert.is_nil(v); assert.are.equal("eof", err)
      assert.are.equal(string.pack(">I4", 200 * KiB) .. sent, partial)
      assert.is_true(go.wait(g, 10))
    end)
  end)

  it("a huge declared length with no body allocates nothing for it", function()
    with_pair(function(c, s)
      local r = framing.lenprefix(s, { size = 4 }) -- max 4 GiB - 1
      local kb = kbytes()
      local g = go(function() return r:read() end)
      assert(c:write("\255\255\255\255", "tiny"))
      -- the reader waits for the rest; nothing of 4 GiB was reserved
      assert.is_nil((go.wait(g, 0.05)))
      assert.is_true(kbytes() - kb < 1024, "Lua memory grew")
      c:close()
      local ok, v, err = go.wait(g, 5)
      assert.is_true(ok); assert.is_nil(v); assert.are.equal("eof", err)
    end)
  end)

  it("eof between frames is a plain 'eof'", function()
    with_pair(function(c, s)
      local w, r = framing.lenprefix(c, { size = 1 }), framing.lenprefix(s, { size = 1 })
      assert(w:write("last"))
      c:closewrite()
      assert.are.equal("last", r:read())
      local v, err = r:read()
      assert.is_nil(v); assert.are.equal("eof", err)
    end)
  end)
end)

describe("framing.delimited", function()
  it("reads records split anywhere, the delimiter across writes too", function()
    with_pair(function(c, s)
      local r = framing.delimited(s, "\r\n")
      local g = go(function()
        for _, piece in ipairs({ "one\r", "\ntw", "o\r\n\r\n", "thr", "ee", "\r", "\n" }) do
          assert(c:write(piece))
          go.sleep(0.001)
        end
      end)
      assert.are.equal("one", r:read())
      assert.are.equal("two", r:read())
      assert.are.equal("", r:read())
      assert.are.equal("three", r:read())
      assert.is_true(go.wait(g, 5))
    end)
  end)

  it("write appends the delimiter and raises on bad records", function()
    with_pair(function(c, s)
      local w, r = framing.delimited(c, "|", { max = 8 }), framing.delimited(s, "|", { max = 8 })
      assert.are.equal(4, w:write("abc"))
      assert.are.equal("abc", r:read())
      assert.has_error(function() w:write("a|b") end)
      assert.has_error(function() w:write(("x"):rep(9)) end)
      assert.has_error(function() w:write(nil) end)
      assert.has_error(function() framing.delimited(c, "") end)
      assert.has_error(function() framing.delimited(c, nil) end)
      assert.has_error(function() framing.delimited(c, "\n", { max = -1 }) end)
    end)
  end)

  it("a record of exactly max bytes passes whatever the arrival; max+1 fails", function()
    with_pair(function(c, s)
      local r = framing.delimited(s, "\r\n", { max = 10 })
      -- the record alone first, the delimiter later
      assert(c:write(("a"):rep(10)))
      local g = go(function() return r:read() end)
      go.sleep(0.01)
      assert(c:write("\r\n"))
      local ok, v = go.wait(g, 5)
      assert.is_true(ok); assert.are.equal(("a"):rep(10), v)
      -- complete in one write
      assert(c:write(("b"):rep(10) .. "\r\n"))
      assert.are.equal(("b"):rep(10), r:read())
      assert(c:write(("c"):rep(11) .. "\r\n"))
      local v2, err = r:read()
      assert.is_nil(v2); assert.are.equal("frame too large", err)
      assert.are.same({ nil, "frame too large" }, { r:read() })
    end)
  end)

  it("an endless record fails once past max, without buffering it all", function()
    with_pair(function(c, s)
      local r = framing.delimited(s, "\n", { max = 4 * KiB })
      local g = go(function()
        -- keeps sending until the reader gives up and closes
        local chunk = ("z"):rep(1024)
        for _ = 1, 10000 do
          if not c:write(chunk) then return end
        end
      end)
      local v, err = H.must_return(10, r.read, r)
      assert.is_nil(v); assert.are.equal("frame too large", err)
      s:close()
      c:close()
      go.wait(g, 10)
    end)
  end)

  it("eof mid-record: 'eof' with the partial record", function()
    with_pair(function(c, s)
      local r = framing.delimited(s, "\r\n")
      assert(c:write("done\r\npart"))
      c:close()
      assert.are.equal("done", r:read())
      local v, err, partial = r:read()
      assert.is_nil(v); assert.are.equal("eof", err); assert.are.equal("part", partial)
    end)
  end)
end)

describe("framing.fixed", function()
  it("reads and writes records of n bytes", function()
    with_pair(function(c, s)
      local w, r = framing.fixed(c, 5), framing.fixed(s, 5)
      assert(w:write("abcde"))
      assert(c:write("fgh"))
      assert(c:write("ij"))
      assert.are.equal("abcde", r:read())
      assert.are.equal("fghij", r:read())
      assert.has_error(function() w:write("abc") end)
      assert.has_error(function() w:write("abcdef") end)
      assert.has_error(function() framing.fixed(c, 0) end)
      assert.has_error(function() framing.fixed(c, 1.5) end)
      assert.has_error(function() framing.fixed(nil, 4) end)
    end)
  end)

  it("records bigger than 64 KiB, and eof mid-record", function()
    with_pair(function(c, s)
      local n = H.scale(300 * KiB, 70 * KiB)
      local w, r = framing.fixed(c, n), framing.fixed(s, n)
      local p = H.payload(n, 4)
      local g = go(function()
        assert(w:write(p))
        assert(c:write(p:sub(1, 100)))
        c:close()
      end)
      assert.are.equal(p, r:read())
      local v, err, partial = r:read()
      assert.is_nil(v); assert.are.equal("eof", err); assert.are.equal(p:sub(1, 100), partial)
      assert.is_true(go.wait(g, 10))
    end)
  end)
end)
