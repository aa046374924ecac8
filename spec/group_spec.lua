-- group_spec: go.group cancellation (runtime/group.c, bindings/lgroup.c):
-- cancelling wakes members parked in every kind of blocking operation with
-- "cancelled" within a bound, <close> variables run, the first error
-- cancels the rest, opts.timeout, nested groups, later operations raise at
-- once, misuse errors, no fd leak.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

-- what a cancelled member's operation must raise within: the design
-- target is a millisecond; 50 ms keeps the test robust on a loaded box
local BOUND = 0.050

-- seconds the kernel kept the calling thread runnable but off the CPU
-- (/proc/thread-self/schedstat): latencies are checked net of it, since
-- the machine running the suite is shared and that delay is the box's
local function rundelay()
  local f = assert(io.open("/proc/thread-self/schedstat"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("^%d+ (%d+)")) / 1e9
end

local function closer(flags, name)
  return setmetatable({}, { __close = function() flags[name] = true end })
end

-- start(grp, name, op): a member that marks `ready[name]`, runs op() with a
-- to-be-closed variable in scope and records the error and when it came
local function prober(grp, ready, out, closed)
  return function(name, op)
    grp:go(function()
      local guard <close> = closer(closed, name)
      ready[name] = true
      local ok, err = pcall(op)
      out[name] = { ok = ok, err = err, at = go.now(), rd = rundelay() }
      error(err, 0) -- the member ends with its cancellation
    end)
  end
end

-- the members and the canceller run on one P, hence one thread: the run
-- delay between the cancel (rd0) and each member's record is the box's
local function check_all(names, out, closed, t_cancel, rd0, want)
  local worst, worst_net = 0, 0
  for _, name in ipairs(names) do
    local r = out[name]
    assert.is_table(r, name .. " did not return")
    assert.is_false(r.ok, name .. " did not raise")
    assert.are.equal(want, r.err, name)
    assert.is_true(closed[name], name .. ": <close> did not run")
    local lat = r.at - t_cancel
    local net = lat - (r.rd - rd0)
    worst, worst_net = math.max(worst, lat), math.max(worst_net, net)
    if os.getenv("GROUP_SPEC_DEBUG") then io.stderr:write(("  %s %.3f ms\n"):format(name, lat * 1000)) end
    assert.is_true(net <= BOUND, string.format("%s raised %.1f ms after cancel (%.1f ms net of the run delay)",
      name, lat * 1000, net * 1000))
  end
  return worst, worst_net
end

local function report(what, worst, net)
  io.stderr:write(string.format("group_spec: %s: worst cancel latency %.3f ms (%.3f ms net of the kernel's run delay)\n",
    what, worst * 1000, (net or worst) * 1000))
end

describe("go.group cancellation", function()
  it("wakes members parked in read (and its lock queue), accept, dial, recv, send, shared recv/send, select, sleep, go.wait, grp:wait, p:wait", function()
    H.no_fd_leak(function()
      local grp = go.group()
      local ready, out, closed = {}, {}, {}
      local start = prober(grp, ready, out, closed)
      local c, s, ln = H.pair()
      local ln2 = assert(net.listen("127.0.0.1:0"))
      local full = assert(net.listen("127.0.0.1:0", { backlog = 0 }))
      local filler = assert(net.dial(full:addr(), 5)) -- fills the queue: next dial hangs
      local rch, sch = go.chan(), go.chan()
      local proc = assert(go.exec({ "sleep", "30" }, { stdin = "null", stdout = "null", stderr = "null" }))
      local idle = go(function() go.sleep(30) end)
      start("read", function() return c:read(1) end)
      start("read (lock queue)", function() return c:read(1) end) -- behind "read"
      start("shared recv", function() return go.sharedchan():recv() end)
      start("shared send", function() return go.sharedchan():send(1) end)
      start("child grp:wait", function()
        local sub = go.group()
        sub:go(function() pcall(go.sleep, 30) end)
        return sub:wait()
      end)
      start("accept", function() return ln2:accept() end)
      start("dial", function() return net.dial(full:addr()) end)
      start("recv", function() return rch:recv() end)
      start("send", function() return sch:send("v") end)
      start("select", function() return go.select({ { go.chan(), "recv" }, { go.chan(), "send", 1 } }) end)
      start("sleep", function() return go.sleep(30) end)
      start("go.wait", function() return go.wait(idle) end)
      start("go.wait(timeout)", function() return go.wait(idle, 30) end)
      local far = go.spawn("support.spawn_work:sleepy", 0.3) -- a portable goroutine
      start("go.wait(portable)", function() return go.wait(far) end)
      start("p:wait", function() return proc:wait() end)
      local names = { "read", "read (lock queue)", "shared recv", "shared send",
        "child grp:wait", "go.wait(portable)", "accept", "dial", "recv", "send", "select", "sleep",
        "go.wait", "go.wait(timeout)", "p:wait" }
      assert.is_true(H.wait_until(function()
        for _, n in ipairs(names) do if not ready[n] then return false end end
        return true
      end))
      go.sleep(0.02) -- dial and p:wait take a step before they park
      local t0, rd0 = go.now(), rundelay()
      grp:cancel("shutdown")
      local ok, err = grp:wait(5)
      assert.is_false(ok)
      assert.are.equal("cancelled: shutdown", err)
      report(#names .. " parked operations", check_all(names, out, closed, t0, rd0, "cancelled: shutdown"))
      -- what they waited on is intact and usable
      assert(s:write("x")); assert.are.equal("x", c:read(1))
      assert.is_true(proc:kill("SIGKILL")); assert.are.equal("signal: 9", select(2, proc:wait(5)))
      assert.are.same({ true, "slept" }, { go.wait(far, 5) }) -- the portable one is unharmed
      for _, x in ipairs({ c, s, ln, ln2, full, filler, proc.stdin, proc.stdout, proc.stderr }) do
        if x then x:close() end
      end
    end)
  end)

  it("wakes a member blocked in conn:read inside a table.sort comparator", function()
    do -- the hand-off makes an M (and its wake eventfd) once: before the fd count
      local c, s, ln = H.pair()
      go(function() go.sleep(0.03); s:write("w") end)
      table.sort({ 2, 1 }, function(a, b) c:read(1); return a < b end)
      c:close(); s:close(); ln:close()
    end
    H.no_fd_leak(function()
      local grp = go.group()
      local c, s, ln = H.pair()
      local ready, res, closed = false, nil, false
      grp:go(function()
        local guard <close> = setmetatable({}, { __close = function() closed = true end })
        ready = true
        local rd = rundelay() -- this thread is the one that blocks and wakes
        local ok, err = pcall(table.sort, { 2, 1 }, function(a, b)
          c:read(1)
          return a < b
        end)
        res = { ok = ok, err = err, at = go.now(), rd = rundelay() - rd }
      end)
      assert.is_true(H.wait_until(function() return ready end))
      go.sleep(0.02) -- let the comparator's M block in its poll
      local t0 = go.now()
      grp:cancel()
      assert.is_true(grp:wait(5))
      assert.is_false(res.ok)
      assert.are.equal("cancelled", res.err)
      assert.is_true(closed)
      local lat = res.at - t0
      local net = lat - res.rd
      report("comparator read", lat, net)
      assert.is_true(net <= BOUND, string.format("%.1f ms (%.1f ms net of the run delay)", lat * 1000, net * 1000))
      assert(s:write("y")); assert.are.equal("y", c:read(1))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("the first error cancels the rest; grp:wait returns it", function()
    local grp = go.group()
    local other
    grp:go(function()
      local ok, err = pcall(go.sleep, 10)
      other = err
    end)
    grp:go(function() go.sleep(0.01); error("boom", 0) end)
    local t0 = go.now()
    local ok, err = grp:wait(5)
    assert.is_false(ok)
    assert.are.equal("boom", err)
    assert.are.equal("cancelled", other)
    assert.is_true(grp:cancelled())
    assert.is_true(go.now() - t0 < 1)
    -- a table error object comes back as it was raised
    local g2 = go.group()
    local obj = { code = 7 }
    g2:go(function() error(obj) end)
    local ok2, e2 = g2:wait(5)
    assert.is_false(ok2)
    assert.are.equal(obj, e2)
  end)

  it("returns true once every member finished, and nil, 'timeout' before", function()
    local grp = go.group()
    local ch = go.chan()
    grp:go(function() ch:recv() end)
    grp:go(function() return 1 end)
    assert.is_true(grp:wait(0) == nil)
    local r, e = grp:wait(0.02)
    assert.is_nil(r); assert.are.equal("timeout", e)
    ch:send(1)
    assert.is_true(grp:wait(5))
    assert.is_true(grp:wait(), "a finished group waits no more")
    assert.is_true(go.group():wait(), "an empty group is finished")
    -- a member joining after that makes it wait again
    grp:go(function() go.sleep(0.01) end)
    assert.is_true(grp:wait(5))
  end)

  it("opts.timeout cancels the whole group with reason 'timeout'", function()
    local grp = go.group({ timeout = 0.05 })
    local t0 = go.now()
    grp:go(function() go.sleep(10) end)
    grp:go(function() go.chan():recv() end)
    local ok, err = grp:wait(5)
    local dt = go.now() - t0
    assert.is_false(ok)
    assert.are.equal("cancelled: timeout", err)
    assert.is_true(dt >= 0.045 and dt < 0.05 + BOUND + 0.2, "took " .. dt)
  end)

  it("goroutines started by a member join; a group made by a member is its child", function()
    local parent = go.group()
    local child, grand
    local errs = {}
    parent:go(function()
      go(function() -- joins parent
        local _, e = pcall(go.sleep, 10); errs.grand = e
      end)
      child = go.group()
      child:go(function() local _, e = pcall(go.sleep, 10); errs.child = e end)
      grand = go.group()
      assert.is_true(grand:wait())
      local _, e = pcall(go.sleep, 10); errs.member = e
    end)
    assert.is_true(H.wait_until(function() return child ~= nil end))
    -- cancelling a child leaves the parent alone
    local lone = nil
    parent:go(function()
      local sub = go.group()
      sub:go(function() local _, e = pcall(go.sleep, 10); lone = e end)
      sub:cancel("sub")
      assert.are.equal(true, sub:wait(5)) -- its member caught the error
      assert.is_false(parent:cancelled())
    end)
    assert.is_true(H.wait_until(function() return lone ~= nil end))
    assert.are.equal("cancelled: sub", lone)
    parent:cancel("all")
    assert.is_true(parent:wait(5))
    assert.is_true(child:wait(5))
    assert.is_true(child:cancelled() and grand:cancelled())
    assert.are.equal("cancelled: all", errs.grand)
    assert.are.equal("cancelled: all", errs.child)
    assert.are.equal("cancelled: all", errs.member)
    -- a group made by a member of a cancelled group is born cancelled
    local late
    parent:go(function() late = go.group() end)
    assert.is_true(parent:wait(5))
    assert.is_true(late:cancelled())
  end)

  it("a cancelled group's later operations raise at once", function()
    H.no_fd_leak(function()
      local grp = go.group()
      grp:cancel()
      local c, s, ln = H.pair()
      local ch = go.chan(1)
      local errs = {}
      grp:go(function()
        local function try(name, fn, ...)
          local t0 = go.now()
          local ok, e = pcall(fn, ...)
          errs[name] = { ok = ok, e = e, dt = go.now() - t0 }
        end
        try("sleep", go.sleep, 10)
        try("recv", ch.recv, ch)
        try("send", ch.send, ch, 1)
        try("select", go.select, { { ch, "recv" } })
        try("read", c.read, c, 1)
        try("write", c.write, c, "x")
        try("accept", ln.accept, ln)
        try("dial", net.dial, ln:addr())
        try("lookup", net.lookup, "localhost")
      end)
      assert.are.equal(true, grp:wait(5))
      for name, r in pairs(errs) do
        assert.is_false(r.ok, name)
        assert.are.equal("cancelled", r.e, name)
        assert.is_true(r.dt < BOUND, name)
      end
      assert.are.equal(9, (function() local n = 0; for _ in pairs(errs) do n = n + 1 end; return n end)())
      -- outside the group the same objects work
      ch:send(1); assert.are.equal(1, ch:recv())
      assert(s:write("z")); assert.are.equal("z", c:read(1))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("cancellation errors are not reported as goroutine failures", function()
    local r = H.run([[
      local go = require "go"
      local grp = go.group()
      grp:go(function() go.sleep(10) end)
      go.sleep(0.01)
      grp:cancel("bye")
      print(grp:wait())
      local g2 = go.group()
      g2:go(function() error("real failure", 0) end)
      print(g2:wait())
    ]])
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.are.equal("false\tcancelled: bye\nfalse\treal failure\n", r.stdout)
    assert.is_nil(r.stderr:find("cancelled"), r.stderr)
    assert.truthy(r.stderr:find("real failure", 1, true), r.stderr)
  end)

  it("raises clear errors on misuse", function()
    local grp = go.group()
    local function fails(pat, fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      assert.matches(pat, tostring(err))
    end
    fails("function expected", grp.go, grp, 42)
    fails("table expected", go.group, 5)
    fails("number expected", go.group, { timeout = "x" })
    fails("goluarun.group expected", grp.wait, {})
    fails("string expected", grp.cancel, grp, {})
    local ok, err
    grp:go(function() ok, err = pcall(grp.wait, grp) end)
    assert.is_true(grp:wait(5))
    assert.is_false(ok)
    assert.matches("a member cannot wait for its own group", err)
    assert.matches("go.group %(0 running%)", tostring(grp))
    grp:cancel()
    assert.matches("cancelled", tostring(grp))
  end)
end)

describe("go.group cancellation of a host-name lookup", function()
  it("wakes a member whose lookup waits for the worker pool; the job finishes alone", function()
    -- fill every worker thread (64) with a read on a silent pipe, so the
    -- lookup queues behind them: a parked lookup that cannot finish soon
    local pidfile = H.tmpname()
    local pipes, readers = {}, {}
    for i = 1, 64 do
      pipes[i] = assert(io.popen("echo $$ >> " .. pidfile .. "; exec sleep 30"))
      readers[i] = go(function() return pipes[i]:read("a") end)
    end
    assert.is_true(H.wait_until(function()
      local s = H.read_file(pidfile) or ""
      local n = select(2, s:gsub("\n", ""))
      return n == 64
    end))
    go.sleep(0.05) -- the 64 reads reach their workers
    local grp = go.group()
    local res
    grp:go(function()
      local ok, err = pcall(net.lookup, "localhost")
      res = { ok = ok, err = err, at = go.now(), rd = rundelay() }
    end)
    go.sleep(0.02)
    assert.is_nil(res, "the lookup should still be queued")
    local t0, rd0 = go.now(), rundelay()
    grp:cancel()
    assert.is_true(grp:wait(5))
    assert.is_false(res.ok)
    assert.are.equal("cancelled", res.err)
    local netlat = res.at - t0 - (res.rd - rd0)
    report("queued lookup", res.at - t0, netlat)
    assert.is_true(netlat <= BOUND)
    -- free the workers: the abandoned job then runs and frees itself
    local pids = {}
    for pid in H.read_file(pidfile):gmatch("%d+") do pids[#pids + 1] = pid end
    -- (go.exec, not os.execute: that one needs a worker too)
    local killer = assert(go.exec({ "kill", table.unpack(pids) }, { stdin = "null", stdout = "null", stderr = "null" }))
    assert.are.equal(0, killer:wait(10))
    for i = 1, 64 do
      go.wait(readers[i], 10)
      pipes[i]:close()
    end
    os.remove(pidfile)
    assert.is_table(net.lookup("localhost"))
  end)
end)

describe("go.group cancellation and C modules", function()
  it("a C module that knows nothing of it fails its wait through its own path, not stuck", function()
    local ok_mod, timerfd = pcall(require, "timerfd")
    assert(ok_mod, "the example module (modules/timerfd) is built with the tests")
    local t <close> = timerfd.ticker(5)
    local grp = go.group()
    local res
    grp:go(function() res = { t:wait() } end)
    go.sleep(0.02) -- parked on the ticker's fd
    grp:cancel()
    assert.is_true(grp:wait(5))
    assert.is_nil(res[1])
    assert.matches("[Cc]ancel", res[2])
    -- its state was released: another goroutine may wait (and time out)
    local n, err = t:wait(0.01)
    assert.is_nil(n); assert.are.equal("timeout", err)
    -- a cancelled member's later wait fails at once the same way
    local later
    grp:go(function() later = { t:wait() } end)
    assert.is_true(grp:wait(5))
    assert.is_nil(later[1]); assert.matches("[Cc]ancel", later[2])
  end)
end)
