-- process_spec: the goluarun command line and process life (runtime/HACKING.md
-- "Progress, exit and deadlock"), tested through subprocesses (H.run / H.spawn).
local go = require "go"
local net = require "net"
local H = require "support.helpers"

local function ok_run(r)
  return H.describe_run(r)
end

describe("command line", function()
  it("-e runs a statement", function()
    local r = H.run(nil, nil, { flags = { "-e", "print(1 + 1)" } })
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("2\n", r.stdout)
  end)

  it("-l mod requires a module into a global", function()
    local dir = H.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.shquote(dir)))
    H.write_file(dir .. "/glrtestmod.lua",
      "io.stdout:write('loading\\n')\nreturn { answer = 42 }\n")
    local r = H.run(nil, nil, {
      flags = { "-l", "glrtestmod", "-e", "print(glrtestmod.answer)" },
      env = { LUA_PATH = dir .. "/?.lua;" .. (os.getenv("LUA_PATH") or ";;") },
    })
    os.remove(dir .. "/glrtestmod.lua"); os.remove(dir)
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("loading\n42\n", r.stdout)
  end)

  it("-v prints a version", function()
    local r = H.run(nil, nil, { flags = { "-v" } })
    assert.are.equal(0, r.status, ok_run(r))
    local out = r.stdout .. r.stderr
    assert.truthy(out:find("Lua 5.4", 1, true) or out:lower():find("goluarun", 1, true), out)
  end)

  it("passes the arg table and ... to the script", function()
    local script = H.write_file(H.tmpname(".lua"), [[
      io.stdout:write(arg[0], "\n", #arg, "\n", arg[1], "\n", arg[2], "\n")
      io.stdout:write(select("#", ...), "|", table.concat({ ... }, "|"), "\n")
      io.stdout:write(tostring(arg[-1] ~= nil), "\n")
    ]])
    local r = H.run(script, { "a", "b c" })
    os.remove(script)
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal(script .. "\n2\na\nb c\n2|a|b c\ntrue\n", r.stdout)
  end)

  it("skips a #! first line", function()
    local r = H.run("#!/usr/bin/env goluarun\nprint('shebang ok')\n")
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("shebang ok\n", r.stdout)
  end)

  it("reads the script from stdin with '-'", function()
    local r = H.run("-", { "x", "y" }, {
      stdin = "print('from stdin', ...)\nprint(go.id())\n" })
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("from stdin\tx\ty\n1\n", r.stdout)
  end)

  it("reads the script from stdin with no script argument", function()
    local r = H.run(nil, nil, { stdin = "print('no script arg')\n" })
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("no script arg\n", r.stdout)
  end)

  it("-p 4 gives 4 Ps", function()
    local r = H.run(nil, nil, { flags = { "-p", "4", "-e", "print(go.nprocs())" },
      unsetenv = { "GOLUA_MAXPROCS" } })
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("4\n", r.stdout)
  end)

  it("GOLUA_MAXPROCS=3 gives 3 Ps", function()
    local r = H.run(nil, nil, { flags = { "-e", "print(go.nprocs())" },
      env = { GOLUA_MAXPROCS = "3" } })
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("3\n", r.stdout)
  end)

  it("go and net are there without require", function()
    local r = H.run([[
      assert(type(go) == "table" or type(go) == "userdata")
      assert(require("go") == go)
      local net = require "net"
      assert(net.listen)
      print("ok")
    ]])
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("ok\n", r.stdout)
  end)
end)

describe("process exit", function()
  it("waits for a goroutine that is still sleeping after main returns", function()
    local r = H.run([[
      go(function() go.sleep(0.2); print("goroutine done") end)
      print("main done")
    ]])
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("main done\ngoroutine done\n", r.stdout)
  end)

  it("exits 0 when main returns and the rest are blocked forever on channels", function()
    local t0 = go.now()
    local r = H.run([[
      local ch = go.chan()
      for _ = 1, 3 do go(function() ch:recv() end) end
      go(function() go.select({ { go.chan(), "recv" } }) end)
      go(function() go.chan():send(1) end)
      go.sleep(0.01)
      print("main done")
    ]], nil, { timeout = 10 })
    assert.are.equal(0, r.status, ok_run(r))
    assert.are.equal("main done\n", r.stdout)
    assert.is_nil(r.stderr:find("deadlock", 1, true), r.stderr)
    assert.is_true(go.now() - t0 < 8)
  end)

  it("main blocked forever on a channel: deadlock, status 2, every goroutine reported", function()
    local r = H.run([[
      local ch = go.chan()
      local ids = {}
      for _ = 1, 2 do
        go(function() io.stdout:write(go.id(), "\n"); io.stdout:flush(); ch:recv() end)
      end
      go.sleep(0.01)
      local function wait_forever() return ch:recv() end
      wait_forever()
      print("not reached")
    ]], nil, { timeout = 10 })
    assert.are.equal(2, r.status, ok_run(r))
    assert.truthy(r.stderr:find("fatal error: all goroutines are asleep - deadlock!", 1, true), r.stderr)
    assert.truthy(r.stderr:find("goroutine 1 [", 1, true), r.stderr)
    assert.truthy(r.stderr:find("wait_forever", 1, true)
      or r.stderr:match("%.lua:%d+"), "no traceback:\n" .. r.stderr)
    for id in r.stdout:gmatch("%d+") do
      assert.truthy(r.stderr:find("goroutine " .. id .. " [", 1, true),
        "goroutine " .. id .. " not reported:\n" .. r.stderr)
    end
    assert.is_nil(r.stdout:find("not reached", 1, true))
  end)

  it("main blocked on go.wait of a goroutine blocked on a channel: deadlock", function()
    local r = H.run([[
      local g = go(function() go.chan():recv() end)
      go.wait(g)
    ]], nil, { timeout = 10 })
    assert.are.equal(2, r.status, ok_run(r))
    assert.truthy(r.stderr:find("all goroutines are asleep - deadlock!", 1, true), r.stderr)
  end)

  describe("is not a deadlock (still running after 1 s)", function()
    -- a P checks for deadlock before it blocks: once every thread sleeps,
    -- a deadlock would already have been reported (and the process gone)
    local function still_running(src)
      local p = H.spawn(src .. "\n", nil, { timeout = 60 })
      finally(function() p:cleanup() end)
      assert.is_true(H.wait_all_asleep(p.pid, 10), "process never settled")
      assert.is_true(p:alive(), "process ended:\n" .. p:stderr())
      assert.is_nil(p:stderr():find("deadlock", 1, true), p:stderr())
      p:kill("KILL")
    end

    it("a goroutine parked in accept", function()
      still_running([[
        local net = require "net"
        local ln = assert(net.listen("127.0.0.1:0"))
        go(function() ln:accept() end)
        go.chan():recv()
      ]])
    end)

    it("a goroutine parked in read", function()
      still_running([[
        local net = require "net"
        local ln = assert(net.listen("127.0.0.1:0"))
        local c = assert(net.dial(ln:addr()))
        local s = assert(ln:accept())
        go(function() s:read() end)
        go.chan():recv()
      ]])
    end)

    it("a goroutine in a long sleep", function()
      still_running([[
        go(function() go.sleep(3600) end)
        go.chan():recv()
      ]])
    end)

    it("main in a long sleep", function()
      still_running([[ go.sleep(3600) ]])
    end)

    it("main parked in accept", function()
      still_running([[
        local net = require "net"
        local ln = assert(net.listen("127.0.0.1:0"))
        ln:accept()
      ]])
    end)
  end)

  it("os.exit(3) gives status 3", function()
    local r = H.run([[ io.stdout:write("x"); os.exit(3) ]])
    assert.are.equal(3, r.status, ok_run(r))
    assert.are.equal("x", r.stdout)
  end)

  it("os.exit(true) gives 0 and os.exit(false) gives 1", function()
    local r = H.run([[ go(function() go.sleep(3600) end); os.exit(true) ]])
    assert.are.equal(0, r.status, ok_run(r))
    r = H.run([[ os.exit(false) ]])
    assert.are.equal(1, r.status, ok_run(r))
  end)

  it("an error in main: status 1, the message and a traceback on stderr", function()
    local r = H.run([[
      local function inner() error("main went wrong 5678") end
      inner()
    ]])
    assert.are.equal(1, r.status, ok_run(r))
    assert.truthy(r.stderr:find("main went wrong 5678", 1, true), r.stderr)
    assert.truthy(r.stderr:find("stack traceback", 1, true), r.stderr)
  end)

  it("an error in another goroutine is printed with its id; the process goes on", function()
    local r = H.run([[
      go(function()
        io.stdout:write(go.id(), "\n"); io.stdout:flush()
        error("goroutine went wrong 9012")
      end)
      go.sleep(0.05)
      print("main still here")
    ]])
    assert.are.equal(0, r.status, ok_run(r))
    local id = r.stdout:match("^(%d+)\n")
    assert.truthy(id, ok_run(r))
    assert.truthy(r.stdout:find("main still here", 1, true), ok_run(r))
    assert.truthy(("\n" .. r.stderr):find("\ngoroutine " .. id, 1, true), r.stderr)
    assert.truthy(r.stderr:find("goroutine went wrong 9012", 1, true), r.stderr)
    assert.truthy(r.stderr:find("traceback", 1, true), r.stderr)
  end)

  it("a goroutine that runs out of memory is reported (with no memory to spare); the process goes on", function()
    -- testutil.alloc_limit makes this VM's allocations fail past a budget;
    -- Lua raises "not enough memory" without calling the message handler
    local r = H.run([[
      local tu = require "testutil"
      tu.alloc_limit(8 * 1024 * 1024)
      local g = go(function()
        io.stdout:write(go.id(), "\n"); io.stdout:flush()
        local t = {}
        while true do t[#t + 1] = ("x"):rep(1000) .. #t end
      end)
      print("wait:", go.wait(g))
      collectgarbage()
      print("main still here")
    ]])
    assert.are.equal(0, r.status, ok_run(r))
    local id = r.stdout:match("^(%d+)\n")
    assert.truthy(id, ok_run(r))
    assert.truthy(r.stdout:find("wait:\tfalse\tnot enough memory", 1, true), ok_run(r))
    assert.truthy(r.stdout:find("main still here", 1, true), ok_run(r))
    assert.truthy(("\n" .. r.stderr):find("\ngoroutine " .. id .. ": not enough memory", 1, true), r.stderr)
  end)
end)

describe("signals", function()
  it("SIGTERM: listeners stop, the running handler finishes, the process exits", function()
    local p = H.spawn([[
      local net = require "net"
      local ln = assert(net.serve("127.0.0.1:0", function(conn)
        local line = conn:read("l")
        io.stdout:write("got ", tostring(line), "\n"); io.stdout:flush()
        go.sleep(0.3)
        conn:write("done ", tostring(line), "\n")
        conn:close()
      end))
      io.stdout:write("listening on ", ln:addr(), "\n"); io.stdout:flush()
    ]], nil, { timeout = 60 })
    finally(function() p:cleanup() end)
    local addr = p:wait_output("listening on (%S+)", 10)
    assert.truthy(addr, "server did not start:\n" .. p:stderr())
    local c = assert(net.dial(addr, 5))
    assert(c:write("req\n"))
    assert.truthy(p:wait_output("(got req)", 5), "request not seen")
    local t0 = go.now()
    p:kill("TERM")
    c:settimeout(5)
    local line, err = c:read("l")
    assert.are.equal("done req", line, "handler did not finish: " .. tostring(err))
    c:close()
    local st = p:wait(15)
    assert.truthy(st, "process still running 15 s after SIGTERM")
    assert.is_true(go.now() - t0 < 15)
    -- the listener is gone
    local c2 = net.dial(addr, 1)
    assert.is_nil(c2)
  end)

  it("SIGQUIT prints every goroutine with its wait reason and the process goes on", function()
    local p = H.spawn([[
      local ch = go.chan()
      go(function() ch:recv() end)
      go(function() go.sleep(100) end)
      io.stdout:write("ready\n"); io.stdout:flush()
      while true do go.sleep(0.02) end
    ]], nil, { timeout = 60 })
    finally(function() p:cleanup() end)
    assert.truthy(p:wait_output("(ready)", 10), "did not start:\n" .. p:stderr())
    p:kill("QUIT")
    assert.is_true(H.wait_until(function()
      return p:stderr():find("chan receive", 1, true) ~= nil
    end, 10), "no dump:\n" .. p:stderr())
    local e = p:stderr()
    assert.truthy(e:find("[sleep", 1, true), e)
    assert.truthy(e:find("stack traceback", 1, true), e)
    assert.is_true(p:alive(), "SIGQUIT killed the process")
    p:kill("KILL")
    p:wait(10)
  end)

  it("GOLUA_DEBUG=schedtrace=MS prints a scheduler summary line per period", function()
    local r = H.run([[
      for i = 1, 20 do go(function() go.sleep(0.25) end) end
      go.sleep(0.35)
    ]], {}, { timeout = 10, env = { GOLUA_DEBUG = "schedtrace=100" } })
    assert.are.equal(0, r.status, H.describe_run(r))
    local n = 0
    for _ in r.stderr:gmatch("SCHED %d+ms: procs=%d+ idleprocs=%d+ threads=%d+ goroutines=%d+") do
      n = n + 1
    end
    assert.is_true(n >= 2, r.stderr)
    assert.truthy(r.stderr:find("goroutines=21", 1, true), r.stderr)
  end)

  it("SIGPIPE is ignored: writing to a closed peer gives an error", function()
    local r = H.run([[
      local net = require "net"
      local ln = assert(net.listen("127.0.0.1:0"))
      local c = assert(net.dial(ln:addr()))
      local s = assert(ln:accept())
      s:close()
      local err
      for _ = 1, 1000 do
        local n, e = c:write(("x"):rep(65536))
        if not n then err = e break end
        go.sleep(0.001)
      end
      print("write error:", err)
      -- a pipe whose reader is gone
      local p = io.popen("exec true", "w")
      go.sleep(0.1)
      local ok = true
      for _ = 1, 100 do
        if not p:write(("y"):rep(65536)) then ok = false break end
        if not p:flush() then ok = false break end
      end
      pcall(p.close, p)
      print("pipe write failed:", not ok)
      print("alive")
    ]], nil, { timeout = 20 })
    assert.are.equal(0, r.status, ok_run(r))
    assert.truthy(r.stdout:find("alive", 1, true), ok_run(r))
    assert.truthy(r.stdout:match("write error:%s+broken pipe")
      or r.stdout:match("write error:%s+connection reset"), ok_run(r))
  end)
end)

describe("idle CPU", function()
  it("an idle server with -p 4 uses about 0 CPU", function()
    local p = H.spawn([[
      local net = require "net"
      local ln = assert(net.serve("127.0.0.1:0", function(conn) conn:close() end))
      go(function() while true do go.sleep(0.5) end end)
      io.stdout:write("listening on ", ln:addr(), "\n"); io.stdout:flush()
    ]], nil, { flags = { "-p", "4" }, timeout = 60 })
    finally(function() p:cleanup() end)
    local addr = p:wait_output("listening on (%S+)", 10)
    assert.truthy(addr, "server did not start:\n" .. p:stderr())
    assert.is_true(H.wait_all_asleep(p.pid, 10), "server never settled")
    local cpu0 = H.proc_cpu_ns(p.pid)
    local t0 = go.now()
    go.sleep(0.3) -- the measurement window (ns resolution from schedstat)
    local cpu1 = H.proc_cpu_ns(p.pid)
    local dt = go.now() - t0
    assert.truthy(cpu0 and cpu1, "process gone")
    local frac = (cpu1 - cpu0) / dt
    assert.is_true(frac < 0.05, string.format("idle CPU %.1f%% of a core", frac * 100))
  end)
end)
