-- signal_spec: go.signal / go.signal_stop (docs/API.md "Signals"), tested on
-- child goluarun processes that the test signals with kill(1) by PID.
local H = require "support.helpers"

-- a child that prints "ready" then one "got NAME" line per signal received
local function subscriber(src, flags)
  local p = H.spawn(src, nil, { timeout = 60, flags = flags })
  assert.truthy(p:wait_output("(ready)", 10), "did not start:\n" .. p:stderr())
  return p
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

describe("go.signal", function()
  it("delivers SIGHUP, SIGUSR1 and SIGUSR2 by name; signal_stop restores the default", function()
    local p = subscriber([[
      local ch = go.signal("SIGHUP", "SIGUSR1", "SIGUSR2")
      io.stdout:write("ready\n"); io.stdout:flush()
      for i = 1, 3 do
        io.stdout:write("got ", ch:recv(), "\n"); io.stdout:flush()
      end
      go.signal_stop(ch)
      io.stdout:write("stopped\n"); io.stdout:flush()
      go.sleep(30)
    ]])
    finally(function() p:cleanup() end)
    for _, sig in ipairs({ "HUP", "USR1", "USR2" }) do
      p:kill(sig)
      assert.truthy(p:wait_output("(got SIG" .. sig .. ")", 5), "not delivered: " .. sig
        .. "\n" .. p:stdout() .. p:stderr())
    end
    assert.truthy(p:wait_output("(stopped)", 5))
    p:kill("HUP") -- default action again: the process dies of SIGHUP
    assert.are.equal(128 + 1, p:wait(5), p:stderr())
  end)

  it("a full channel drops (buffered 1); a subscription keeps the script alive", function()
    local p = subscriber([[
      local ch = go.signal("SIGUSR1")
      io.stdout:write("ready\n"); io.stdout:flush()
      while true do
        local line = io.read("l") -- the test says when to drain
        if not line then break end
        io.stdout:write("drained ", #ch, "\n"); io.stdout:flush()
        while #ch > 0 do ch:recv() end
      end
    ]], nil)
    finally(function() p:cleanup() end)
    -- no stdin here (H.spawn gives /dev/null): the loop ends at once; the
    -- process lives on because of the subscription
    go.sleep(0.2)
    assert.is_true(p:alive(), "exited with a subscription alive:\n" .. p:stderr())
    for _ = 1, 3 do p:kill("USR1"); go.sleep(0.02) end
    go.sleep(0.1)
    assert.is_true(p:alive())
    p:kill("KILL")
  end)

  it("SIGTERM subscribed: no graceful shutdown, the script decides", function()
    local p = subscriber([[
      local net = require "net"
      local ln = assert(net.listen("127.0.0.1:0"))
      local ch = go.signal("SIGTERM", "SIGINT")
      io.stdout:write("ready\n"); io.stdout:flush()
      for i = 1, 2 do io.stdout:write("got ", ch:recv(), "\n"); io.stdout:flush() end
      io.stdout:write("listener ", tostring(ln:addr() ~= nil), "\n"); io.stdout:flush()
      os.exit(7)
    ]])
    finally(function() p:cleanup() end)
    p:kill("TERM")
    assert.truthy(p:wait_output("(got SIGTERM)", 5), p:stderr())
    p:kill("INT")
    assert.truthy(p:wait_output("(got SIGINT)", 5), p:stderr())
    assert.are.equal(7, p:wait(5), p:stderr())
    assert.truthy(p:stdout():find("listener true", 1, true))
  end)

  it("delivers to subscribers on every P while a handler runs on each", function()
    local dir = H.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.shquote(dir)))
    H.write_file(dir .. "/sigsub.lua", [[
      local M = {}
      function M.run()
        local ch = go.signal("SIGUSR1")
        -- a handler busy on this P the whole time (under TSan, where no
        -- SIGURG reaches a Lua loop, one that yields now and then)
        local tsan = os.getenv("GOLUA_TSAN") ~= nil
        go(function()
          local x = 0
          while true do
            x = x + 1
            if tsan and x % 100000 == 0 then go.yield() end
          end
        end)
        -- one string per write: the two Ps share C's stdout, and a write
        -- of several arguments can interleave with the other P's
        io.stdout:write(("ready P%d\n"):format(go.procid())); io.stdout:flush()
        for i = 1, 3 do
          ch:recv()
          io.stdout:write(("P%d got %d\n"):format(go.procid(), i)); io.stdout:flush()
        end
      end
      return M
    ]])
    local p = H.spawn([[
      local hs = {}
      for i = 0, go.nprocs() - 1 do hs[#hs + 1] = go.spawn_on(i, "sigsub:run") end
      for _, h in ipairs(hs) do assert(go.wait(h)) end
      os.exit(0)
    ]], nil, { timeout = 60, flags = { "-p", "2" },
      env = { LUA_PATH = dir .. "/?.lua;" .. (os.getenv("LUA_PATH") or ";;") } })
    finally(function()
      p:cleanup(); os.remove(dir .. "/sigsub.lua"); os.remove(dir)
    end)
    assert.is_true(H.wait_until(function()
      return count(p:stdout(), "ready P") == 2 or not p:alive()
    end, 10), p:stdout() .. p:stderr())
    for i = 1, 3 do
      p:kill("USR1")
      assert.is_true(H.wait_until(function()
        return count(p:stdout(), "got " .. i) == 2 or not p:alive()
      end, 5), "signal " .. i .. " not on both Ps:\n" .. p:stdout() .. p:stderr())
    end
    assert.are.equal(0, p:wait(10), p:stderr())
    assert.truthy(p:stdout():find("P0 got 3", 1, true))
    assert.truthy(p:stdout():find("P1 got 3", 1, true))
  end)

  it("rejects bad names and arguments with a clear error", function()
    local go = require "go"
    local function err(fn, ...)
      local ok, e = pcall(fn, ...)
      assert.is_false(ok)
      return e
    end
    assert.truthy(err(go.signal, "SIGFOO"):find("unknown or reserved signal 'SIGFOO'", 1, true))
    assert.truthy(err(go.signal, "HUP"):find("'HUP'", 1, true))
    assert.truthy(err(go.signal, "SIGKILL"):find("SIGKILL", 1, true))
    assert.truthy(err(go.signal, "SIGURG"):find("SIGURG", 1, true))
    assert.truthy(err(go.signal):find("at least one signal name", 1, true))
    assert.truthy(err(go.signal, {}):find("string expected", 1, true))
    assert.truthy(err(go.signal_stop, 3):find("channel from go.signal expected", 1, true))
    -- a plain channel or a twice-stopped one: nothing to do
    go.signal_stop(go.chan())
    local ch = go.signal("SIGUSR2")
    go.signal_stop(ch)
    go.signal_stop(ch)
  end)
end)
