-- busy_neighbour_spec: a reader sharing its P with CPU-bound goroutines
-- answers within a scheduling slice, also when no timer is armed in its VM
-- (sysmon asks a P that has not polled for 10 ms to poll between two
-- slices, and the woken reader runs next). Before, such a P polled only
-- every 61st slice: ~750 ms per answer. The bounds here are loose on
-- purpose (sanitizers, fault injection, a loaded CI box); the figures are
-- measured by scripts/bench/busy_neighbour.lua.
local net = require "net"
local H = require "support.helpers"

local SERVER = H.root() .. "/scripts/bench/busy_server.lua"

-- under ThreadSanitizer (GOLUA_TSAN): TSan runs a signal handler only when
-- the thread enters one of its interceptors, and the server's spinning Lua
-- loops (liblua is not instrumented) never do, so SIGURG never preempts
-- them and the reader never gets a slice
local TSAN = os.getenv("GOLUA_TSAN") ~= nil
local function it_notsan(name, fn)
  if TSAN then pending(name .. " (not under TSan: no SIGURG in a Lua loop)") else it(name, fn) end
end

-- round trips of one line, at random gaps; returns median and max in ms
local function pings(addr, n)
  local c = assert(net.dial(addr, 10))
  c:settimeout(5)
  local t = {}
  for i = 1, n do
    local t0 = go.now()
    assert(c:write("ping " .. i .. "\n"))
    assert.are.equal("ping " .. i, c:read("l"))
    t[#t + 1] = (go.now() - t0) * 1000
    go.sleep(math.random() * 0.02)
  end
  c:close()
  table.sort(t)
  return t[(n + 1) // 2], t[n]
end

describe("a reader beside CPU-bound goroutines", function()
  for _, case in ipairs { { 1, 1 }, { 1, 4 }, { 2, 1 }, { 2, 4 } } do
    local procs, busy = case[1], case[2]
    it_notsan(("answers within a slice (-p %d, %d busy, no timers)"):format(procs, busy), function()
      -- the server runs without fault injection: under it every byte is
      -- one more park, and each park lets a spinning goroutine take a slice
      local p = H.spawn(SERVER, { tostring(busy) },
        { flags = { "-p", tostring(procs) }, file = true, unsetenv = { "GOLUA_MOCKEAGAIN" } })
      local addr = p:wait_output("listening on (%S+)", 10)
      assert.is_string(addr, p:stderr())
      local ok, median, max = pcall(pings, addr, 15)
      p:kill("KILL")
      p:cleanup()
      assert(ok, median)
      assert.is_true(median < 100, ("median %.1f ms"):format(median))
      assert.is_true(max < 2000, ("max %.1f ms"):format(max)) -- a loaded CI box: seconds would be a bug
    end)
  end
end)
