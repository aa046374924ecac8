-- go_spec: goroutines, go.wait, go.sleep, go.yield, go.now, go.id,
-- go.procid/go.nprocs, go.stats, go.exit.
local go = require "go"
local H = require "support.helpers"

describe("go", function()
  describe("go.start(fn, ...)", function()
    it("runs fn with its arguments and returns nothing", function()
      local ch = go.chan(1)
      local r = table.pack(go.start(function(a, b) ch:send(a + b) end, 2, 3))
      assert.are.equal(0, r.n)
      assert.are.same({ 5, true }, { ch:recv() })
    end)

    it("raises for a value that is not a function", function()
      assert.has_error(function() go.start(42) end,
        "bad argument #1 to 'start' (function expected, got number)")
    end)

    it("an error ends only that goroutine", function()
      local done = go.chan(1)
      go.start(function() error("boom from go.start") end)
      go.start(function() done:send("after") end)
      assert.are.same({ "after", true }, { done:recv() })
    end)
  end)

  describe("go(fn, ...) and go.wait", function()
    it("runs fn with its arguments and returns its results", function()
      local g = go(function(a, b, c) return a + b, c, "x" end, 1, 2, "three")
      assert.truthy(g)
      local ok, s, c, x = go.wait(g, 5)
      assert.is_true(ok)
      assert.are.equal(3, s)
      assert.are.equal("three", c)
      assert.are.equal("x", x)
    end)

    it("keeps nil arguments and results in place", function()
      local g = go(function(...) return select("#", ...), ... end, nil, 2, nil)
      local r = table.pack(go.wait(g, 5))
      assert.is_true(r[1])
      assert.are.equal(3, r[2])
      assert.is_nil(r[3])
      assert.are.equal(2, r[4])
      assert.are.equal(5, r.n)
    end)

    it("returns results of a goroutine that already finished", function()
      local finished = false
      local g = go(function() finished = true; return "early" end)
      assert.is_true(H.wait_until(function() return finished end, 5))
      go.sleep(0.01)
      local ok, v = go.wait(g, 5)
      assert.is_true(ok)
      assert.are.equal("early", v)
    end)

    it("gives false, errmsg when the goroutine raised", function()
      local g = go(function() error("expected failure 1234") end)
      local ok, msg = go.wait(g, 5)
      assert.are.equal(false, ok)
      assert.matches("expected failure 1234", tostring(msg))
    end)

    it("gives nil, 'timeout' when the goroutine is still running", function()
      local ch = go.chan()
      local g = go(function() return ch:recv() end)
      local dt, ok, err = H.timed(go.wait, g, 0.05)
      assert.is_nil(ok)
      assert.are.equal("timeout", err)
      assert.is_true(dt >= 0.03 and dt < 1.0, "waited " .. dt)
      ch:send("late")
      local ok2, v = go.wait(g, 5)
      assert.is_true(ok2)
      assert.are.equal("late", v)
    end)

    it("wait with timeout 0 polls", function()
      local ch = go.chan()
      local g = go(function() ch:recv() end)
      local dt, ok, err = H.timed(go.wait, g, 0)
      assert.is_nil(ok)
      assert.are.equal("timeout", err)
      assert.is_true(dt < 0.5)
      ch:send(1)
      assert.is_true((go.wait(g, 5)))
    end)

    it("raises on misuse (non-function)", function()
      assert.has_error(function() go(42) end)
      assert.has_error(function() go.wait(42) end)
    end)

    it("a goroutine that raises does not stop the others", function()
      local ch = go.chan()
      local bad = go(function() go.sleep(0.01); error("boom in goroutine") end)
      local good = go(function()
        local v = ch:recv()
        go.sleep(0.02)
        return v * 2
      end)
      local ok, msg = go.wait(bad, 5)
      assert.are.equal(false, ok)
      assert.matches("boom in goroutine", msg)
      ch:send(21)
      local ok2, v = go.wait(good, 5)
      assert.is_true(ok2)
      assert.are.equal(42, v)
    end)

    it("runs many goroutines concurrently", function()
      local n = 500
      local done = go.chan(n)
      for i = 1, n do
        go(function() go.sleep(0.01); done:send(i) end)
      end
      local seen, count = {}, 0
      for _ = 1, n do
        local i, v = go.select({ { done, "recv" } }, 5)
        assert.truthy(i, "a goroutine did not finish")
        assert.is_nil(seen[v])
        seen[v] = true
        count = count + 1
      end
      assert.are.equal(n, count)
    end)
  end)

  describe("how a goroutine ends (its error, its closes)", function()
    it("go.wait gives the error object itself, however often it is asked", function()
      local e = setmetatable({}, { __tostring = function() return "a table error" end })
      local g = go(function() error(e) end)
      for _ = 1, 3 do
        local ok, got = go.wait(g, 5)
        assert.are.equal(false, ok)
        assert.are.equal(e, got)
      end
      local ok, got = go.wait(go(function() error(nil) end), 5)
      assert.are.equal(false, ok)
      assert.is_nil(got)
      assert.matches("^goroutine %d+ %(failed%)$", tostring(g))
    end)

    it("runs the body's to-be-closed variables on an error, then go.wait has the final error", function()
      local seen = {}
      local function closer(name, raise)
        return setmetatable({}, { __close = function(_, err)
          seen[#seen + 1] = name .. ":" .. tostring(err):match("[^:]*$")
          if raise then error(raise, 0) end
        end })
      end
      local g1 = go(function()
        local a <close> = closer("a")
        go.sleep(0.001)
        error("body boom", 0)
      end)
      local ok, err = go.wait(g1, 5)
      assert.are.equal(false, ok)
      assert.are.equal("body boom", err)
      assert.are.same({ "a:body boom" }, seen)
      seen = {}
      local g2 = go(function()
        local b <close> = closer("b", "close boom")
        error("body boom", 0)
      end)
      ok, err = go.wait(g2, 5)
      assert.are.equal(false, ok)
      assert.are.equal("close boom", err)
      assert.are.same({ "b:body boom" }, seen)
    end)

    it("a __close run by a raising goroutine may still block (channel send, sleep)", function()
      local done = go.chan()
      local g = go(function()
        local _ <close> = setmetatable({}, { __close = function(_, err)
          go.sleep(0.001)
          done:send("cleaned up after: " .. tostring(err))
        end })
        error("boom", 0)
      end)
      assert.are.equal("cleaned up after: boom", (done:recv(5)))
      local ok, err = go.wait(g, 5)
      assert.are.equal(false, ok)
      assert.are.equal("boom", err)
    end)

    it("go.wait on its own handle raises, while running and in a failing goroutine's __close", function()
      local SELF = "go.wait: a goroutine cannot wait for itself"
      local me = go.chan(1)
      local g1 = go(function()
        local h = me:recv()
        local ok, err = pcall(go.wait, h, 0.05)
        local ok0, err0 = pcall(go.wait, h, 0)
        return ok, err, ok0, err0
      end)
      me:send(g1)
      local ok, a, b, c, d = go.wait(g1, 5)
      assert.is_true(ok)
      assert.is_false(a); assert.matches(SELF, b, 1, true)
      assert.is_false(c); assert.matches(SELF, d, 1, true)
      local seen = go.chan(1)
      local g2
      g2 = go(function()
        local _ <close> = setmetatable({}, { __close = function()
          seen:send(table.pack(pcall(go.wait, g2)))
        end })
        go.yield() -- g2 is assigned by now
        error("boom", 0)
      end)
      local r = seen:recv()
      assert.is_false(r[1])
      assert.matches(SELF, r[2], 1, true)
      local ok2, err2 = go.wait(g2, 5)
      assert.is_false(ok2)
      assert.are.equal("boom", err2)
    end)

    it("a goroutine that parks inside pcall, then raises outside it, fails as usual", function()
      local g = go(function()
        local ok, e = pcall(function() go.sleep(0.001); error("inner", 0) end)
        assert(not ok and e == "inner")
        go.yield()
        error("outer", 0)
      end)
      local ok, err = go.wait(g, 5)
      assert.are.equal(false, ok)
      assert.are.equal("outer", err)
      -- and the next goroutines (maybe on a recycled thread) are unaffected
      for i = 1, 5 do
        local ok2, a, b = go.wait(go(function(x) return x, x + 1 end, i), 5)
        assert.is_true(ok2)
        assert.are.same({ i, i + 1 }, { a, b })
      end
    end)

    it("a handle whose uservalue Lua code replaced gives no error object, and no crash", function()
      local g = go(function() go.yield(); error("x", 0) end)
      debug.setuservalue(g, 42, 1)
      local ok, err = go.wait(g, 5)
      assert.are.equal(false, ok)
      assert.is_nil(err)
      assert.is_true((go.wait(go(function() end), 5)))
    end)

    it("reports an error with its traceback on stderr (a table error by its __tostring)", function()
      local r = H.run([[
        local g = go(function()
          local function deep() error("deep boom") end
          deep()
        end)
        print(go.wait(g))
        local t = go(function()
          error(setmetatable({}, { __tostring = function() return "tostring'd" end }))
        end)
        print((go.wait(t)))
        local c = go(function()
          local x <close> = setmetatable({}, { __close = function() error("close boom", 0) end })
          error("first", 0)
        end)
        print(go.wait(c))
      ]])
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("false\t[^\n]*deep boom\n", r.stdout)
      assert.matches("\nfalse\n", r.stdout)
      assert.matches("false\tclose boom\n", r.stdout)
      assert.matches("goroutine %d+: [^\n]*deep boom\nstack traceback:\n\t%[C%]: in function 'error'\n"
        .. "[^\n]*in [^\n]*deep", r.stderr)
      assert.matches("goroutine %d+: tostring'd\nstack traceback:", r.stderr)
      assert.matches("goroutine %d+: first\nstack traceback:", r.stderr)
      assert.matches("goroutine %d+: close boom", r.stderr)
    end)
  end)

  describe("go.sleep", function()
    it("sleeps about the given time", function()
      local dt = H.timed(go.sleep, 0.05)
      assert.is_true(dt >= 0.045 and dt < 1.0, "slept " .. dt)
    end)

    it("go.sleep(0) returns at once and lets others run", function()
      local ran = false
      go(function() ran = true end)
      local dt = H.timed(function()
        for _ = 1, 100 do
          if ran then break end
          go.sleep(0)
        end
      end)
      assert.is_true(ran)
      assert.is_true(dt < 0.5)
    end)

    it("sleepers wake in deadline order", function()
      local order = {}
      local gs = {}
      for _, d in ipairs({ 0.09, 0.03, 0.06 }) do
        gs[#gs + 1] = go(function() go.sleep(d); order[#order + 1] = d end)
      end
      for _, g in ipairs(gs) do assert.is_true((go.wait(g, 5))) end
      assert.are.same({ 0.03, 0.06, 0.09 }, order)
    end)

    it("a woken sleeper runs next, not behind a full run queue", function()
      -- 100 goroutines take 1 ms slices, each spawning a goroutine first
      -- (which takes runnext) and then yielding to the tail; a ticker
      -- sleeping 2 ms counts the slices that started after its deadline.
      -- It must run right after the slice during which its timer fell due,
      -- however long the queue: a timer's wake-up goes before runnext.
      local N, after, due, stop = 100, 0, math.huge, false
      local ticker = go(function()
        local worst = 0
        for _ = 1, 20 do
          after, due = 0, go.now() + 0.002
          go.sleep(0.002)
          due = math.huge
          if after > worst then worst = after end
        end
        stop = true
        return worst
      end)
      local busy = {}
      for i = 1, N do
        busy[i] = go(function()
          while not stop do
            if go.now() >= due then after = after + 1 end
            local t0 = go.now()
            repeat until go.now() - t0 >= 0.001
            go(function() end)
            go.yield()
          end
        end)
      end
      local ok, worst = go.wait(ticker, 30)
      assert.is_true(ok)
      for i = 1, N do assert.is_true((go.wait(busy[i], 10))) end
      assert.is_true(worst <= 2, "slices run after the ticker's deadline: " .. worst)
    end)

    it("does not block the other goroutines of the VM", function()
      local ticks = 0
      local g = go(function() go.sleep(0.2) end)
      local t = go(function()
        while go.wait(g, 0) == nil do
          ticks = ticks + 1
          go.sleep(0.01)
        end
      end)
      assert.is_true((go.wait(t, 5)))
      assert.is_true(ticks >= 3, "ticks " .. ticks)
    end)
  end)

  describe("go.yield", function()
    it("interleaves runnable goroutines", function()
      local log = {}
      local function worker(name)
        log[#log + 1] = name .. "1"
        go.yield()
        log[#log + 1] = name .. "2"
      end
      local a = go(worker, "a")
      local b = go(worker, "b")
      assert.is_true((go.wait(a, 5)))
      assert.is_true((go.wait(b, 5)))
      assert.are.equal(4, #log)
      -- both first halves run before either second half
      assert.are.equal("1", log[1]:sub(2))
      assert.are.equal("1", log[2]:sub(2))
      assert.are.equal("2", log[3]:sub(2))
      assert.are.equal("2", log[4]:sub(2))
    end)

    it("a yielding busy loop does not starve a sleeper", function()
      local stop = false
      local spins = 0
      local busy = go(function()
        while not stop do spins = spins + 1; go.yield() end
      end)
      local dt = H.timed(go.sleep, 0.05)
      stop = true
      assert.is_true((go.wait(busy, 5)))
      assert.is_true(dt < 1.0, "sleeper starved: " .. dt)
      assert.is_true(spins > 0)
    end)
  end)

  describe("go.now", function()
    it("is a monotonic float clock in seconds", function()
      local prev = go.now()
      assert.are.equal("number", type(prev))
      for _ = 1, 1000 do
        local t = go.now()
        assert.is_true(t >= prev)
        prev = t
      end
      local t0 = go.now()
      go.sleep(0.02)
      local d = go.now() - t0
      assert.is_true(d >= 0.015 and d < 1.0, "delta " .. d)
    end)
  end)

  describe("go.id", function()
    it("is 1 in main", function()
      assert.are.equal(1, go.id())
      assert.are.equal("integer", math.type(go.id()))
    end)

    it("differs per goroutine", function()
      local ids = { [go.id()] = true }
      for _ = 1, 20 do
        local ok, id = go.wait(go(function() return go.id() end), 5)
        assert.is_true(ok)
        assert.are.equal("integer", math.type(id))
        assert.is_true(id > 1)
        ids[id] = true
      end
      -- concurrently alive goroutines have distinct ids
      local ch = go.chan()
      local gs, live = {}, {}
      for i = 1, 10 do
        gs[i] = go(function() local id = go.id(); ch:recv(); return id end)
      end
      go.sleep(0)
      for _ = 1, 10 do ch:send(true) end
      for i = 1, 10 do
        local ok, id = go.wait(gs[i], 5)
        assert.is_true(ok)
        assert.is_nil(live[id])
        live[id] = true
        assert.are_not.equal(1, id)
      end
    end)
  end)

  describe("go.procid / go.nprocs", function()
    it("main runs on P 0 of nprocs", function()
      local n = go.nprocs()
      assert.are.equal("integer", math.type(n))
      assert.is_true(n >= 1)
      assert.are.equal(0, go.procid())
    end)

    it("a local goroutine runs in the same VM", function()
      local ok, p = go.wait(go(function() return go.procid() end), 5)
      assert.is_true(ok)
      assert.are.equal(go.procid(), p)
    end)
  end)

  describe("go.stats", function()
    it("has the keys of API.md", function()
      local s = go.stats()
      assert.are.equal("table", type(s))
      for _, k in ipairs({ "goroutines", "runnable", "threads",
                           "netpoll_waiters", "spawned", "coroutines_created",
                           "steals", "preemptions", "handoffs" }) do
        assert.are.equal("number", type(s[k]), "stats." .. k)
      end
      assert.are.equal("table", type(s.procs))
      assert.are.equal(go.nprocs(), #s.procs)
      for i, p in ipairs(s.procs) do
        assert.are.equal("number", type(p.goroutines), "procs[" .. i .. "].goroutines")
        assert.are.equal("number", type(p.runq), "procs[" .. i .. "].runq")
      end
      assert.is_true(s.goroutines >= 1)
      assert.is_true(s.threads >= 1)
    end)

    it("counts live goroutines", function()
      local before = go.stats().goroutines
      local ch = go.chan()
      local gs = {}
      for i = 1, 10 do gs[i] = go(function() ch:recv() end) end
      go.sleep(0)
      assert.is_true(go.stats().goroutines >= before + 10)
      ch:close()
      for i = 1, 10 do go.wait(gs[i], 5) end
      assert.is_true(H.wait_until(function()
        return go.stats().goroutines <= before
      end, 5), "goroutines did not go back to " .. before)
    end)

    it("reuses coroutines: coroutines_created grows far less than goroutines run", function()
      -- warm the free list
      for _ = 1, 10 do go.wait(go(function() end), 5) end
      local before = go.stats().coroutines_created
      local n = 1000
      for i = 1, n do
        local ok, v = go.wait(go(function(x) return x end, i), 5)
        assert.is_true(ok)
        assert.are.equal(i, v)
      end
      local created = go.stats().coroutines_created - before
      assert.is_true(created < n / 10,
        "created " .. created .. " coroutines for " .. n .. " goroutines")
    end)
  end)

  describe("go.exit", function()
    it("ends the process with the code (subprocess)", function()
      local r = H.run([[
        go(function() go.sleep(0.01); io.stdout:write("in goroutine\n") end)
        go.sleep(0.05)
        io.stdout:write("before\n")
        go.exit(5)
        io.stdout:write("after\n")
      ]], nil, { timeout = 10 })
      assert.are.equal(5, r.status, H.describe_run(r))
      assert.matches("in goroutine\nbefore\n", r.stdout)
      assert.is_nil(r.stdout:find("after", 1, true))
    end)

    it("go.exit() is status 0, even with goroutines blocked", function()
      local r = H.run([[
        for _ = 1, 3 do go(function() go.chan():recv() end) end
        go(function() go.sleep(3600) end)
        go.sleep(0.01)
        go.exit()
      ]], nil, { timeout = 10 })
      assert.are.equal(0, r.status, H.describe_run(r))
    end)

    it("go.exit from a non-main goroutine ends the process", function()
      local r = H.run([[
        go(function() go.sleep(0.02); go.exit(7) end)
        go.chan():recv()
      ]], nil, { timeout = 10 })
      assert.are.equal(7, r.status, H.describe_run(r))
      assert.is_nil(r.stderr:find("deadlock", 1, true))
    end)
  end)
end)
