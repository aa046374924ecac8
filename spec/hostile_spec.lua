-- hostile_spec: peers and conditions that misbehave (RELIABILITY B1-B5,
-- C1, C3, C9, C11, D1, D5, D11, E4). Every test counts fds before and
-- after (H.no_fd_leak) and is bounded in time.
local go = require "go"
local net = require "net"
local H = require "support.helpers"
local TU = H.testutil()

H.warmup()

local MiB = 1024 * 1024

-- a payload bigger than what loopback buffers can hold
local function big()
  return ("w"):rep(H.scale(32 * MiB, 2 * MiB))
end

describe("peer closes mid-stream", function()
  it("mid-line: the unterminated line is returned, then 'eof'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(c:write("complete\npartial li"))
      c:close()
      assert.are.equal("complete", s:read("l"))
      assert.are.equal("partial li", s:read("l"))
      local r, err = s:read("l")
      assert.is_nil(r); H.assert_err(err, "eof")
      s:close(); ln:close()
    end)
  end)

  it("mid-read(n): nil, 'eof', partial", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local g = go(function() return s:read(100) end)
      assert(c:write("abc"))
      go.sleep(0.01)
      c:close()
      local ok, r, err, partial = go.wait(g, 5)
      assert.is_true(ok)
      assert.is_nil(r); H.assert_err(err, "eof")
      assert.are.equal("abc", partial)
      s:close(); ln:close()
    end)
  end)

  it("mid-readuntil: the partial data is handed back with 'eof' or as the last piece", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(c:write("abc"))
      c:close()
      local r, err, partial = s:readuntil("\r\n\r\n")
      if r ~= nil then
        assert.are.equal("abc", r)
        local r2, err2 = s:readuntil("\r\n\r\n")
        assert.is_nil(r2); H.assert_err(err2, "eof")
      else
        H.assert_err(err, "eof")
        assert.are.equal("abc", partial)
      end
      s:close(); ln:close()
    end)
  end)

  it("eof is repeatable", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      c:close()
      for _ = 1, 3 do
        local r, err = s:read()
        assert.is_nil(r); H.assert_err(err, "eof")
      end
      s:close(); ln:close()
    end)
  end)
end)

describe("peer reset (RST via SO_LINGER 0)", function()
  it("a blocked write fails with 'connection reset' or 'broken pipe'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local data = big()
      local g = H.must_not_return(0.05, function() return c:write(data) end)
      assert(TU.linger0(s:fd()))
      s:close()
      local ok, n, err, written = go.wait(g, 5)
      assert.is_true(ok, "the blocked write was not woken by the reset")
      assert.is_nil(n)
      H.assert_err(err, { "connection reset", "broken pipe" })
      assert.are.equal("number", type(written))
      -- later writes keep failing, without killing the process
      local n2, err2 = c:write("more")
      assert.is_nil(n2)
      H.assert_err(err2, { "connection reset", "broken pipe" })
      c:close(); ln:close()
    end)
  end)

  it("a read after RST gives 'connection reset', not eof", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(TU.linger0(s:fd()))
      s:close()
      local r, err = H.must_return(5, c.read, c)
      assert.is_nil(r)
      H.assert_err(err, "connection reset")
      c:close(); ln:close()
    end)
  end)

  it("a blocked read is woken by RST with 'connection reset'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local g = H.must_not_return(0.05, function() return c:read("l") end)
      assert(TU.linger0(s:fd()))
      s:close()
      local ok, r, err = go.wait(g, 5)
      assert.is_true(ok)
      assert.is_nil(r)
      H.assert_err(err, "connection reset")
      c:close(); ln:close()
    end)
  end)
end)

describe("close from another goroutine", function()
  it("wakes a blocked reader and a blocked writer with 'closed'", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local data = big()
      local gr = go(function() return s:read() end)
      local gw = go(function() return s:write(data) end)
      assert.is_nil(go.wait(gr, 0.05), "read returned early")
      assert.is_nil(go.wait(gw, 0.05), "write returned early")
      s:close()
      local ok, r, err = go.wait(gr, 2)
      assert.is_true(ok, "blocked reader not woken by close")
      assert.is_nil(r); H.assert_err(err, "closed")
      local ok2, n, err2, written = go.wait(gw, 2)
      assert.is_true(ok2, "blocked writer not woken by close")
      assert.is_nil(n); H.assert_err(err2, "closed")
      assert.are.equal("number", type(written))
      c:close(); ln:close()
    end)
  end)

  it("wakes several goroutines queued on the same read", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local gs = {}
      for i = 1, 4 do gs[i] = go(function() return s:read("l") end) end
      go.sleep(0.02)
      s:close()
      for i = 1, 4 do
        local ok, r, err = go.wait(gs[i], 2)
        assert.is_true(ok, "reader " .. i .. " not woken")
        assert.is_nil(r); H.assert_err(err, "closed")
      end
      c:close(); ln:close()
    end)
  end)
end)

describe("listener close", function()
  it("accept on a closed listener gives 'closed'", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      ln:close()
      local c, err = ln:accept()
      assert.is_nil(c); H.assert_err(err, "closed")
      c, err = ln:accept(0.1)
      assert.is_nil(c); H.assert_err(err, "closed")
    end)
  end)

  it("closing wakes every blocked acceptor with 'closed'", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local gs = {}
      for i = 1, 3 do gs[i] = go(function() return ln:accept() end) end
      go.sleep(0.02)
      ln:close()
      for i = 1, 3 do
        local ok, c, err = go.wait(gs[i], 2)
        assert.is_true(ok, "acceptor " .. i .. " not woken")
        assert.is_nil(c); H.assert_err(err, "closed")
      end
    end)
  end)

  it("connections left in the backlog are not handed out after close", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local cs = {}
      for i = 1, 3 do cs[i] = assert(net.dial(ln:addr(), 5)) end
      ln:close()
      local c, err = ln:accept(0.1)
      assert.is_nil(c); H.assert_err(err, "closed")
      for i = 1, 3 do
        -- the client sees the connection go away
        cs[i]:settimeout(2)
        local r, rerr = cs[i]:read()
        assert.is_nil(r)
        H.assert_err(rerr, { "eof", "connection reset" })
        cs[i]:close()
      end
    end)
  end)
end)

describe("big transfers", function()
  it("a 64 MiB write to a slow reader arrives intact", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local size = H.scale(64 * MiB, 32 * 1024)
      local data = H.payload(size, 5)
      local w = go(function() return c:write(data) end)
      local pos, reads = 1, 0
      local ok = H.must_return(120, function()
        while pos <= size do
          local chunk, err = s:read()
          if not chunk then error("read failed at " .. pos .. ": " .. tostring(err)) end
          if data:sub(pos, pos + #chunk - 1) ~= chunk then
            error("corrupt data at offset " .. (pos - 1))
          end
          pos = pos + #chunk
          reads = reads + 1
          if reads % 64 == 0 then go.sleep(0.001) end
        end
        return true
      end)
      assert.is_true(ok)
      assert.are.same({ true, size }, { go.wait(w, 10) })
      c:close(); s:close(); ln:close()
    end)
  end)

  it("many small writes against exact reads keep every byte in order", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local n = H.scale(20000, 500)
      local w = go(function()
        for i = 1, n do assert(c:write(string.pack(">I4", i))) end
        c:closewrite()
      end)
      H.must_return(60, function()
        for i = 1, n do
          local b = assert(s:read(4))
          assert(string.unpack(">I4", b) == i, "out of order at " .. i)
        end
      end)
      local r, err = s:read()
      assert.is_nil(r); H.assert_err(err, "eof")
      assert.is_true((go.wait(w, 5)))
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("lines too long", function()
  it("a line longer than the limit fails, no unbounded buffering", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      s:setlimit(1024)
      assert(c:write(("x"):rep(5000), "\n"))
      local r, err = H.must_return(10, s.read, s, "l")
      assert.is_true(r == nil, "returned a line of " .. #(r or "") .. " bytes")
      H.assert_err(err, "line too long")
      c:close(); s:close(); ln:close()
    end)
  end)

  it("a peer that never sends a newline gets 'line too long', not a hang", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      s:setlimit(512)
      local w = go(function()
        for _ = 1, 40 do
          if not c:write(("y"):rep(100)) then return end
          go.sleep(0.001)
        end
      end)
      local r, err = H.must_return(10, s.read, s, "l")
      assert.is_nil(r); H.assert_err(err, "line too long")
      go.wait(w, 5)
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("many connections", function()
  it("2,000 concurrent connections x 100 messages, every byte checked", function()
    local nconn = H.scale(2000, 50)
    local nmsg = H.scale(100, 10)
    local soft, hard = TU.getnofile()
    local need = 2 * nconn + 200
    if soft ~= -1 and soft < need then
      assert(hard == -1 or hard >= need, "nofile hard limit too low: " .. hard)
      assert(TU.setnofile(need))
    end
    H.no_fd_leak(function()
      local ln = assert(net.serve("127.0.0.1:0", function(conn)
        while true do
          local line = conn:read("l")
          if not line then break end
          if not conn:write(line, "\n") then break end
        end
        conn:close()
      end, { backlog = 4096 }))
      local addr = ln:addr()
      local results = go.chan(nconn)
      local started = go.now()
      for k = 1, nconn do
        go(function()
          local c, err = net.dial(addr, 30)
          if not c then results:send("dial " .. k .. ": " .. tostring(err)); return end
          for i = 1, nmsg do
            local msg = string.format("conn %d msg %d %s", k, i, ("p"):rep(i % 50))
            local ok, werr = c:write(msg, "\n")
            if not ok then results:send("write: " .. tostring(werr)); c:close(); return end
            local back, rerr = c:read("l")
            if back ~= msg then
              results:send(string.format("conn %d msg %d: got %s (%s)", k, i,
                tostring(back), tostring(rerr)))
              c:close()
              return
            end
          end
          c:close()
          results:send(true)
        end)
      end
      local good, bad = 0, {}
      for _ = 1, nconn do
        local i, v = go.select({ { results, "recv" } }, 120)
        assert.truthy(i, "clients did not finish in time (" .. good .. " done)")
        if v == true then good = good + 1 else bad[#bad + 1] = v end
      end
      assert.are.same({}, bad)
      assert.are.equal(nconn, good)
      assert.is_true(go.now() - started < 120)
      ln:close()
    end)
  end)

  it("a handler that raises does not stop the others", function()
    H.no_fd_leak(function()
      local ln = assert(net.serve("127.0.0.1:0", function(conn)
        local c <close> = conn
        while true do
          local line = c:read("l")
          if not line then return end
          if line == "boom" then error("handler exploded on purpose") end
          c:write(line, "\n")
        end
      end))
      local a = assert(net.dial(ln:addr(), 5))
      local b = assert(net.dial(ln:addr(), 5))
      assert(a:write("one\n")); assert.are.equal("one", a:read("l"))
      assert(b:write("boom\n"))
      b:settimeout(5)
      local r, err = b:read()
      assert.is_nil(r)
      H.assert_err(err, { "eof", "connection reset" })
      assert(a:write("two\n")); assert.are.equal("two", a:read("l"))
      local d = assert(net.dial(ln:addr(), 5))
      assert(d:write("three\n")); assert.are.equal("three", d:read("l"))
      a:close(); b:close(); d:close(); ln:close()
    end)
  end)
end)

describe("stale fd reuse (D1)", function()
  it("a conn that reuses a closed conn's fd gets no phantom data, eof or error", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local rounds, reused_seen = 20, 0
      for round = 1, rounds do
        local c = assert(net.dial(ln:addr(), 5))
        local s = assert(ln:accept(5))
        local fds = { [c:fd()] = true, [s:fd()] = true }
        -- leave events pending for the old fds: a parked reader, unread
        -- data in flight and a FIN, then close both ends at once
        local parked = go(function() return s:read(1000) end)
        assert(c:write("old data for the old fd"))
        s:close(); c:close()
        go.wait(parked, 1)
        local held = {}
        local found
        for _ = 1, 4 do
          local nc = assert(net.dial(ln:addr(), 5))
          local ns = assert(ln:accept(5))
          held[#held + 1] = nc; held[#held + 1] = ns
          if fds[nc:fd()] then found = { nc, ns } break end
          if fds[ns:fd()] then found = { ns, nc } break end
        end
        if found then
          reused_seen = reused_seen + 1
          local conn, peer = found[1], found[2]
          local g = H.must_not_return(0.05, function() return conn:read(1) end)
          assert(peer:write("N"))
          local ok, r, err = go.wait(g, 2)
          assert.is_true(ok)
          assert.are.equal("N", r, "round " .. round .. ": " .. tostring(err))
          assert(conn:write("back"))
          assert.are.equal("back", peer:read(4))
        end
        for _, h in ipairs(held) do h:close() end
      end
      assert.is_true(reused_seen > 0, "no fd was ever reused")
      ln:close()
    end)
  end)
end)

describe("fd exhaustion (C11)", function()
  it("the acceptor does not spin on EMFILE and recovers when fds free up", function()
    local soft0 = TU.getnofile()
    local dups = {}
    local function release()
      for i = #dups, 1, -1 do TU.close(dups[i]); dups[i] = nil end
      TU.setnofile(soft0 == -1 and 1048576 or soft0)
    end
    finally(release)
    H.no_fd_leak(function()
      local accepted = 0
      local ln = assert(net.serve("127.0.0.1:0", function(conn)
        accepted = accepted + 1
        local line = conn:read("l")
        if line then conn:write(line, "\n") end
        conn:close()
      end))
      local addr = ln:addr()
      -- lower the limit and fill every free slot
      assert(TU.setnofile(H.nfds() + 64))
      while true do
        local fd = TU.dup(0)
        if not fd then break end
        dups[#dups + 1] = fd
        assert(#dups < 100000, "dup never failed")
      end
      assert.is_true(#dups > 0)
      -- free one slot for the client socket
      TU.close(table.remove(dups))
      local c, err = net.dial(addr, 5)
      assert.truthy(c, "dial: " .. tostring(err))
      assert(c:write("hello\n"))
      -- the connection waits in the backlog: the acceptor must not spin
      go.sleep(0.05)
      local cpu0, t0 = TU.cputime(), go.now()
      go.sleep(0.3)
      local cpu = (TU.cputime() - cpu0) / (go.now() - t0)
      assert.is_true(cpu < 0.3, string.format("CPU %.0f%% of a core while fds are exhausted", cpu * 100))
      assert.are.equal(0, accepted)
      -- free the fds: the pending connection is accepted and served
      release()
      c:settimeout(5)
      local line, rerr = c:read("l")
      assert.are.equal("hello", line, tostring(rerr))
      assert.are.equal(1, accepted)
      c:close()
      ln:close()
    end)
  end)
end)

describe("signal storm (D11)", function()
  it("EINTR during reads, writes and idle waits changes nothing visible", function()
    H.no_fd_leak(function()
      assert(TU.signal_storm(10, 1, 1.0))   -- SIGUSR1 every 1 ms for 1 s
      local c, s, ln = H.pair()
      local size = H.scale(8 * MiB, 16 * 1024)
      local data = H.payload(size, 9)
      -- a transfer that runs during the storm
      local w = go(function() return c:write(data) end)
      local r = go(function()
        local parts, got = {}, 0
        while got < size do
          local d, err = s:read()
          if not d then return nil, err end
          parts[#parts + 1] = d
          got = got + #d
          if #parts % 32 == 0 then go.sleep(0.001) end
        end
        return table.concat(parts)
      end)
      -- idle waits during the storm
      local slept = H.timed(go.sleep, 0.2)
      assert.is_true(slept >= 0.19 and slept < 1.5, "sleep " .. slept)
      local l2 = assert(net.listen("127.0.0.1:0"))
      local dt, a, aerr = H.timed(l2.accept, l2, 0.2)
      assert.is_nil(a); H.assert_err(aerr, "timeout")
      assert.is_true(dt >= 0.15 and dt < 1.5, "accept timeout " .. dt)
      l2:close()
      assert.are.equal("timeout", select(2, go.select({ { go.chan(), "recv" } }, 0.1)))
      -- a read that idles, then gets data
      local c2, s2, ln2 = H.pair()
      local idle = go(function() return s2:read("l") end)
      go.sleep(0.2)
      assert(c2:write("after idle\n"))
      assert.are.same({ true, "after idle" }, { go.wait(idle, 5) })
      c2:close(); s2:close(); ln2:close()
      -- the transfer is intact
      local okw, n = go.wait(w, 60)
      assert.is_true(okw); assert.are.equal(size, n)
      local okr, got, rerr = go.wait(r, 60)
      assert.is_true(okr)
      assert.are.equal(size, got and #got or tostring(rerr))
      assert.is_true(got == data, "data corrupted during the storm")
      assert.is_true(H.wait_until(function() return not TU.storm_running() end, 5))
      assert.is_true(TU.storm_count() > 100, "only " .. TU.storm_count() .. " signals sent")
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("dial that never completes (C6)", function()
  it("times out against a full backlog and leaks no fd", function()
    H.no_fd_leak(function()
      -- a listener that never accepts: once its queue is full, loopback SYNs
      -- are dropped and further dials stay in progress
      local ln = assert(net.listen("127.0.0.1:0", { backlog = 1 }))
      local addr = ln:addr()
      local held, timeouts = {}, 0
      for _ = 1, 16 do
        local t0 = go.now()
        local c, err = net.dial(addr, 0.2)
        if c then
          held[#held + 1] = c
        else
          H.assert_err(err, "timeout")
          local dt = go.now() - t0
          assert.is_true(dt >= 0.15 and dt < 2, "dial timeout after " .. dt)
          timeouts = timeouts + 1
          if timeouts == 3 then break end
        end
      end
      assert.are.equal(3, timeouts)
      for _, c in ipairs(held) do c:close() end
      ln:close()
    end)
  end)

  it("closing the listener side does not leave the dialer hanging", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { backlog = 1 }))
      local g = go(function()
        local out = {}
        for i = 1, 8 do out[i] = { net.dial(ln:addr(), 0.3) } end
        return out
      end)
      local ok, out = go.wait(g, 10)
      assert.is_true(ok)
      for _, r in ipairs(out) do if r[1] then r[1]:close() end end
      ln:close()
    end)
  end)
end)

describe("no busy loop (D4)", function()
  it("a readable socket that nobody reads costs no CPU", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      assert(c:write(("x"):rep(1000)))
      -- s has unread data and a registered pollDesc (it waited once)
      local g = go(function() return s:read(2000) end)
      go.sleep(0.05)
      assert(c:write(("y"):rep(500)))
      local cpu0, t0 = TU.cputime(), go.now()
      go.sleep(0.4)
      local used = (TU.cputime() - cpu0) / (go.now() - t0)
      assert.is_true(used < 0.2, ("%.0f%% of a core while idle"):format(used * 100))
      c:close()
      local ok, r, err = go.wait(g, 5)
      assert.is_true(ok); assert.is_nil(r); H.assert_err(err, "eof")
      s:close(); ln:close()
    end)
  end)
end)
