-- coroutine_spec: runtime parks pass through user coroutines (runtime/HACKING.md,
-- "Parking"), goroutine top level looks like
-- a main thread, and blocking inside __gc raises.
local go = require "go"
local H = require "support.helpers"

-- writes `lines` to conn, one every `gap` seconds, from a goroutine
local function feed(conn, lines, gap)
  return go(function()
    for _, l in ipairs(lines) do
      if gap then go.sleep(gap) end
      assert(conn:write(l))
    end
  end)
end

describe("parks inside user coroutines", function()
  it("conn:read inside a coroutine.wrap generator", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local gen = coroutine.wrap(function()
        for _ = 1, 3 do
          local line, err = s:read("l")
          coroutine.yield(line, err)
        end
        return "end"
      end)
      local w = feed(c, { "one\n", "two\n", "three\n" }, 0.01)
      assert.are.same({ "one" }, { gen() })
      assert.are.same({ "two" }, { gen() })
      assert.are.same({ "three" }, { gen() })
      assert.are.equal("end", gen())
      assert.is_true((go.wait(w, 5)))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("go.sleep inside a generator; user-yielded values still reach the user", function()
    local gen = coroutine.wrap(function(a)
      local b = coroutine.yield("first", a)
      go.sleep(0.02)
      local c = coroutine.yield("second", b)
      go.sleep(0)
      return "done", c
    end)
    assert.are.same({ "first", 1 }, { gen(1) })
    local dt, x, y = H.timed(gen, 2)
    assert.are.equal("second", x)
    assert.are.equal(2, y)
    assert.is_true(dt >= 0.015 and dt < 1.0)
    assert.are.same({ "done", 3 }, { gen(3) })
  end)

  it("ch:recv inside coroutine.resume", function()
    local ch = go.chan()
    local co = coroutine.create(function()
      local v = ch:recv()
      local w = coroutine.yield(v + 1)
      local v2 = ch:recv()
      return v2 + w
    end)
    go(function() go.sleep(0.01); ch:send(10); go.sleep(0.01); ch:send(100) end)
    local ok, r = coroutine.resume(co)
    assert.is_true(ok); assert.are.equal(11, r)
    assert.are.equal("suspended", coroutine.status(co))
    ok, r = coroutine.resume(co, 5)
    assert.is_true(ok); assert.are.equal(105, r)
    assert.are.equal("dead", coroutine.status(co))
  end)

  it("parks through three nested coroutine.resume levels", function()
    local ch = go.chan()
    local trace = {}
    local co3 = coroutine.create(function(x)
      local v = ch:recv()                 -- parks the whole goroutine
      trace[#trace + 1] = "co3 got " .. v
      local y = coroutine.yield(x * v)    -- a user yield to co2
      go.sleep(0.005)
      return y + 1
    end)
    local co2 = coroutine.create(function(x)
      local ok, r = coroutine.resume(co3, x)
      assert(ok, r)
      local z = coroutine.yield(r + 1)    -- a user yield to co1
      local ok2, r2 = coroutine.resume(co3, z)
      assert(ok2, r2)
      return r2 * 10
    end)
    local co1 = coroutine.create(function(x)
      local ok, r = coroutine.resume(co2, x)
      assert(ok, r)
      local w = coroutine.yield(r)        -- a user yield to main
      local ok2, r2 = coroutine.resume(co2, w)
      assert(ok2, r2)
      return r2
    end)
    go(function() go.sleep(0.01); ch:send(7) end)
    local ok, r = coroutine.resume(co1, 3)
    assert.is_true(ok, r)
    assert.are.equal(3 * 7 + 1, r)
    assert.are.same({ "co3 got 7" }, trace)
    ok, r = coroutine.resume(co1, 4)
    assert.is_true(ok, r)
    assert.are.equal((4 + 1) * 10, r)
    for _, co in ipairs({ co1, co2, co3 }) do
      assert.are.equal("dead", coroutine.status(co))
    end
  end)

  it("a wrap generator nested in another wrap generator parks on I/O", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local inner = coroutine.wrap(function()
        while true do
          local chunk = s:read(2)
          if not chunk then return nil end
          coroutine.yield(chunk)
        end
      end)
      local outer = coroutine.wrap(function()
        while true do
          local chunk = inner()
          if not chunk then return nil end
          coroutine.yield(chunk:upper())
        end
      end)
      local w = feed(c, { "ab", "cd", "ef" }, 0.01)
      assert.are.equal("AB", outer())
      assert.are.equal("CD", outer())
      assert.are.equal("EF", outer())
      assert.is_true((go.wait(w, 5)))
      c:close()
      assert.is_nil(outer())
      s:close(); ln:close()
    end)
  end)

  it("errors raised inside a parked generator propagate normally", function()
    local gen = coroutine.wrap(function()
      go.sleep(0.005)
      error("inner failure")
    end)
    local ok, msg = pcall(gen)
    assert.are.equal(false, ok)
    assert.matches("inner failure", msg)
    local co = coroutine.create(function() go.sleep(0.005); error("co failure") end)
    local ok2, msg2 = coroutine.resume(co)
    assert.are.equal(false, ok2)
    assert.matches("co failure", msg2)
    assert.are.equal("dead", coroutine.status(co))
  end)

  it("a generator parked in read is 'normal' and refuses resume/close from another goroutine", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local co
      local started = false
      local g = go(function()
        co = coroutine.create(function()
          started = true
          local line = s:read("l")
          coroutine.yield(line)
          return "finished"
        end)
        local ok1, v1 = coroutine.resume(co)
        local ok2, v2 = coroutine.resume(co)
        return ok1, v1, ok2, v2
      end)
      assert.is_true(H.wait_until(function() return started end, 5))
      go.sleep(0.01)
      assert.are.equal("normal", coroutine.status(co))
      local ok, msg = coroutine.resume(co)
      assert.are.equal(false, ok)
      assert.matches("cannot resume non%-suspended coroutine", msg)
      local cok = pcall(coroutine.close, co)
      assert.are.equal(false, cok)
      -- still parked and intact: feed it
      assert(c:write("hello\n"))
      local r = table.pack(go.wait(g, 5))
      assert.are.same({ true, true, "hello", true, "finished", n = 5 }, r)
      assert.are.equal("dead", coroutine.status(co))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("generators that read lines from a conn", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local function lines(conn)
        return coroutine.wrap(function()
          while true do
            local l = conn:read("l")
            if not l then return end
            coroutine.yield(l)
          end
        end)
      end
      local n = H.scale(200, 20)
      local w = go(function()
        for i = 1, n do
          assert(c:write("line ", i, "\n"))
          if i % 10 == 0 then go.sleep(0) end
        end
        c:closewrite()
      end)
      local i = 0
      for l in lines(s) do
        i = i + 1
        assert.are.equal("line " .. i, l)
      end
      assert.are.equal(n, i)
      assert.is_true((go.wait(w, 5)))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("coroutine.wrap inside many goroutines at once", function()
    local ch = go.chan()
    local gs = {}
    for k = 1, 20 do
      gs[k] = go(function()
        local gen = coroutine.wrap(function()
          for _ = 1, 3 do coroutine.yield(ch:recv()) end
        end)
        return gen() + gen() + gen()
      end)
    end
    for _ = 1, 60 do ch:send(1) end
    for k = 1, 20 do
      assert.are.same({ true, 3 }, { go.wait(gs[k], 5) })
    end
  end)

  it("coroutine.isyieldable is true inside a user coroutine", function()
    local co = coroutine.wrap(function()
      go.sleep(0)
      return coroutine.isyieldable()
    end)
    assert.is_true(co())
  end)
end)

describe("goroutine top level looks like a main thread", function()
  local function probe()
    local th, ismain = coroutine.running()
    local y = coroutine.isyieldable()
    local ok, err = pcall(coroutine.yield, 1)
    return type(th), ismain, y, ok, err
  end

  it("in a goroutine", function()
    local ok, tth, ismain, y, yok, yerr = go.wait(go(probe), 5)
    assert.is_true(ok)
    assert.are.equal("thread", tth)
    assert.is_true(ismain)
    assert.are.equal(false, y)
    assert.are.equal(false, yok)
    assert.matches("attempt to yield from outside a coroutine", yerr)
  end)

  it("in main", function()
    local tth, ismain, y, yok, yerr = probe()
    assert.are.equal("thread", tth)
    assert.is_true(ismain)
    assert.are.equal(false, y)
    assert.are.equal(false, yok)
    assert.matches("attempt to yield from outside a coroutine", yerr)
  end)

  it("the goroutine still works after the failed yield", function()
    local ok, v = go.wait(go(function()
      pcall(coroutine.yield)
      go.sleep(0.005)
      return "alive"
    end), 5)
    assert.is_true(ok)
    assert.are.equal("alive", v)
  end)
end)

describe("blocking inside __gc", function()
  local function finalize_with(op)
    local state = {}
    local function make()
      setmetatable({}, { __gc = function()
        local ok, err = pcall(op)
        state.ok, state.err = ok, err
        state.ran = true
      end })
    end
    make()
    H.scrub_stack()
    H.wait_until(function()
      collectgarbage()
      return state.ran
    end, 2)
    return state
  end

  it("go.sleep raises an error mentioning __gc", function()
    local st = finalize_with(function() go.sleep(0.01) end)
    assert.is_true(st.ran, "finalizer did not run")
    assert.are.equal(false, st.ok)
    assert.matches("__gc", tostring(st.err))
  end)

  it("ch:recv raises an error mentioning __gc", function()
    local ch = go.chan()
    local st = finalize_with(function() ch:recv() end)
    assert.is_true(st.ran, "finalizer did not run")
    assert.are.equal(false, st.ok)
    assert.matches("__gc", tostring(st.err))
  end)

  it("conn:read raises an error mentioning __gc", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local st = finalize_with(function() s:read() end)
      assert.is_true(st.ran, "finalizer did not run")
      assert.are.equal(false, st.ok)
      assert.matches("__gc", tostring(st.err))
      -- and the runtime still works afterwards
      assert(c:write("z"))
      assert.are.equal("z", s:read(1))
      c:close(); s:close(); ln:close()
    end)
  end)
end)
