-- sharedchan_spec: go.sharedchan — channels usable from every VM (values
-- copied), blocking and select across VMs, close, refcounted lifetime.
local go = require "go"
local H = require "support.helpers"

local W = "support.schan_work"

-- Runs `body` in a child `goluarun -p N`, after a prelude that defines
-- start(h): yields (P 0 stays runnable, so it never takes its own portable
-- queue and another P steals the record) until the portable goroutine h
-- has started somewhere; returns its P.
local prelude = [[
local W = "support.schan_work"
local function start(h)
  local deadline = go.now() + 10
  while h:procid() == nil and go.now() < deadline do go.yield() end
  return assert(h:procid(), "portable goroutine did not start")
end
]]

local function child(nprocs, body, timeout)
  local r = H.run(prelude .. body, {}, { flags = { "-p", tostring(nprocs) },
    timeout = timeout or 60 })
  assert.are.equal(0, r.status, H.describe_run(r))
  return r.stdout
end

describe("go.sharedchan", function()
  describe("unbuffered", function()
    it("hands a value over; send and recv block until the other side comes", function()
      local ch = go.sharedchan()
      assert.are.equal(0, ch:cap()); assert.are.equal(0, #ch)
      local g = H.must_not_return(0.05, function() ch:send("x"); return "sent" end)
      assert.are.same({ "x", true }, { ch:recv() })
      assert.are.same({ true, "sent" }, { go.wait(g, 5) })
      local r = H.must_not_return(0.05, function() return ch:recv() end)
      ch:send(false)
      assert.are.same({ true, false, true }, { go.wait(r, 5) })
    end)

    it("carries nil as a value", function()
      local ch = go.sharedchan()
      go(function() ch:send(nil) end)
      assert.are.same({ nil, true }, { ch:recv() })
    end)
  end)

  describe("buffered", function()
    it("buffers up to cap, FIFO, and # counts what is buffered", function()
      local ch = go.sharedchan(3)
      assert.are.equal(3, ch:cap())
      for i = 1, 3 do ch:send(i) end
      assert.are.equal(3, #ch)
      assert.matches("sharedchan %(3/3%)", tostring(ch))
      local g = H.must_not_return(0.05, function() ch:send(4); return true end)
      assert.are.equal(1, (ch:recv()))
      assert.are.same({ true, true }, { go.wait(g, 5) })
      for i = 2, 4 do assert.are.same({ i, true }, { ch:recv() }) end
      assert.are.equal(0, #ch)
    end)

    it("rejects a bad capacity", function()
      assert.has_error(function() go.sharedchan(-1) end)
      assert.has_error(function() go.sharedchan("x") end)
    end)
  end)

  describe("close", function()
    it("drains buffered values, then gives nil, false", function()
      local ch = go.sharedchan(2)
      ch:send("a"); ch:send("b")
      ch:close()
      assert.are.same({ "a", true }, { ch:recv() })
      assert.are.same({ "b", true }, { ch:recv() })
      assert.are.same({ nil, false }, { ch:recv() })
      assert.are.same({ nil, false }, { ch:recv() })
      assert.matches("closed", tostring(ch))
    end)

    it("send on a closed channel and a second close raise, as for local channels", function()
      local ch = go.sharedchan(1)
      ch:close()
      assert.has_error(function() ch:send(1) end, "send on closed channel")
      assert.has_error(function() ch:close() end, "close of closed channel")
      local lc = go.chan(1); lc:close()
      assert.has_error(function() lc:send(1) end, "send on closed channel")
    end)

    it("wakes a blocked sender (which raises) and blocked receivers", function()
      local ch = go.sharedchan()
      local s = H.must_not_return(0.05, function() return pcall(ch.send, ch, "v") end)
      local ch2 = go.sharedchan()
      local r1 = H.must_not_return(0.02, function() return ch2:recv() end)
      local r2 = H.must_not_return(0.02, function() return ch2:recv() end)
      ch:close(); ch2:close()
      local done, ok, err = go.wait(s, 5)
      assert.is_true(done); assert.is_false(ok); assert.matches("send on closed channel", err)
      assert.are.same({ true, nil, false }, { go.wait(r1, 5) })
      assert.are.same({ true, nil, false }, { go.wait(r2, 5) })
    end)

    it("wakes receivers parked in every VM (subprocess, -p 3)", function()
      local out = child(3, [[
        local ch = go.sharedchan()
        local hs = {}
        for i = 1, 6 do hs[i] = go.spawn(W .. ":recv", ch) end
        for i = 1, 6 do start(hs[i]) end
        go.sleep(0.05) -- let them park (correct either way)
        ch:close()
        local ps = {}
        for i = 1, 6 do
          local r = table.pack(go.wait(hs[i], 10))
          assert(r[1] == true and r[2] == nil and r[3] == false, tostring(r[1]))
          ps[hs[i]:procid()] = true
        end
        local n = 0; for _ in pairs(ps) do n = n + 1 end
        print("ok", n, ps[0] and "p0" or "not-p0")
      ]])
      assert.matches("^ok\t%d\tnot%-p0\n$", out)
    end)
  end)

  describe("values", function()
    it("are copied: deep tables, strings with NULs, integer vs float, booleans", function()
      local ch = go.sharedchan(1)
      local t = { a = { b = { c = { "deep", 1, 2.0 } } }, [1] = "x\0y", [2.5] = true, f = false }
      ch:send(t)
      local v = ch:recv()
      assert.are.same(t, v)
      assert.are_not.equal(t, v)
      assert.are.equal("x\0y", v[1])
      assert.are.equal("integer", math.type(v.a.b.c[2]))
      assert.are.equal("float", math.type(v.a.b.c[3]))
      t.a.b.c[1] = "changed"
      assert.are.equal("deep", v.a.b.c[1])
    end)

    it("a value that cannot be copied raises before anything is queued", function()
      local ch = go.sharedchan(4)
      assert.has_error(function() ch:send(print) end,
        "shared channel send: a function value cannot be copied to another VM")
      assert.has_error(function() ch:send({ ok = 1, bad = { print } }) end,
        "shared channel send: a function value cannot be copied to another VM")
      local cyc = {}; cyc.self = cyc
      assert.has_error(function() ch:send(cyc) end)
      assert.has_error(function() ch:send(setmetatable({}, {})) end)
      assert.has_error(function() ch:send(go.chan()) end)
      assert.has_error(function() ch:send(coroutine.create(function() end)) end)
      assert.are.equal(0, #ch)
      assert.has_error(function() go.select({ { ch, "send", print } }, 0) end)
      assert.are.equal(0, #ch)
    end)

    it("connections are refused with a clear error", function()
      local c, s, ln = H.pair()
      local ch = go.sharedchan(1)
      assert.has_error(function() ch:send(c) end,
        "shared channel send: connections cannot be sent on a shared channel")
      assert.are.equal(0, #ch)
      c:write("still mine"); assert.are.equal("still mine", s:read(10))
      c:close(); s:close(); ln:close()
    end)

    it("a shared channel sent over a shared channel is the same channel", function()
      local a, b = go.sharedchan(1), go.sharedchan(1)
      a:send({ ch = b, list = { b, b } })
      local v = a:recv()
      assert.are.equal(b, v.ch) -- one handle per channel per VM
      assert.are.equal(b, v.list[2])
      a:send(a)
      assert.are.equal(a, a:recv())
    end)

    it("passes through go.spawn arguments and another VM answers on it (subprocess, -p 2)", function()
      local out = child(2, [[
        local via, reply = go.sharedchan(), go.sharedchan()
        local h = go.spawn(W .. ":reply_on", via, "hello")
        local p = start(h)
        via:send(reply)
        local v, ok = reply:recv()
        assert(go.wait(h, 10))
        print(v, ok, p, go.procid())
      ]])
      assert.are.equal("hello\ttrue\t1\t0\n", out)
    end)
  end)

  it("ping-pong between two VMs on different Ps (subprocess, -p 2)", function()
    local out = child(2, [[
      local ping, pong = go.sharedchan(), go.sharedchan()
      local N = 2000
      local h = go.spawn(W .. ":pong", ping, pong, N)
      local p = start(h)
      local remote = pong:recv() -- the pong side reports its P
      local x = 0
      for _ = 1, N do ping:send(x); x = pong:recv() end
      local ok, rp = go.wait(h, 10)
      print("rounds", x, "me", go.procid(), "pong", p, remote, rp, ok)
    ]])
    assert.are.equal("rounds\t2000\tme\t0\tpong\t1\t1\t1\ttrue\n", out)
  end)

  describe("go.select", function()
    it("mixes local and shared cases in one VM", function()
      local l, s = go.chan(), go.sharedchan()
      assert.are.same({ nil, "timeout" }, { go.select({ { l, "recv" }, { s, "recv" } }, 0) })
      go(function() s:send("S") end)
      assert.are.same({ 2, "S", true }, { go.select({ { l, "recv" }, { s, "recv" } }, 5) })
      go(function() l:send("L") end)
      assert.are.same({ 1, "L", true }, { go.select({ { l, "recv" }, { s, "recv" } }, 5) })
      local g = go(function() return s:recv() end)
      assert.are.same({ 2 }, { go.select({ { l, "recv" }, { s, "send", { 1 } } }, 5) })
      assert.are.same({ true, { 1 }, true }, { go.wait(g, 5) })
      local t0 = go.now()
      assert.are.same({ nil, "timeout" }, { go.select({ { l, "recv" }, { s, "recv" } }, 0.05) })
      assert.is_true(go.now() - t0 >= 0.04)
    end)

    it("picks at random among ready cases", function()
      local a, b = go.sharedchan(100), go.chan(100)
      for i = 1, 100 do a:send(i); b:send(i) end
      local hits = { 0, 0 }
      for _ = 1, 100 do
        local i = go.select({ { a, "recv" }, { b, "recv" } })
        hits[i] = hits[i] + 1
      end
      assert.is_true(hits[1] > 10 and hits[2] > 10, hits[1] .. "/" .. hits[2])
    end)

    it("a ready shared send to a closed channel raises; recv on closed fires", function()
      local s = go.sharedchan(); s:close()
      assert.has_error(function() go.select({ { s, "send", 1 } }) end, "send on closed channel")
      assert.are.same({ 1, nil, false }, { go.select({ { s, "recv" }, { go.chan(), "recv" } }) })
    end)

    it("a select blocked on shared cases wakes with ok = false when one closes", function()
      local s1, s2 = go.sharedchan(), go.sharedchan()
      local g = H.must_not_return(0.05, function()
        return go.select({ { s1, "recv" }, { s2, "recv" } })
      end)
      s2:close()
      assert.are.same({ true, 2, nil, false }, { go.wait(g, 5) })
    end)

    it("local, shared from another VM and timeout: exactly one case fires each time (subprocess, -p 2)", function()
      local out = child(2, [[
        local N = 3000
        local s, l = go.sharedchan(), go.chan()
        local h = go.spawn(W .. ":produce", s, 1, N)
        assert(start(h) == 1)
        go(function() for i = 1, N do l:send(-i) end end)
        local got, sum, timeouts = { 0, 0 }, 0, 0
        while got[1] + got[2] < 2 * N do
          local i, v = go.select({ { l, "recv" }, { s, "recv" } }, 0.001)
          if i then got[i] = got[i] + 1; sum = sum + v
          else timeouts = timeouts + 1 end
        end
        -- nothing left anywhere: no case fired twice, no value lost
        assert(go.select({ { l, "recv" }, { s, "recv" } }, 0.02) == nil)
        assert(go.wait(h, 10))
        print(got[1], got[2], sum)
      ]])
      assert.are.equal("3000\t3000\t0\n", out)
    end)

    it("a select parked with a timeout is woken by a sender in another VM (subprocess, -p 2)", function()
      local out = child(2, [[
        local s, l, go_ch = go.sharedchan(), go.chan(), go.sharedchan()
        local h = go.spawn(W .. ":reply_on", go_ch, "remote")
        assert(start(h) == 1)
        local res = {}
        local g = go(function()
          res = table.pack(go.select({ { l, "recv" }, { s, "recv" } }, 10))
        end)
        go.sleep(0.02) -- the select parks (either way is correct)
        go_ch:send(s)
        assert(go.wait(g, 10))
        print(res[1], res[2], res[3])
      ]])
      assert.are.equal("2\tremote\ttrue\n", out)
    end)
  end)

  it("4 producers x 10,000 ints to 4 consumers across 4 Ps: exact totals (subprocess, -p 4)", function()
    local out = child(4, [[
      local ch, gate = go.sharedchan(64), go.sharedchan()
      local N, P = os.getenv("GOLUA_TSAN") and 1000 or 10000, 4 -- TSan: its stack depot overflows past ~65k parks
      local cons, prods, ps = {}, {}, {}
      -- each gated producer keeps its P busy, so the next lands on another
      -- P: producers 1-3 run on P 1, 2, 3 (P 0 runs main, which yields)
      for i = 1, P - 1 do
        prods[i] = go.spawn(W .. ":gated_produce", gate, ch, (i - 1) * N + 1, N)
        ps[#ps + 1] = start(prods[i])
      end
      prods[P] = go.spawn(W .. ":produce", ch, (P - 1) * N + 1, N)
      for i = 1, P do cons[i] = go.spawn(W .. ":consume", ch) end
      gate:close()
      for i = 1, P do assert(go.wait(prods[i], 60)) end
      ch:close()
      local sum, n = 0, 0
      for i = 1, P do
        local ok, s, k = go.wait(cons[i], 60)
        assert(ok, s)
        sum, n = sum + s, n + k
      end
      table.sort(ps)
      print(n, sum, table.concat(ps, ","))
    ]], 120)
    local n = 4 * (os.getenv("GOLUA_TSAN") and 1000 or 10000)
    assert.are.equal(string.format("%d\t%d\t1,2,3\n", n, n * (n + 1) // 2), out)
  end)

  describe("lifetime", function()
    it("handles are collected and channels freed with their buffered values", function()
      collectgarbage(); collectgarbage()
      local base = go.stats().sharedchans
      do
        local keep = {}
        for i = 1, 200 do
          local c = go.sharedchan(2)
          c:send({ i, go.sharedchan(1) }) -- a buffered value naming another channel
          keep[i] = c
        end
        assert.are.equal(base + 400, go.stats().sharedchans)
      end
      H.scrub_stack()
      assert.is_true(H.wait_until(function()
        collectgarbage(); collectgarbage()
        return go.stats().sharedchans == base
      end, 5), tostring(go.stats().sharedchans) .. " vs " .. base)
    end)

    it("a channel that went to another VM is freed once every VM dropped it (subprocess, -p 2)", function()
      local out = child(2, [[
        local function live() collectgarbage(); collectgarbage(); return go.stats().sharedchans end
        local base = live()
        local via = go.sharedchan()
        local h = go.spawn(W .. ":reply_on", via, "x")
        assert(start(h) == 1)
        local function roundtrip()
          local c = go.sharedchan(1)
          via:send(c)
          assert(c:recv() == "x")
        end
        roundtrip()
        assert(go.wait(h, 10))
        via = nil
        select("#", table.unpack({}, 1, 250)) -- no stale stack slot keeps c
        -- the other VM collects when asked to: ask until done, bounded
        local deadline = go.now() + 10
        while live() ~= base and go.now() < deadline do
          local g = go.spawn(W .. ":gc") -- runs where P 0 is busy: on P 1
          start(g)
          go.wait(g, 10)
        end
        print(live() - base)
      ]])
      assert.are.equal("0\n", out)
    end)
  end)

  describe("process life", function()
    it("main blocked on a shared channel nobody else holds is a deadlock (exit 2)", function()
      local r = H.run([[
        local ch = go.sharedchan()
        ch:recv()
      ]], {}, { flags = { "-p", "2" }, timeout = 20 })
      assert.are.equal(2, r.status, H.describe_run(r))
      assert.matches("deadlock", r.stderr)
      assert.matches("chan receive", r.stderr)
    end)

    it("ends once main returns while goroutines in other VMs stay blocked on shared channels", function()
      local r = H.run(prelude .. [[
        local ch = go.sharedchan()
        local hs = {}
        for i = 1, 3 do hs[i] = go.spawn(W .. ":recv", ch) end
        for i = 1, 3 do start(hs[i]) end
        go(function() ch:send("one") end)
        print("main done")
      ]], {}, { flags = { "-p", "3" }, timeout = 20 })
      assert.are.equal(0, r.status, H.describe_run(r))
      assert.are.equal("main done\n", r.stdout)
    end)

    it("exits cleanly (VMs closed) with goroutines parked on shared channels in every VM", function()
      local r = H.run(prelude .. [[
        local a, b = go.sharedchan(), go.sharedchan(4)
        b:send({ a, "buffered" })
        local hs = {}
        for i = 1, 4 do hs[i] = go.spawn(W .. ":recv", a) end
        for i = 1, 4 do start(hs[i]) end
        go(function() go.select({ { a, "recv" }, { go.chan(), "recv" } }) end)
        go(function() a:send("x") end)
        go(function() go.select({ { a, "send", { 1, 2 } } }, 30) end)
        go.sleep(0.02)
        os.exit(0, true)
      ]], {}, { flags = { "-p", "3" }, timeout = 20 })
      assert.are.equal(0, r.status, H.describe_run(r))
      assert.are.equal("", r.stderr)
    end)
  end)
end)
