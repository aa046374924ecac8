-- chan_spec: local channels, go.select, go.after (RELIABILITY E1).
local go = require "go"
local H = require "support.helpers"

describe("go.chan", function()
  describe("unbuffered", function()
    it("hands a value from sender to receiver", function()
      local ch = go.chan()
      assert.are.equal(0, ch:cap())
      assert.are.equal(0, #ch)
      local g = go(function() ch:send(42) return "sent" end)
      local v, ok = ch:recv()
      assert.are.equal(42, v)
      assert.is_true(ok)
      assert.are.same({ true, "sent" }, { go.wait(g, 5) })
    end)

    it("send blocks until a receiver takes the value", function()
      local ch = go.chan()
      local g = H.must_not_return(0.05, function() ch:send("x"); return true end)
      assert.are.equal(0, #ch)
      local v, ok = ch:recv()
      assert.are.equal("x", v)
      assert.is_true(ok)
      assert.is_true((go.wait(g, 5)))
    end)

    it("recv blocks until a sender comes", function()
      local ch = go.chan()
      local g = H.must_not_return(0.05, function() return ch:recv() end)
      ch:send("y")
      assert.are.same({ true, "y", true }, { go.wait(g, 5) })
    end)

    it("carries any Lua value, nil included, and keeps identity", function()
      local ch = go.chan()
      local t = {}
      local f = function() end
      local co = coroutine.create(function() end)
      local vals = { t, f, co, 1.5, "s", true, false, math.maxinteger }
      go(function()
        for _, v in ipairs(vals) do ch:send(v) end
        ch:send(nil)
      end)
      for _, want in ipairs(vals) do
        local v, ok = ch:recv()
        assert.is_true(ok)
        assert.are.equal(want, v)
      end
      local v, ok = ch:recv()
      assert.is_nil(v)
      assert.is_true(ok)
      assert.are.equal("integer", math.type(vals[8]))
    end)
  end)

  describe("hand-off to a parked receiver", function()
    -- the value goes straight onto the receiver's stack (lchan.c hand_off)
    it("reaches a receiver parked in a coroutine inside a goroutine", function()
      local ch = go.chan()
      local g = go(function()
        local co = coroutine.wrap(function()
          local got = {}
          for i = 1, 3 do got[i] = table.pack(ch:recv()) end
          return got
        end)
        return co()
      end)
      for _, v in ipairs({ "a", false, 7 }) do
        go.yield() -- one P: it runs until it parks, so the send finds it waiting
        ch:send(v)
      end
      local ok, got = go.wait(g, 5)
      assert.is_true(ok)
      assert.are.same({ { n = 2, "a", true }, { n = 2, false, true }, { n = 2, 7, true } }, got)
    end)

    it("hands nil over and keeps the receiver's other values", function()
      local ch = go.chan(2)
      local g = go(function()
        local keep = { "kept" }
        local v, ok = ch:recv()
        return keep[1], v, ok
      end)
      go.yield()
      ch:send(nil)
      assert.are.same({ true, "kept", nil, true }, { go.wait(g, 5) })
      assert.are.equal(0, #ch)
    end)

    it("a select receiver first in line still gets the value", function()
      local ch = go.chan()
      local gs = go(function() return go.select({ { ch, "recv" } }, 5) end)
      go.yield()
      local gp = go(function() return ch:recv() end)
      go.yield()
      ch:send("s")
      ch:send("p")
      assert.are.same({ true, 1, "s", true }, { go.wait(gs, 5) })
      assert.are.same({ true, "p", true }, { go.wait(gp, 5) })
    end)
  end)

  describe("a sender parked on an unbuffered channel", function()
    -- its value waits on its own stack (lchan.c park_onstack)
    it("gives its value to recv, nil and false included", function()
      local ch = go.chan()
      local g = go(function()
        for _, v in ipairs({ "x", false, 3 }) do ch:send(v) end
        ch:send(nil)
        return "done"
      end)
      local got = {}
      for i = 1, 4 do
        go.yield() -- one P: the sender runs until it parks in send
        got[i] = table.pack(ch:recv())
      end
      assert.are.same({ { n = 2, "x", true }, { n = 2, false, true }, { n = 2, 3, true },
                        { n = 2, nil, true } }, got)
      assert.are.same({ true, "done" }, { go.wait(g, 5) })
    end)

    it("gives its value to a select", function()
      local ch, other = go.chan(), go.chan()
      local g = go(function() ch:send({ k = "v" }) return "sent" end)
      go.yield()
      local i, v, ok = go.select({ { other, "recv" }, { ch, "recv" } })
      assert.are.same({ 2, "v", true }, { i, v.k, ok })
      assert.are.same({ true, "sent" }, { go.wait(g, 5) })
    end)

    it("parked inside a coroutine, gives its value", function()
      local ch = go.chan()
      local g = go(function()
        return coroutine.wrap(function() ch:send("from coro") return "back" end)()
      end)
      go.yield()
      assert.are.same({ "from coro", true }, { ch:recv() })
      assert.are.same({ true, "back" }, { go.wait(g, 5) })
    end)

    it("raises 'send on closed channel' when the channel closes", function()
      local ch = go.chan()
      local g = go(function() ch:send("never") end)
      go.yield()
      ch:close()
      local ok, err = go.wait(g, 5)
      assert.is_false(ok)
      assert.matches("send on closed channel", err)
      assert.are.same({ nil, false }, { ch:recv() })
    end)
  end)

  describe("buffered", function()
    it("buffers up to cap without blocking, FIFO", function()
      local ch = go.chan(3)
      assert.are.equal(3, ch:cap())
      H.must_return(1, function()
        ch:send(1); ch:send(2); ch:send(3)
      end)
      assert.are.equal(3, #ch)
      local g = H.must_not_return(0.05, function() ch:send(4) end)
      assert.are.equal(3, #ch)
      assert.are.same({ 1, true }, { ch:recv() })
      assert.is_true((go.wait(g, 5)))
      assert.are.same({ 2, true }, { ch:recv() })
      assert.are.same({ 3, true }, { ch:recv() })
      assert.are.same({ 4, true }, { ch:recv() })
      assert.are.equal(0, #ch)
    end)

    it("drains buffered values after close, then nil, false", function()
      local ch = go.chan(4)
      ch:send("a"); ch:send("b")
      ch:close()
      assert.are.equal(2, #ch)
      assert.are.same({ "a", true }, { ch:recv() })
      assert.are.same({ "b", true }, { ch:recv() })
      local v, ok = ch:recv()
      assert.is_nil(v); assert.are.equal(false, ok)
      v, ok = ch:recv()
      assert.is_nil(v); assert.are.equal(false, ok)
    end)
  end)

  describe("close", function()
    it("wakes every blocked receiver with nil, false", function()
      local ch = go.chan()
      local gs = {}
      for i = 1, 3 do
        gs[i] = go(function() return ch:recv() end)
      end
      go.sleep(0.01)
      ch:close()
      for i = 1, 3 do
        local r = table.pack(go.wait(gs[i], 5))
        assert.is_true(r[1])
        assert.is_nil(r[2])
        assert.are.equal(false, r[3])
      end
    end)

    it("makes blocked senders raise", function()
      local ch = go.chan()
      local gs = {}
      for i = 1, 3 do
        gs[i] = go(function() ch:send(i); return "sent" end)
      end
      go.sleep(0.01)
      ch:close()
      for i = 1, 3 do
        local ok, msg = go.wait(gs[i], 5)
        assert.are.equal(false, ok)
        assert.are.equal("string", type(msg))
      end
    end)

    it("send on a closed channel raises", function()
      local ch = go.chan(1)
      ch:close()
      assert.has_error(function() ch:send(1) end)
      local ub = go.chan()
      ub:close()
      assert.has_error(function() ub:send(1) end)
    end)

    it("closing twice raises", function()
      local ch = go.chan()
      ch:close()
      assert.has_error(function() ch:close() end)
    end)

    it("a buffered channel closed with values keeps them for late receivers", function()
      local ch = go.chan(10)
      for i = 1, 10 do ch:send(i) end
      ch:close()
      local got = {}
      local g = go(function()
        while true do
          local v, ok = ch:recv()
          if not ok then return end
          got[#got + 1] = v
        end
      end)
      assert.is_true((go.wait(g, 5)))
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
    end)
  end)

  it("misuse raises", function()
    assert.has_error(function() go.chan(-1) end)
    assert.has_error(function() go.chan("x") end)
  end)

  it("send and recv on something not a channel raise 'goluarun.chan expected'", function()
    local ch = go.chan(1)
    local send, recv = ch.send, ch.recv
    -- a handle, a table, a number, nothing, and strings of every length
    -- up to past a channel's size (the fast check reads a length first)
    local others = { go(function() end), { 1, 2, 3 }, 1, nil }
    for n = 0, 200 do others[4 + n + 1] = string.rep("x", n) end
    for i = 1, 4 + 201 do
      local ok, err = pcall(send, others[i], 1)
      assert.is_false(ok)
      assert.matches("goluarun.chan expected", err)
      ok, err = pcall(recv, others[i])
      assert.is_false(ok)
      assert.matches("goluarun.chan expected", err)
    end
    assert.has_error(function() send(ch) end, "bad argument #2 to 'send' (value expected)")
    send(ch, "still works")
    assert.are.equal("still works", (recv(ch)))
  end)
end)

describe("go.select", function()
  it("receives from the ready case", function()
    local a, b = go.chan(1), go.chan(1)
    b:send("bee")
    local i, v, ok = go.select({ { a, "recv" }, { b, "recv" } })
    assert.are.equal(2, i)
    assert.are.equal("bee", v)
    assert.is_true(ok)
  end)

  it("sends on the ready case", function()
    local full, free = go.chan(1), go.chan(1)
    full:send(0)
    local i = go.select({ { full, "send", 1 }, { free, "send", 2 } })
    assert.are.equal(2, i)
    assert.are.same({ 2, true }, { free:recv() })
    assert.are.same({ 0, true }, { full:recv() })
    assert.are.equal(0, #full)
  end)

  it("blocks until a case becomes ready", function()
    local a, b = go.chan(), go.chan()
    go(function() go.sleep(0.03); b:send("late") end)
    local dt, i, v, ok = H.timed(go.select, { { a, "recv" }, { b, "recv" } }, 5)
    assert.are.equal(2, i)
    assert.are.equal("late", v)
    assert.is_true(ok)
    assert.is_true(dt < 1.0)
  end)

  it("mixes send and recv cases", function()
    local out, inp = go.chan(), go.chan()
    local g = go(function() return out:recv() end)
    local i = go.select({ { inp, "recv" }, { out, "send", "hello" } }, 5)
    assert.are.equal(2, i)
    assert.are.same({ true, "hello", true }, { go.wait(g, 5) })
  end)

  it("reports a closed channel as recv with nil, false", function()
    local a = go.chan()
    a:close()
    local i, v, ok = go.select({ { a, "recv" } }, 1)
    assert.are.equal(1, i)
    assert.is_nil(v)
    assert.are.equal(false, ok)
  end)

  it("times out with nil, 'timeout'", function()
    local a = go.chan()
    local dt, i, err = H.timed(go.select, { { a, "recv" } }, 0.1)
    assert.is_nil(i)
    assert.are.equal("timeout", err)
    assert.is_true(dt >= 0.05 and dt < 1.0, "took " .. dt)
  end)

  it("timeout 0 polls", function()
    local a = go.chan(1)
    local dt, i, err = H.timed(go.select, { { a, "recv" } }, 0)
    assert.is_nil(i)
    assert.are.equal("timeout", err)
    assert.is_true(dt < 0.5)
    a:send(7)
    local j, v, ok = go.select({ { a, "recv" } }, 0)
    assert.are.equal(1, j); assert.are.equal(7, v); assert.is_true(ok)
    -- a send that cannot proceed also polls
    local unbuf = go.chan()
    assert.is_nil((go.select({ { unbuf, "send", 1 } }, 0)))
  end)

  it("a select timeout leaves no stale waiter on the channel", function()
    local ch = go.chan()
    for _ = 1, 5 do
      assert.is_nil((go.select({ { ch, "recv" } }, 0.001)))
    end
    -- a later sender must be matched with a live receiver, not a stale one
    local g = go(function() return ch:recv() end)
    local i = go.select({ { ch, "send", "v" } }, 5)
    assert.are.equal(1, i)
    assert.are.same({ true, "v", true }, { go.wait(g, 5) })
  end)

  it("is fair: picks at random among ready cases", function()
    local a, b = go.chan(1), go.chan(1)
    a:send("a"); b:send("b")
    local count = { 0, 0 }
    for _ = 1, 1000 do
      local i, v = go.select({ { a, "recv" }, { b, "recv" } }, 0)
      assert.truthy(i)
      count[i] = count[i] + 1
      if i == 1 then a:send(v) else b:send(v) end
    end
    assert.is_true(count[1] > 100 and count[2] > 100,
      "picks: " .. count[1] .. " / " .. count[2])
  end)

  it("raises on malformed cases", function()
    local ch = go.chan()
    assert.has_error(function() go.select(42) end)
    assert.has_error(function() go.select({ { ch, "bogus" } }, 0) end)
    assert.has_error(function() go.select({ { 42, "recv" } }, 0) end)
  end)
end)

describe("go.after", function()
  it("delivers go.now() once after the delay", function()
    local t0 = go.now()
    local ch = go.after(0.05)
    local v, ok = ch:recv()
    local dt = go.now() - t0
    assert.is_true(ok)
    assert.are.equal("number", type(v))
    assert.is_true(v >= t0 + 0.045, "fired at +" .. (v - t0))
    assert.is_true(dt >= 0.045 and dt < 1.0, "took " .. dt)
  end)

  it("works as a select timeout", function()
    local never = go.chan()
    local i = go.select({ { never, "recv" }, { go.after(0.02), "recv" } }, 5)
    assert.are.equal(2, i)
  end)

  it("go.after(0) fires promptly", function()
    local dt, v = H.timed(function() return go.after(0):recv() end)
    assert.truthy(v)
    assert.is_true(dt < 0.5)
  end)
end)

describe("channel stress (E1)", function()
  local function stress(cap, producers, consumers, total)
    local ch = go.chan(cap)
    local per = total // producers
    local ps = {}
    for p = 1, producers do
      ps[p] = go(function()
        local base = (p - 1) * per
        for i = 1, per do
          ch:send(base + i)
          if i % 97 == 0 then go.yield() end
        end
      end)
    end
    local cs = {}
    for c = 1, consumers do
      cs[c] = go(function()
        local got = {}
        while true do
          local v, ok = ch:recv()
          if not ok then return got end
          got[#got + 1] = v
        end
      end)
    end
    for p = 1, producers do
      assert.is_true((go.wait(ps[p], 60)), "producer " .. p .. " did not finish")
    end
    ch:close()
    local seen, n = {}, 0
    local per_consumer = {}
    for c = 1, consumers do
      local ok, got = go.wait(cs[c], 60)
      assert.is_true(ok, "consumer " .. c .. " did not finish")
      per_consumer[c] = #got
      local last = {}
      for _, v in ipairs(got) do
        assert.is_nil(seen[v], "value received twice: " .. v)
        seen[v] = true
        n = n + 1
        -- values of one producer arrive in order at any one consumer
        local p = (v - 1) // per + 1
        assert.is_true(v > (last[p] or 0), "out of order")
        last[p] = v
      end
    end
    assert.are.equal(per * producers, n)
    for v = 1, per * producers do
      if not seen[v] then error("value lost: " .. v) end
    end
    return per_consumer
  end

  it("100,000 values through a buffered channel: none lost or duplicated", function()
    stress(16, 4, 4, 100000)
  end)

  it("100,000 values through an unbuffered channel: none lost or duplicated", function()
    stress(0, 4, 4, 100000)
  end)

  it("select-based senders and receivers with timeouts lose nothing", function()
    local ch = go.chan(8)
    local total = 20000
    local prod = go(function()
      local i = 1
      while i <= total do
        local k = go.select({ { ch, "send", i } }, 0.001)
        if k then i = i + 1 end
      end
      ch:close()
    end)
    local got, last = 0, 0
    while true do
      local k, v, ok = go.select({ { ch, "recv" } }, 0.001)
      if k then
        if not ok then break end
        assert.are.equal(last + 1, v)
        last = v
        got = got + 1
      end
    end
    assert.are.equal(total, got)
    assert.is_true((go.wait(prod, 5)))
  end)
end)
