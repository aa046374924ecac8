-- cmodule_spec: the example C module (modules/timerfd), built on the public
-- C API only: fd parking with deadlines, cross-thread wake-ups, conns made
-- from raw fds, goroutines spawned from C.
local go = require "go"
local H = require "support.helpers"
local timerfd = require "timerfd"

describe("timerfd example module", function()
  it("a ticker parks until it fires", function()
    H.no_fd_leak(function()
      local t <close> = timerfd.ticker(0.02)
      local t0 = go.now()
      local n = assert(t:wait(2))
      assert.is_true(n >= 1)
      assert.is_true(go.now() - t0 < 1)
    end)
  end)

  it("a wait with a deadline times out and the ticker stays usable", function()
    H.no_fd_leak(function()
      local t <close> = timerfd.ticker(5)
      local t0 = go.now()
      local n, err = t:wait(0.05)
      assert.is_nil(n); assert.are.equal("timeout", err)
      assert.is_true(go.now() - t0 >= 0.04)
      assert.are.same({ nil, "timeout" }, { t:wait(0) })
    end)
  end)

  it("close from another goroutine wakes the waiter with 'closed'", function()
    H.no_fd_leak(function()
      local t = timerfd.ticker(10)
      local g = go(function() return t:wait() end)
      go.sleep(0.02)
      t:close()
      assert.are.same({ true, nil, "closed" }, { go.wait(g, 2) })
      assert.are.same({ nil, "closed" }, { t:wait() })
    end)
  end)

  it("other goroutines keep running while one waits on a tick", function()
    local t <close> = timerfd.ticker(0.1)
    local g = go(function() return t:wait(2) end)
    local spins = 0
    while go.wait(g, 0) == nil do spins = spins + 1; go.sleep(0.005) end
    assert.is_true(spins > 3)
  end)

  it("a second waiter on one ticker is misuse", function()
    local t <close> = timerfd.ticker(10)
    local g = go(function() return t:wait(1) end)
    go.sleep(0.01)
    assert.has_error(function() t:wait(0.1) end)
    t:close()
    go.wait(g, 2)
  end)

  it("pipe() gives goluarun conns: read forms and deadlines work", function()
    H.no_fd_leak(function()
      local r, w = timerfd.pipe()
      assert(w:write("one\n", "two\n"))
      assert.are.equal("one", r:read("l"))
      assert.are.equal("two", r:read("l"))
      r:settimeout(0.05)
      local d, err = r:read()
      assert.is_nil(d); assert.are.equal("timeout", err)
      w:close()
      r:settimeout(nil)
      assert.are.same({ nil, "eof" }, { r:read() })
      r:close()
    end)
  end)

  it("go() from C starts a goroutine whose results go.wait sees", function()
    local g = timerfd.go(function(a, b) go.sleep(0.01); return a * b end, 6, 7)
    assert.are.same({ true, 42 }, { go.wait(g, 2) })
  end)

  it("a pthread readies a parked goroutine (glr_ready from another thread)", function()
    for _, s in ipairs({ 0, 0.001, 0.02 }) do
      local g = go(function() return timerfd.thread_wake(s) end)
      assert.are.same({ true, true }, { go.wait(g, 5) })
    end
  end)

  it("a goroutine parked by glr_park is not a deadlock", function()
    local r = H.run('require("timerfd").thread_wake(0.2); print("woke")', {}, { timeout = 10 })
    assert.are.equal(0, r.status)
    assert.matches("woke", r.stdout)
  end)

  it("blocking_sleep brackets a blocking call", function()
    local t0 = go.now()
    timerfd.blocking_sleep(0.02)
    assert.is_true(go.now() - t0 >= 0.015)
  end)

  it("whoami reports the goroutine, P and number of Ps", function()
    local id, p, n = timerfd.whoami()
    assert.are.equal(go.id(), id)
    assert.are.equal(go.procid(), p)
    assert.are.equal(go.nprocs(), n)
  end)
end)

describe("scripts/ticker_server.lua (the C module used from a script)", function()
  it("streams ticks from a timerfd to each client", function()
    local net = require "net"
    local here = debug.getinfo(1, "S").source:gsub("^@", "")
    local root = here:match("^(.*)/spec/[^/]*$") or "."
    local p = H.spawn(root .. "/scripts/ticker_server.lua", { "127.0.0.1:0", "0.02", "5" },
      { timeout = 60, file = true })
    finally(function() p:cleanup() end)
    local addr = p:wait_output("listening on (%S+)", 10)
    assert.truthy(addr, "server did not start:\n" .. p:stderr())
    local a = assert(net.dial(addr, 5))
    local b = assert(net.dial(addr, 5))
    a:settimeout(5); b:settimeout(5)
    for i = 1, 5 do
      assert.matches("^tick " .. i, (a:read("l")))
      assert.matches("^tick " .. i, (b:read("l")))
    end
    assert.are.equal("bye", a:read("l"))
    assert.are.equal("bye", b:read("l"))
    a:close(); b:close()
  end)
end)
