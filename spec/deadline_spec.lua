-- deadline_spec: read/write/accept timeouts and absolute deadlines
-- (RELIABILITY A1-A6, D2). Windows are generous: a 0.1 s timeout must
-- land between 0.05 s and 1.0 s.
--
-- Assertions about odd values (documented here):
--   * huge timeouts/deadlines (1e12 s, math.huge) never fire;
--   * a negative timeout or a deadline in the past fails at once with
--     "timeout" (Go's rule), or raises: either is accepted, but never a
--     hang or data;
--   * NaN raises, or fails with an error at once: either is accepted,
--     but never a hang or data.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

H.warmup()

local MIN, MAX = 0.05, 1.0        -- window for a 0.1 s timeout

local function in_window(dt)
  return dt >= MIN and dt < MAX
end

-- a payload bigger than what loopback buffers can hold
local function big()
  return ("x"):rep(H.scale(32 * 1024 * 1024, 2 * 1024 * 1024))
end

describe("read timeouts", function()
  local c, s, ln
  before_each(function() c, s, ln = H.pair() end)
  after_each(function() c:close(); s:close(); ln:close() end)

  it("settimeout: chunk read times out in the window", function()
    s:settimeout(0.1)
    local dt, r, err = H.timed(s.read, s)
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.is_true(in_window(dt), "took " .. dt)
  end)

  it("settimeout: exact read returns the partial data with the timeout", function()
    assert(c:write("ab"))
    s:settimeout(0.1)
    local dt, r, err, partial = H.timed(s.read, s, 5)
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.are.equal("ab", partial)
    assert.is_true(in_window(dt), "took " .. dt)
  end)

  it("settimeout: a line read times out; the conn stays usable", function()
    s:settimeout(0.1)
    assert(c:write("no end"))
    local r, err = s:read("l")
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    s:settimeout(nil)
    assert(c:write(" yet\n"))
    local line = s:read("l")
    -- the bytes before the timeout are either kept or handed back as
    -- partial data, never mixed up
    assert.truthy(line == "no end yet" or line == " yet", tostring(line))
  end)

  it("the idle timeout applies to each read, not to the whole conn", function()
    s:settimeout(0.15)
    local w = go(function()
      for i = 1, 5 do go.sleep(0.05); c:write(tostring(i)) end
    end)
    for i = 1, 5 do
      assert.are.equal(tostring(i), s:read(1))
    end
    go.wait(w, 5)
  end)

  it("a wait's timeout counts from its own start, after waits that ended early", function()
    -- the first wait's timer (due 0.3 s after it began) stays armed past
    -- its wait and comes due 0.1 s into the last read's: re-armed then,
    -- not fired
    s:settimeout(0.3)
    for _ = 1, 2 do
      local w = go(function() go.sleep(0.1); c:write("x") end)
      assert.are.equal("x", s:read(1))
      go.wait(w, 5)
    end
    local dt, r, err = H.timed(s.read, s, 1)
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.is_true(dt >= 0.25 and dt < 2, "took " .. dt)
  end)

  it("setreaddeadline: times out at the absolute time", function()
    s:setreaddeadline(go.now() + 0.1)
    local dt, r, err = H.timed(s.read, s, 1)
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.is_true(in_window(dt), "took " .. dt)
  end)

  it("setdeadline sets both directions", function()
    s:setdeadline(go.now() + 0.1)
    local dt, r, err = H.timed(s.read, s)
    assert.is_nil(r); H.assert_err(err, "timeout")
    assert.is_true(in_window(dt), "took " .. dt)
    local r2, err2 = s:write("x")
    assert.is_nil(r2); H.assert_err(err2, "timeout")
  end)
end)

describe("a deadline that fires before the poller looked", function()
  -- The reader's last read was short (drained: its next read skips the
  -- system call until an edge) and the bytes arrive before it parks; a
  -- goroutine on the same P then runs past the read's deadline, so the
  -- timer fires in the scheduler round before any poll sees the edge.
  local function late_poll(prepare, read)
    local c, s, ln = H.pair()
    ln:close()
    s:settimeout(0.001)
    assert.is_nil(s:read()) -- a wait: the fd is in epoll now
    assert(c:write("a"))
    assert.are.equal("a", s:read()) -- short read: drained
    prepare(c)
    go.start(function() -- a local goroutine: stays on this P
      local t = go.now()
      while go.now() - t < 0.05 do end
    end)
    s:settimeout(0.005)
    local r = table.pack(read(s))
    c:close(); s:close()
    return table.unpack(r, 1, r.n)
  end

  it("bytes already in the kernel are read, not a timeout", function()
    local r, err = late_poll(function(c) assert(c:write("hello")) end,
                             function(s) return s:read() end)
    -- GOLUA_MOCKEAGAIN reads one byte at a time
    if H.mock() then assert.is_truthy(r and #r > 0 and ("hello"):find(r, 1, true) == 1, tostring(err))
    else assert.are.equal("hello", r, tostring(err)) end
  end)

  it("a FIN already in the kernel is eof, not a timeout", function()
    local r, err = late_poll(function(c) assert(c:closewrite()) end,
                             function(s) return s:read() end)
    assert.is_nil(r)
    H.assert_err(err, "eof")
  end)

  it("an exact read gets what came and its timeout", function()
    local r, err, part = late_poll(function(c) assert(c:write("abc")) end,
                                   function(s) return s:read(5) end)
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    if H.mock() then assert.is_truthy(#part > 0 and ("abc"):find(part, 1, true) == 1, part)
    else assert.are.equal("abc", part) end
  end)
end)

describe("deadline in the past", function()
  it("fails at once with 'timeout' even when data is ready, repeatedly", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(c:write("data"))
      s:setreaddeadline(go.now() - 5)
      for _ = 1, 3 do
        local dt, r, err = H.timed(s.read, s)
        assert.is_nil(r)
        H.assert_err(err, "timeout")
        assert.is_true(dt < 0.5, "took " .. dt)
      end
      local r, err = s:read(4)
      assert.is_nil(r); H.assert_err(err, "timeout")
      r, err = s:read("l")
      assert.is_nil(r); H.assert_err(err, "timeout")
      -- clearing it gives the data, nothing lost
      s:setreaddeadline(nil)
      assert.are.equal("data", s:read(4))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("after clearing it a read blocks again; close then returns 'closed'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      s:setreaddeadline(go.now() - 1)
      local r, err = s:read()
      assert.is_nil(r); H.assert_err(err, "timeout")
      s:setreaddeadline(nil)
      local g = H.must_not_return(0.1, function() return s:read() end)
      s:close()
      local ok, r2, err2 = go.wait(g, 1)
      assert.is_true(ok, "read did not return after close")
      assert.is_nil(r2)
      H.assert_err(err2, "closed")
      c:close(); ln:close()
    end)
  end)

  it("a write deadline in the past fails at once though the buffer has room", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      c:setwritedeadline(go.now() - 1)
      local dt, n, err = H.timed(c.write, c, "x")
      assert.is_nil(n)
      H.assert_err(err, "timeout")
      assert.is_true(dt < 0.5)
      c:setwritedeadline(nil)
      assert.are.equal(1, c:write("y"))
      assert.are.equal("y", s:read(1))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("a negative timeout fails at once or raises (never hangs)", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(c:write("data"))
      local ok = pcall(s.settimeout, s, -1)
      if ok then
        local r, err = H.must_return(1, s.read, s)
        assert.is_nil(r)
        H.assert_err(err, "timeout")
        s:settimeout(nil)
      end
      assert.are.equal("data", s:read(4))
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("deadline changed while blocked", function()
  local c, s, ln
  before_each(function() c, s, ln = H.pair() end)
  after_each(function() c:close(); s:close(); ln:close() end)

  it("moved into the past: the reader wakes promptly with 'timeout'", function()
    local g = H.must_not_return(0.05, function() return s:read() end)
    local t0 = go.now()
    s:setreaddeadline(go.now() - 1)
    local ok, r, err = go.wait(g, 1)
    assert.is_true(ok, "blocked reader was not woken")
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.is_true(go.now() - t0 < 0.5)
  end)

  it("set (from none) while blocked: applies to the blocked read", function()
    local g = H.must_not_return(0.05, function() return s:read() end)
    local t0 = go.now()
    s:setreaddeadline(go.now() + 0.1)
    local ok, r, err = go.wait(g, 2)
    assert.is_true(ok)
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.is_true(in_window(go.now() - t0), "took " .. (go.now() - t0))
  end)

  it("extended while blocked: does not fire early", function()
    s:setreaddeadline(go.now() + 0.1)
    local g = go(function() return s:read(4) end)
    go.sleep(0.02)
    s:setreaddeadline(go.now() + 10)
    -- the old 0.1 s deadline must not fire
    local r = go.wait(g, 0.3)
    assert.is_nil(r, "the read returned at the old deadline")
    assert(c:write("late"))
    local ok, d = go.wait(g, 2)
    assert.is_true(ok)
    assert.are.equal("late", d)
  end)

  it("moved earlier while blocked: fires at the new time", function()
    s:setreaddeadline(go.now() + 10)
    local g = go(function() return s:read() end)
    go.sleep(0.02)
    local t0 = go.now()
    s:setreaddeadline(go.now() + 0.1)
    local ok, r, err = go.wait(g, 2)
    assert.is_true(ok, "the earlier deadline was lost")
    assert.is_nil(r)
    H.assert_err(err, "timeout")
    assert.is_true(in_window(go.now() - t0), "took " .. (go.now() - t0))
  end)

  it("cleared while blocked: the read stays blocked", function()
    s:setreaddeadline(go.now() + 0.1)
    local g = go(function() return s:read() end)
    go.sleep(0.02)
    s:setreaddeadline(nil)
    assert.is_nil(go.wait(g, 0.3), "the cleared deadline fired")
    assert(c:write("k"))
    assert.are.same({ true, "k" }, { go.wait(g, 2) })
  end)

  it("a write deadline moved into the past wakes a blocked writer", function()
    local data = big()
    local g = H.must_not_return(0.05, function() return c:write(data) end)
    c:setwritedeadline(go.now() - 1)
    local ok, n, err, written = go.wait(g, 2)
    assert.is_true(ok, "blocked writer was not woken")
    assert.is_nil(n)
    H.assert_err(err, "timeout")
    assert.are.equal("number", type(written))
    assert.is_true(written >= 0 and written < #data)
  end)
end)

describe("write timeouts", function()
  it("a write to a peer that does not read times out with the count written", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local data = big()
      c:settimeout(0.2)
      local dt, n, err, written = H.timed(c.write, c, data)
      assert.is_nil(n)
      H.assert_err(err, "timeout")
      assert.is_true(written > 0 and written < #data, "written " .. tostring(written))
      assert.is_true(dt >= 0.1 and dt < 3.0, "took " .. dt)
      -- the bytes counted as written are really there, in order
      c:settimeout(nil)
      c:close()
      local got = s:read("a")
      assert.are.equal(written, #got)
      assert.is_true(data:sub(1, written) == got, "delivered bytes differ")
      s:close(); ln:close()
    end)
  end)

  it("setwritedeadline: a blocked write returns 'timeout' in the window", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local data = big()
      c:setwritedeadline(go.now() + 0.2)
      local dt, n, err = H.timed(c.write, c, data)
      assert.is_nil(n)
      H.assert_err(err, "timeout")
      assert.is_true(dt >= 0.1 and dt < 3.0, "took " .. dt)
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("accept timeouts", function()
  it("ln:accept(0.1) gives 'timeout' in the window", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local dt, c, err = H.timed(ln.accept, ln, 0.1)
      assert.is_nil(c)
      H.assert_err(err, "timeout")
      assert.is_true(in_window(dt), "took " .. dt)
      -- the listener is still fine
      local d = assert(net.dial(ln:addr(), 5))
      local a = assert(ln:accept(5))
      d:close(); a:close(); ln:close()
    end)
  end)

  it("accept without timeout blocks; close returns 'closed'", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local g = H.must_not_return(0.1, function() return ln:accept() end)
      ln:close()
      local ok, c, err = go.wait(g, 1)
      assert.is_true(ok)
      assert.is_nil(c)
      H.assert_err(err, "closed")
    end)
  end)

  it("accept with timeout 0 polls", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local dt, c, err = H.timed(ln.accept, ln, 0)
      assert.is_nil(c)
      H.assert_err(err, "timeout")
      assert.is_true(dt < 0.5)
      ln:close()
    end)
  end)
end)

describe("dial timeout", function()
  it("a dial with a timeout to a live listener succeeds", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local c = assert(net.dial(ln:addr(), 0.5))
      local s = assert(ln:accept(1))
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("huge and odd values", function()
  local c, s, ln
  before_each(function() c, s, ln = H.pair() end)
  after_each(function() c:close(); s:close(); ln:close() end)

  it("huge timeouts do not fire (1e12, math.huge)", function()
    for _, t in ipairs({ 1e12, math.huge, 2^53, 2^63 }) do
      s:settimeout(t)
      local g = H.must_not_return(0.1, function() return s:read(1) end)
      assert(c:write("h"))
      assert.are.same({ true, "h" }, { go.wait(g, 2) })
    end
    s:settimeout(nil)
  end)

  it("huge deadlines do not fire", function()
    for _, t in ipairs({ go.now() + 1e12, math.huge, 2^63 }) do
      s:setreaddeadline(t)
      local g = H.must_not_return(0.1, function() return s:read(1) end)
      assert(c:write("d"))
      assert.are.same({ true, "d" }, { go.wait(g, 2) })
    end
    s:setreaddeadline(nil)
  end)

  it("a huge accept timeout does not fire", function()
    local l2 = assert(net.listen("127.0.0.1:0"))
    local ga = H.must_not_return(0.1, function() return l2:accept(math.huge) end)
    l2:close()
    local ok, a, err = go.wait(ga, 2)
    assert.is_true(ok); assert.is_nil(a); H.assert_err(err, "closed")
  end)

  -- (in a subprocess: a goroutine left in a long sleep would keep this
  -- process alive after busted returns)
  it("huge sleeps, select and wait timeouts do not fire (subprocess)", function()
    local r = H.run([[
      local ch = go.chan()
      local gs = go(function() go.sleep(1e12); return "woke" end)
      local gh = go(function() go.sleep(math.huge); return "woke" end)
      local g63 = go(function() go.sleep(2^63); return "woke" end)
      local gc = go(function() return go.select({ { ch, "recv" } }, math.huge) end)
      local gw = go(function() return go.wait(gs, 2^63) end)
      local ga = go(function() return go.after(1e12):recv() end)
      go.sleep(0.2)
      for _, g in ipairs({ gs, gh, g63, gc, gw, ga }) do
        io.stdout:write(tostring(go.wait(g, 0) == nil), " ")
      end
      -- a short timer still fires among the huge ones
      local t0 = go.now()
      go.sleep(0.05)
      io.stdout:write(tostring(go.now() - t0 < 1), "\n")
      os.exit(0)
    ]], nil, { timeout = 20 })
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.are.equal("true true true true true true true\n", r.stdout)
  end)

  it("NaN as a timeout raises or fails at once (never hangs, never data)", function()
    local ok = pcall(s.settimeout, s, 0 / 0)
    if ok then
      local r, err = H.must_return(1, s.read, s)
      assert.is_nil(r)
      assert.are.equal("string", type(err))
      s:settimeout(nil)
    end
    local ok2 = pcall(s.setreaddeadline, s, 0 / 0)
    if ok2 then
      local r, err = H.must_return(1, s.read, s)
      assert.is_nil(r)
      assert.are.equal("string", type(err))
      s:setreaddeadline(nil)
    end
    -- the conn still works
    assert(c:write("n"))
    assert.are.equal("n", s:read(1))
  end)

  it("NaN or negative sleeps raise or return at once", function()
    for _, v in ipairs({ 0 / 0, -1, -math.huge }) do
      local ok, dt = pcall(H.must_return, 1, function()
        return H.timed(go.sleep, v)
      end)
      if ok then
        assert.is_true(dt < 0.5)
      else
        assert.is_nil(tostring(dt):find("did not return", 1, true),
          "go.sleep(" .. tostring(v) .. ") hung")
      end
    end
  end)

  it("bad types raise", function()
    assert.has_error(function() s:settimeout("soon") end)
    assert.has_error(function() s:setreaddeadline({}) end)
    assert.has_error(function() go.sleep("soon") end)
  end)
end)

describe("stale deadline after fd reuse (D2)", function()
  it("a closed conn's deadline does not fire on the conn reusing its fd", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      for _ = 1, 5 do
        local c = assert(net.dial(ln:addr(), 5))
        local s = assert(ln:accept(5))
        local fd = s:fd()
        s:setreaddeadline(go.now() + 0.1)
        s:close(); c:close()
        local c2 = assert(net.dial(ln:addr(), 5))
        local s2 = assert(ln:accept(5))
        local reused = (s2:fd() == fd) and s2 or (c2:fd() == fd) and c2 or nil
        local peer = reused == s2 and c2 or s2
        if reused then
          local g = H.must_not_return(0.25, function() return reused:read(1) end)
          assert(peer:write("r"))
          assert.are.same({ true, "r" }, { go.wait(g, 2) })
        end
        c2:close(); s2:close()
      end
      ln:close()
    end)
  end)
end)
