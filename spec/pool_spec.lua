-- pool_spec: net.pool and net.defaultpool (docs/API.md "Pools") against a
-- line server of this VM: reuse, the key, what put refuses, an idle conn
-- the peer closes leaving the pool when the close arrives, the idle
-- timeout, max_idle (LRU), max_conns with a bounded wait, close, and under
-- load: no conn handed out twice at once, no fd leaked after 10,000
-- requests with random server-side closes.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

H.warmup()

-- a line server: answers "LINE\n" per line; "close" closes after the
-- answer, "extra" answers two lines, "bye" closes without answering;
-- opts.close_rate closes after that fraction of answers (seeded)
local function line_server(opts)
  opts = opts or {}
  local ln = assert(net.listen("127.0.0.1:0"))
  local conns = { sent = go.chan(64) } -- sent: "extra"/"close" are done
  local rnd = opts.seed and math.random or nil
  if opts.seed then math.randomseed(opts.seed) end
  go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      conns[#conns + 1] = c
      go(function()
        c:settimeout(H.scale(10, 30))
        local l
        while true do
          l = c:read("l")
          if not l or l == "bye" then break end
          if l == "extra" then
            c:write(l, "\nsurprise\n")
            conns.sent:send(l)
          else
            c:write(l, "\n")
          end
          if l == "close" or (rnd and rnd() < opts.close_rate) then break end
        end
        c:close()
        if l == "close" then conns.sent:send(l) end
      end)
    end
  end)
  return ln, ln:addr(), conns
end

local function ask(c, line)
  local ok, err = c:write(line, "\n")
  if not ok then return nil, err end
  return c:read("l")
end

describe("net.pool", function()
  it("hands an idle conn back for the same address and counts reuse", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local c = assert(p:dial(addr, 2))
      assert.are.equal(0, c:reused())
      assert.are.equal("a", ask(c, "a"))
      assert.is_true(p:put(c))
      assert.are.same({ idle = 1, active = 0, dials = 1, reuses = 0 }, p:stats())
      local c2 = assert(p:dial(addr, 2))
      assert.are.equal(c, c2)
      assert.are.equal(1, c2:reused())
      assert.are.equal("b", ask(c2, "b"))
      assert.are.same({ idle = 0, active = 1, dials = 1, reuses = 1 }, p:stats())
      -- another address is another key
      local ln2, addr2 = line_server()
      local d = assert(p:dial(addr2, 2))
      assert.are_not.equal(c2, d)
      assert.is_true(p:put(d))
      assert.is_true(p:put(c2))
      assert.are.equal(2, p:stats().idle)
      p:close()
      ln2:close()
      assert.are.equal(0, p:stats().idle)
    end)
  end)

  it("dial and put's one-call steps: most recent first, dropped conns skipped, counts exact", function()
    local ln, addr, conns = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ max_idle = 4 })
      local a, b, c = assert(p:dial(addr, 2)), assert(p:dial(addr, 2)), assert(p:dial(addr, 2))
      for _, x in ipairs({ a, b, c }) do assert.are.equal("x", ask(x, "x")) end
      assert.is_true(p:put(a))
      assert.is_true(p:put(b))
      assert.is_true(p:put(c))
      assert.are.same({ idle = 3, active = 0, dials = 3, reuses = 0 }, p:stats())
      -- the server closes c's and b's sides: they leave when the close arrives
      for i = #conns, 1, -1 do
        local sc = conns[i]
        if sc:remoteaddr() == c:localaddr() or sc:remoteaddr() == b:localaddr() then sc:close() end
      end
      assert.is_true(H.wait_until(function() return p:stats().idle == 1 end, 5))
      local got = assert(p:dial(addr, 2)) -- past the two dropped ones: a
      assert.are.equal(a, got)
      assert.are.same({ idle = 0, active = 1, dials = 3, reuses = 1 }, p:stats())
      assert.are.equal(0, #p.lists[addr])
      local fresh = assert(p:dial(addr, 2))
      assert.are.same({ idle = 0, active = 2, dials = 4, reuses = 1 }, p:stats())
      -- put clears the user's deadline and timeout: the next user starts clean
      got:setdeadline(go.now() - 1)
      got:settimeout(0)
      assert.is_true(p:put(got))
      assert.is_true(p:put(fresh))
      assert.are.equal(fresh, assert(p:dial(addr, 2)))
      local again = assert(p:dial(addr, 2))
      assert.are.equal(got, again)
      assert.are.equal("y", ask(again, "y"))
      assert.is_true(p:put(again))
      assert.has_error(function() p:put({}) end)
      -- the C steps themselves refuse what is not theirs
      local set = p.set
      assert.has_error(function() set:takelast(nil, p.keyof, addr) end)
      assert.has_error(function() set:takelast({ "x" }, p.keyof, addr) end)
      assert.has_error(function() set:putlast({}, p.keyof, "x") end)
      assert.has_error(function() set.takelast({}, {}, p.keyof, addr) end)
      assert.is_false(set:putlast({ 1, 2, 3, 4 }, p.keyof, fresh)) -- full: the slow path's
      assert.is_true(p:put(fresh))
      p:close()
      assert.are.equal(0, p:stats().idle)
    end)
  end)

  it("offers dial's and put's common cases as C closures (_take, _put) for the HTTP client", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      assert.is_nil(p._take(addr)) -- (nothing idle yet)
      assert.is_nil(p._take(nil))
      assert.is_false(p._put(5)) -- (not the pool's: pool:put raises)
      assert.is_false(p._put(nil))
      assert.has_error(function() p:put(5) end, "pool:put: this connection did not come from this pool")
      assert.has_error(function() p.set:bind(1, {}) end)
      local c = assert(p:dial(addr, 5))
      assert.are.equal("a", ask(c, "a"))
      assert.is_false(p._put(c)) -- (no list for its key yet: pool:put makes it)
      assert.is_true(p:put(c))
      assert.are.equal(c, p._take(addr))
      assert.is_true(p._put(c)) -- (now the list is there)
      assert.are.equal(1, p:stats().idle)
      local t0 = go.now()
      local again = assert(p._take(addr, t0 + 0.2)) -- (the deadline set)
      assert.are.equal(c, again)
      assert.are.same({ idle = 0, active = 1, dials = 1, reuses = 2 }, p:stats())
      assert.are.equal("b", ask(again, "b"))
      local _, err = again:read("l") -- (nothing comes: the deadline ends the read)
      assert.are.equal("timeout", err)
      assert.is_true(go.now() - t0 < H.scale(2, 5))
      again:close()
      assert.is_false(p._put(again)) -- (closed: the slow path frees its slot)
      assert.is_nil(p:put(again))
      assert.are.equal(0, p:stats().active)
      p:close()
      assert.is_nil(p._take(addr)) -- (closed)
    end)
  end)

  it("closes its idle conns when the pool is collected (the set finds them in the lists)", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ max_idle = 4 })
      local a, b = assert(p:dial(addr, 5)), assert(p:dial(addr, 5))
      assert.are.equal("x", ask(a, "x"))
      assert.is_true(p:put(a))
      assert.is_true(p:put(b))
      assert.are.equal(2, p:stats().idle)
      local weak = setmetatable({ a, b }, { __mode = "v" })
      a, b, p = nil, nil, nil
      assert.is_true(H.wait_until(function()
        collectgarbage()
        return weak[1] == nil and weak[2] == nil
      end, 5))
    end)
  end)

  it("keeps its counts and limits in the C set: bad arguments refused, a closed pool's put slow", function()
    assert.has_error(function() net._idleset() end)
    assert.has_error(function() net._idleset(-1, 60, true) end)
    assert.has_error(function() net._idleset(4, 0, true) end)
    assert.has_error(function() net._idleset(4, "x", true) end)
    assert.has_error(function() net._idleset(4, 60, true) end) -- (no lists table)
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ max_idle = 2 })
      local set = p.set
      assert.has_error(function() set:moved("x", 0) end)
      assert.has_error(function() set.counts({}) end)
      local a = assert(p:dial(addr, 2))
      assert.are.same({ 0, 1, 0 }, { set:counts() })
      assert.is_true(p:put(a))
      assert.are.same({ 1, 0, 0 }, { set:counts() })
      a = assert(p:dial(addr, 2))
      assert.are.same({ 0, 1, 1 }, { set:counts() })
      -- a wrong key table or conn: errors, nothing counted
      assert.has_error(function() set:putlast(p.lists[addr], p.keyof, ln) end)
      assert.are.same({ 0, 1, 1 }, { set:counts() })
      p:close()
      assert.is_false(set:putlast(p.lists[addr] or {}, p.keyof, a)) -- closed: the slow path
      local ok, why = p:put(a)
      assert.is_nil(ok)
      assert.are.equal("pool closed", why)
      assert.are.same({ idle = 0, active = 0, dials = 1, reuses = 1 }, p:stats())
      -- a pool with max_conns never takes putlast's path
      local q = net.pool({ max_conns = 1 })
      local b = assert(q:dial(addr, 2))
      assert.is_false(q.set:putlast({}, q.keyof, b))
      assert.is_true(q:put(b))
      assert.are.same({ idle = 1, active = 0, dials = 1, reuses = 0 }, q:stats())
      q:close()
    end)
  end)

  it("refuses (and closes) a conn with unread bytes, a closed one, one at EOF", function()
    local ln, addr, conns = line_server()
    finally(function() ln:close() end)
    local function sent(what)
      local _, v = go.select({ { conns.sent, "recv" } }, 5)
      assert.are.equal(what, v)
    end
    H.no_fd_leak(function()
      local p = net.pool()
      -- bytes after the answer, in the conn's buffer or still in the socket
      local c = assert(p:dial(addr, 2))
      assert.are.equal("extra", ask(c, "extra"))
      sent("extra")
      local ok, why = p:put(c)
      assert.is_nil(ok)
      assert.are.equal("unread bytes", why)
      assert.are.equal(-1, c:fd())
      -- closed
      local d = assert(p:dial(addr, 2))
      d:close()
      ok, why = p:put(d)
      assert.is_nil(ok)
      assert.are.equal("closed", why)
      -- the server said goodbye before the put
      d = assert(p:dial(addr, 2))
      assert.are.equal("close", ask(d, "close"))
      sent("close")
      ok, why = p:put(d)
      assert.is_nil(ok)
      assert.are.equal("eof", why)
      assert.are.same({ idle = 0, active = 0, dials = 3, reuses = 0 }, p:stats())
    end)
  end)

  it("drops an idle conn when the peer's close arrives, before any dial", function()
    local ln, addr, conns = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local c = assert(p:dial(addr, 2))
      assert.are.equal("x", ask(c, "x"))
      assert.is_true(p:put(c))
      assert.are.equal(1, p:stats().idle)
      conns[#conns]:close() -- the server closes the idle conn
      assert.is_true(H.wait_until(function() return p:stats().idle == 0 end, 2, 0.001),
        "the closed conn stayed in the pool")
      assert.are.equal(-1, c:fd())
      -- the next dial does not get it
      local d = assert(p:dial(addr, 2))
      assert.are_not.equal(c, d)
      assert.are.equal("y", ask(d, "y"))
      assert.are.equal(2, p:stats().dials)
      p:put(d)
      p:close()
    end)
  end)

  it("closes idle conns after idle_timeout, without a goroutine of its own", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ idle_timeout = 0.05 })
      local c = assert(p:dial(addr, 2))
      assert.are.equal("x", ask(c, "x")) -- the server's goroutine runs
      local g0 = go.stats().goroutines
      assert.is_true(p:put(c))
      assert.are.equal(g0, go.stats().goroutines)
      local t0 = go.now()
      assert.is_true(H.wait_until(function() return p:stats().idle == 0 end, 2, 0.002))
      assert.is_true(go.now() - t0 >= 0.04)
      assert.are.equal(-1, c:fd())
    end)
  end)

  it("idle_timeout holds whatever read deadline the conn's last request left armed", function()
    -- the watch's timer is lazy (HACKING "Idle watch"): a read timer left
    -- due sooner fires, finds the watch not yet due and re-arms at its
    -- deadline; one left due later gives way to the watch's own
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ idle_timeout = 0.2 })
      local c = assert(p:dial(addr, 2))
      c:setreaddeadline(go.now() + 0.02) -- due before the idle timeout
      assert.are.equal("x", ask(c, "x"))
      local t0 = go.now()
      assert.is_true(p:put(c))
      go.sleep(0.08) -- the left timer fired meanwhile: still idle
      assert.are.equal(1, p:stats().idle)
      assert.is_true(H.wait_until(function() return p:stats().idle == 0 end, 2, 0.002))
      assert.is_true(go.now() - t0 >= 0.18)
      local p2 = net.pool({ idle_timeout = 0.05 })
      local d = assert(p2:dial(addr, 2))
      d:setreaddeadline(go.now() + 30) -- due long after it
      assert.are.equal("y", ask(d, "y"))
      t0 = go.now()
      assert.is_true(p2:put(d))
      assert.is_true(H.wait_until(function() return p2:stats().idle == 0 end, 2, 0.002))
      assert.is_true(go.now() - t0 < 1)
      assert.are.equal(-1, d:fd())
    end)
  end)

  it("keeps max_idle per key and closes the least recently used", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ max_idle = 2 })
      local a, b, c = assert(p:dial(addr, 2)), assert(p:dial(addr, 2)), assert(p:dial(addr, 2))
      assert.is_true(p:put(a))
      assert.is_true(p:put(b))
      assert.is_true(p:put(c))
      assert.are.equal(2, p:stats().idle)
      assert.are.equal(-1, a:fd()) -- the oldest went
      assert.are.equal(c, p:dial(addr, 2)) -- the most recent comes first
      p:close()
      assert.are.equal(-1, b:fd())
      assert.are.equal("closed", select(2, p:dial(addr, 2)))
      local ok, why = p:put(c)
      assert.is_nil(ok)
      assert.are.equal("pool closed", why)
    end)
  end)

  it("waits past max_conns for a put, within the dial's timeout", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool({ max_conns = 2 })
      local a, b = assert(p:dial(addr, 2)), assert(p:dial(addr, 2))
      local t0 = go.now()
      local c, err = p:dial(addr, 0.05)
      assert.is_nil(c)
      assert.are.equal("timeout", err)
      assert.is_true(go.now() - t0 >= 0.04)
      local got = go.chan(1)
      go(function() got:send(p:dial(addr, 2)) end)
      go.sleep(0.01)
      assert.are.equal(0, #got)
      assert.is_true(p:put(a))
      local w = go.select({ { got, "recv" } }, 2)
      assert.are.equal(1, w)
      assert.are.equal(2, p:stats().active)
      assert.are.equal(1, p:stats().reuses)
      -- a closed conn frees its slot through put too
      b:close()
      assert.is_nil((p:put(b)))
      local d = assert(p:dial(addr, 0.5))
      assert.are.equal(2, p:stats().active)
      p:put(d)
      p:close()
      -- a conn taken from the idle list counts like a new one
      local q = net.pool({ max_conns = 1 })
      local e = assert(q:dial(addr, 2))
      assert.is_true(q:put(e))
      assert.are.equal(e, q:dial(addr, 2))
      local none, why = q:dial(addr, 0.05)
      assert.is_nil(none)
      assert.are.equal("timeout", why)
      assert.is_true(q:put(e))
      assert.are.equal(e, q:dial(addr, 0.05))
      q:put(e)
      q:close()
    end)
  end)

  it("dial refuses an address that is not a string, with any options and when closed", function()
    local p = net.pool()
    for _, opts in ipairs({ false, 5, { timeout = 5 } }) do
      local o = opts or nil
      for _, addr in ipairs({ 42, {}, true }) do
        assert.has_error(function() p:dial(addr, o) end, "pool:dial: address must be a string")
      end
      assert.has_error(function() p:dial(nil, o) end, "pool:dial: address must be a string")
    end
    p:close()
    assert.has_error(function() p:dial(42, 5) end, "pool:dial: address must be a string")
    local c, err = p:dial("127.0.0.1:1", 5)
    assert.is_nil(c)
    assert.are.equal("closed", err)
  end)

  it("net.defaultpool is one pool per VM", function()
    assert.are.equal(net.defaultpool, net.defaultpool)
    assert.are.equal("function", type(net.pool))
    assert.has_error(function() net.pool({ max_idle = -1 }) end)
    assert.has_error(function() net.defaultpool:put(nil) end)
  end)

  it("never hands a conn out twice at once; no fd leak after many requests with random closes", function()
    local ln, addr = line_server({ seed = 7, close_rate = 0.1 })
    finally(function() ln:close() end)
    local total = H.scale(10000, 400)
    local workers = 50
    H.no_fd_leak(function()
      local p = net.pool({ max_idle = 8 })
      local inuse, twice, done, failed = {}, 0, 0, 0
      local wg = go.chan(workers)
      for w = 1, workers do
        go(function()
          for i = w, total, workers do
            local answer
            for _ = 1, 5 do -- a conn the server closed as we sent: retry
              local c = assert(p:dial(addr, 5))
              if inuse[c] then twice = twice + 1 end
              inuse[c] = true
              local a = ask(c, tostring(i))
              inuse[c] = nil
              p:put(c)
              if a then answer = a break end
            end
            if answer == tostring(i) then done = done + 1 else failed = failed + 1 end
          end
          wg:send(true)
        end)
      end
      for _ = 1, workers do assert(go.select({ { wg, "recv" } }, H.scale(60, 200))) end
      assert.are.equal(0, twice)
      assert.are.equal(0, failed)
      assert.are.equal(total, done)
      local s = p:stats()
      assert.are.equal(0, s.active)
      assert.is_true(s.reuses > 0)
      assert.is_true(s.idle <= 8)
      p:close()
    end)
  end)

  it("closes the idle conns of a pool that is garbage", function()
    local ln, addr = line_server()
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local c = assert(p:dial(addr, 2))
      p:put(c)
      p, c = nil, nil
      H.scrub_stack()
    end)
  end)
end)
