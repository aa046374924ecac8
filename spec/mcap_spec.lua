-- The M cap (GOLUA_MAXTHREADS) when every M is stuck in a blocking call
-- (runtime/HACKING.md "Hand-off": thread exhaustion; "Progress, exit and
-- deadlock": signals). Every case runs a subprocess; each failed before:
-- the process slept for good, and ignored the first SIGTERM.
local H = require "support.helpers"

-- a script whose goroutines block in reads inside table.sort comparators
-- (non-yieldable: the hand-off) on conns whose data never comes
local READERS = [[
  local net = require "net"
  local n, timeout = tonumber(arg[1]), tonumber(arg[2])
  local ln = assert(net.listen("127.0.0.1:0"))
  local held = {}
  go(function()
    while true do
      local s = ln:accept()
      if not s then break end
      held[#held + 1] = s
    end
  end)
  local done = 0
  for i = 1, n do
    go(function()
      local c = assert(net.dial(ln:addr(), 5))
      if timeout then c:settimeout(timeout) end
      table.sort({ 2, 1 }, function(a, b) c:read(1); return a < b end)
      done = done + 1
      if done == n then print("all returned"); ln:close() end
    end)
  end
  print("started"); io.stdout:flush()
]]

describe("thread exhaustion (GOLUA_MAXTHREADS)", function()
  it("20 reads blocked in comparators with 3 Ms: fatal error naming the blocked calls, status 2", function()
    local t0 = os.time()
    local r = H.run(READERS, { "20" }, {
      flags = { "-p", "1" },
      env = { GOLUA_MAXTHREADS = "3", GOLUA_DEBUG = "mcapwait=500" },
      timeout = 30,
    })
    assert.are.equal(2, r.status, H.describe_run(r))
    assert.is_true(os.time() - t0 < 20, "took " .. (os.time() - t0) .. " s")
    assert.matches("started", r.stdout)
    assert.truthy(r.stderr:find(
      "fatal error: all threads are blocked in C calls (GOLUA_MAXTHREADS=3)", 1, true), r.stderr)
    -- each of the three blocked calls, with the traceback down to the comparator
    local _, nsys = r.stderr:gsub("%[syscall: IO wait%]:\nstack traceback:\n\t%[C%]: in method 'read'", "")
    assert.are.equal(3, nsys, r.stderr)
    assert.truthy(r.stderr:find("in function 'table.sort'", 1, true), r.stderr)
    -- and the goroutines that waited to run
    assert.truthy(r.stderr:find("[runnable]", 1, true), r.stderr)
  end)

  it("blocking calls with a deadline are not exhaustion: they come back by themselves", function()
    local r = H.run(READERS, { "4", "1" }, {
      flags = { "-p", "1" },
      env = { GOLUA_MAXTHREADS = "2", GOLUA_DEBUG = "mcapwait=200" },
      timeout = 30,
    })
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.matches("all returned", r.stdout)
  end)

  it("short blocking calls at the cap are not exhaustion: the wait starts again after each", function()
    local r = H.run([[
      local tu = require "testutil"
      local wg = {}
      for i = 1, 12 do wg[i] = go(function() tu.block_sleep(0.05) end) end
      for i = 1, 12 do assert(go.wait(wg[i], 10)) end
      print("ok", tu.block_max())
    ]], {}, {
      flags = { "-p", "1" },
      env = { GOLUA_MAXTHREADS = "2", GOLUA_DEBUG = "mcapwait=300" },
      timeout = 30,
    })
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.matches("ok\t2", r.stdout)
  end)
end)

describe("SIGTERM with Ms stuck in blocking calls", function()
  it("P0's M blocked in C and no M to spare: the grace period still ends the process", function()
    local p = H.spawn(READERS, { "1" }, {
      flags = { "-p", "1" },
      env = { GOLUA_MAXTHREADS = "1", GOLUA_GRACE = "0.5" },
      timeout = 60,
    })
    finally(function() p:cleanup() end)
    assert.truthy(p:wait_output("(started)", 10), p:stderr())
    local t0 = os.clock() + os.time()
    p:kill("TERM")
    local st = p:wait(10)
    assert.are.equal(1, st, "status " .. tostring(st) .. "\n" .. p:stderr())
    assert.truthy(p:stderr():find("shutdown grace period expired", 1, true), p:stderr())
    assert.is_true(os.clock() + os.time() - t0 < 10)
  end)

  it("P0's M blocked in C: another P takes the signal and closes its listeners at once", function()
    local p = H.spawn([[
      local go = require "go"
      go.spawn_on(1, "support.mcap_work:listen")
      local net = require "net"
      local ln = assert(net.listen("127.0.0.1:0"))
      local c = assert(net.dial(ln:addr(), 5))
      local s = ln:accept()
      print("blocking"); io.stdout:flush()
      table.sort({ 2, 1 }, function(a, b) c:read(1); return a < b end)
    ]], nil, {
      flags = { "-p", "2" },
      env = { GOLUA_MAXTHREADS = "2", GOLUA_GRACE = "30" },
      timeout = 60,
    })
    finally(function() p:cleanup() end)
    assert.truthy(p:wait_output("(listening) ", 10), p:stderr())
    assert.truthy(p:wait_output("(blocking)", 10), p:stderr())
    p:kill("TERM")
    -- P1 ran its closers long before the 30 s grace period
    assert.truthy(p:wait_output("accept ended: (%a+)", 10), p:stdout() .. p:stderr())
    assert.is_nil(p:status())
    p:kill("TERM") -- the second signal ends it at once
    assert.are.equal(128 + 15, p:wait(10))
  end)
end)
