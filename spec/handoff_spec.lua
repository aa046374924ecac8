-- The blocking-call hand-off (runtime/HACKING.md "Hand-off"; runtime/handoff.h):
-- a goroutine blocked in C, or in an operation that cannot yield, leaves its
-- P to another M, so the VM's other goroutines keep running.
local go = require "go"
local H = require "support.helpers"

local timerfd = require "timerfd"
local tu = H.testutil()

-- ticker: a goroutine of this VM counting 10 ms sleeps until stopped
local function ticker()
  local t = { n = 0, stop = false, done = go.chan(1) }
  go(function()
    while not t.stop do
      go.sleep(0.01)
      t.n = t.n + 1
    end
    t.done:send(true)
  end)
  function t:finish()
    self.stop = true
    assert(self.done:recv())
    return self.n
  end
  return t
end

-- under ThreadSanitizer (GOLUA_TSAN): TSan delivers SIGURG only at its own
-- interception points, never inside a pure Lua loop, so preemption cannot
-- be tested there
local TSAN = os.getenv("GOLUA_TSAN") ~= nil
local function it_notsan(name, fn)
  if TSAN then pending(name .. " (not under TSan: no SIGURG in a Lua loop)") else it(name, fn) end
end
-- os.exit does not wait for Ms stuck in C calls (by design, as Go), so it
-- leaves them and sysmon unjoined, which TSan reports as thread leaks: the
-- children of the exit cases run with those reports off (races still on)
local EXIT_ENV = TSAN and { TSAN_OPTIONS = (os.getenv("TSAN_OPTIONS") or "") .. " report_thread_leaks=0" } or nil

local function handoffs_here()
  local _, p = timerfd.whoami()
  return go.stats().procs[p + 1].handoffs
end

describe("blocking-call hand-off", function()
  it("a C module sleeping 200 ms inside the hand-off leaves a ticker on its VM ticking", function()
    local before = handoffs_here()
    local t = ticker()
    timerfd.blocking_sleep(0.2)
    local n = t:finish()
    -- 20 ticks fit in 200 ms; without the hand-off there would be none
    assert.is_true(n >= 5, "ticks during the blocking call: " .. n)
    assert.is_true(handoffs_here() > before, "go.stats() counts the hand-off")
  end)

  it("several goroutines of one VM block at once (one M each)", function()
    local r = H.run([[
      local tu = require "testutil"
      local wg = {}
      for i = 1, 8 do wg[i] = go(function() tu.block_sleep(0.1) end) end
      for i = 1, 8 do assert(go.wait(wg[i], 10)) end
      print("max", tu.block_max(), "handoffs", go.stats().handoffs)
    ]], {}, { flags = { "-p", "1" }, timeout = 20 })
    assert.are.equal(0, r.status, r.stderr)
    local max, ho = r.stdout:match("max\t(%d+)\thandoffs\t(%d+)")
    assert.is_true(tonumber(max) >= 4, r.stdout)
    assert.is_true(tonumber(ho) >= 3, r.stdout)
  end)

  it("the number of Ms is capped (GOLUA_MAXTHREADS)", function()
    local r = H.run([[
      local tu = require "testutil"
      local wg = {}
      for i = 1, 6 do wg[i] = go(function() tu.block_sleep(0.05) end) end
      for i = 1, 6 do assert(go.wait(wg[i], 10)) end
      print("max", tu.block_max())
    ]], {}, { flags = { "-p", "1" }, env = { GOLUA_MAXTHREADS = "2" }, timeout = 20 })
    assert.are.equal(0, r.status, r.stderr)
    -- M0 and one pool M: never more than two calls in flight, and two did run together
    assert.are.equal("2", r.stdout:match("max\t(%d+)"), r.stdout)
  end)

  it("no hand-off when the P has nothing else to do", function()
    local r = H.run([[
      local tu = require "testutil"
      tu.block_sleep(0.05)
      print("handoffs", go.stats().handoffs)
    ]], {}, { flags = { "-p", "1" } })
    assert.are.equal(0, r.status, r.stderr)
    assert.are.equal("0", r.stdout:match("handoffs\t(%d+)"), r.stdout)
  end)

  it_notsan("preemption still works on a goroutine that came back from a hand-off", function()
    local r = H.run([[
      local tu = require "testutil"
      local stop, ticks = false, 0
      go(function()
        while ticks < 20 do go.sleep(0.005); ticks = ticks + 1 end
        stop = true
      end)
      tu.block_sleep(0.05)
      while not stop do end
      print("ok", ticks)
    ]], {}, { flags = { "-p", "1" }, timeout = 20 })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("ok\t20", r.stdout)
  end)

  it("a goroutine blocked in C is not a deadlock, and os.exit does not wait for it", function()
    local r = H.run([[
      local tu = require "testutil"
      go(function() tu.block_sleep(60) end)
      local c = go.chan()
      go(function() go.sleep(0.05); c:send("x") end)
      print(c:recv())
      os.exit(0)
    ]], {}, { flags = { "-p", "1" }, timeout = 20, env = EXIT_ENV })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("x", r.stdout)
  end)

  it("os.exit ends the process whatever the Ms are doing (30 shuffled runs)", function()
    for seed = 1, 30 do
      local r = H.run(([[
        local tu = require "testutil"
        math.randomseed(%d)
        go(function() while true do go.sleep(0.001) end end) -- work for retakes
        for i = 1, 6 do
          go(function()
            for _ = 1, 20 do tu.block_sleep(math.random() * 0.004) ; go.yield() end
            tu.block_sleep(60) -- stuck at exit
          end)
        end
        go.sleep(math.random() * 0.05)
        os.exit(3)
      ]]):format(seed), {}, { flags = { "-p", tostring(1 + seed % 2) }, timeout = 20, env = EXIT_ENV })
      assert.are.equal(3, r.status, "seed " .. seed .. ": " .. H.describe_run(r))
    end
  end)

  it("works from several Ps at once", function()
    local r = H.run([[
      local tu = require "testutil"
      local hs = {}
      for i = 1, 40 do hs[i] = go.spawn("handoff_work:blocker", i) end
      local sum = 0
      for i = 1, 40 do
        local ok, v = go.wait(hs[i], 20)
        assert(ok, v)
        sum = sum + v
      end
      print("sum", sum)
    ]], {}, { flags = { "-p", "2" }, timeout = 30 })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("sum\t820", r.stdout)
  end)
end)

describe("operations that cannot yield use the hand-off", function()
  it("conn:read() in a table.sort comparator works while a ticker on the VM ticks", function()
    local c, s, l = H.pair()
    local t = ticker()
    go(function() go.sleep(0.2); s:write("x") end)
    local got
    local list = { 3, 1, 2 }
    table.sort(list, function(a, b)
      if not got then got = assert(c:read(1)) end
      return a < b
    end)
    local n = t:finish()
    assert.are.equal("x", got)
    assert.are.same({ 1, 2, 3 }, list)
    assert.is_true(n >= 5, "ticks while the comparator was blocked: " .. n)
    c:close(); s:close(); l:close()
  end)

  it("close from another goroutine wakes a reader blocked in a comparator", function()
    H.no_fd_leak(function()
      local c, s, l = H.pair()
      go(function() go.sleep(0.05); c:close() end)
      local res
      table.sort({ 2, 1 }, function(a, b)
        res = res or { c:read(1) }
        return a < b
      end)
      assert.is_nil(res[1])
      H.assert_err(res[2], "closed")
      s:close(); l:close()
    end)
  end)

  it("a read deadline, also one set while blocked, wakes it with timeout", function()
    local c, s, l = H.pair()
    c:settimeout(0.05)
    local res
    table.sort({ 2, 1 }, function(a, b)
      res = res or { c:read(1) }
      return a < b
    end)
    assert.is_nil(res[1]); H.assert_err(res[2], "timeout")
    c:settimeout(nil)
    go(function() go.sleep(0.05); c:setreaddeadline(go.now()) end)
    res = nil
    table.sort({ 2, 1 }, function(a, b)
      res = res or { c:read(1) }
      return a < b
    end)
    assert.is_nil(res[1]); H.assert_err(res[2], "timeout")
    c:close(); s:close(); l:close()
  end)

  it("net.dial to an address or to a host name (a lookup) works inside a comparator", function()
    local ln = assert(require("net").listen("127.0.0.1:0"))
    local port = ln:addr():match(":(%d+)$")
    local got = go(function()
      for _ = 1, 2 do local s = ln:accept(); s:write("hi"); s:close() end
    end)
    for _, addr in ipairs({ ln:addr(), "localhost:" .. port }) do
      local c
      table.sort({ 2, 1 }, function(a, b)
        c = c or assert(require("net").dial(addr, 5))
        return a < b
      end)
      assert.are.equal("hi", c:read(2))
      c:close()
    end
    assert.is_true((go.wait(got, 5)))
    ln:close()
  end)

  it("a write that must wait for the peer works inside a string.gsub callback", function()
    local c, s, l = H.pair()
    local big = H.payload(H.scale(4 * 1024 * 1024, 4096), 7)
    local got = go(function()
      go.sleep(0.05)
      return s:read(#big)
    end)
    string.gsub("a", "a", function() assert(c:write(big)) end)
    local ok, data = go.wait(got, 20)
    assert.is_true(ok)
    assert.is_true(data == big, "payload intact")
    c:close(); s:close(); l:close()
  end)
end)
