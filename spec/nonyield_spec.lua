-- nonyield_spec: blocking operations where Lua cannot yield (a table.sort
-- comparator, a string.gsub callback, metamethods called from C) park the
-- goroutine on its M (runtime/sched.c's park_on_m) while the VM's other
-- goroutines run: every operation in every context (spec/nonyield_work.lua,
-- -p 1 and -p 2), timeouts, go.group cancellation with <close> variables,
-- no lost value, a 1,000-pair stress, shared channels across Ps, and how
-- the process ends (deadlock report, os.exit, main returning) with a
-- goroutine parked on its M.
local go = require "go"
local H = require "support.helpers"

-- what a cancelled member's operation must raise within (the contract's
-- millisecond; 50 ms keeps it robust on a loaded box and under sanitizers)
local BOUND = 0.050

local function sorted(body) -- body() once, inside a comparator
  local done = false
  table.sort({ 2, 1 }, function(a, b)
    if not done then done = true; body() end
    return a < b
  end)
end

describe("blocking where Lua cannot yield", function()
  for _, np in ipairs({ "1", "2" }) do
    it("every operation in every context works while the VM runs on (-p " .. np .. ")", function()
      local r = H.run(H.root() .. "/spec/nonyield_work.lua", {}, { file = true, flags = { "-p", np }, timeout = 60 })
      assert.are.equal(0, r.status, H.describe_run(r))
      local n = select(2, r.stdout:gsub("\nok\t", "\n")) + (r.stdout:match("^ok\t") and 1 or 0)
      assert.are.equal(60, n, r.stdout)
      assert.matches("done\t60\n$", r.stdout)
    end)
  end

  it("a receiver blocked in a comparator gets every value, in order", function()
    for _, cap in ipairs({ 0, 3 }) do
      local ch, got = go.chan(cap), {}
      go(function() for i = 1, 50 do ch:send(i) end; ch:close() end)
      sorted(function()
        for v in function() return (ch:recv()) end do got[#got + 1] = v end
      end)
      assert.are.equal(50, #got, "cap " .. cap)
      for i = 1, 50 do assert.are.equal(i, got[i]) end
    end
  end)

  it("a reader in a comparator waits its turn for a conn's read lock, then reads", function()
    local c, s, l = H.pair()
    local started = false
    local first = go(function() started = true; return c:read(1) end)
    assert.is_true(H.wait_until(function() return started end)) -- first is parked in its read
    local w = go(function()
      assert(s:write("a"))
      assert(go.wait(first, 5))
      assert(s:write("b"))
    end)
    local got
    sorted(function() got = c:read(1) end) -- queues behind first, on its M
    assert.are.equal("b", got)
    assert.are.same({ true, "a" }, { go.wait(first, 5) })
    assert.is_true((go.wait(w, 5)))
    c:close(); s:close(); l:close()
  end)

  it("timeouts: select, go.wait and grp:wait return \"timeout\" inside a gsub callback", function()
    local ch, grp = go.chan(), go.group()
    local h = go(function() ch:recv() end)
    grp:go(function() ch:recv() end)
    local r = {}
    string.gsub("x", "x", function()
      r.sel = { go.select({ { ch, "recv" } }, 0.01) }
      r.wait = { go.wait(h, 0.01) }
      r.grp = { grp:wait(0.01) }
    end)
    assert.are.same({ nil, "timeout" }, r.sel)
    assert.are.same({ nil, "timeout" }, r.wait)
    assert.is_false(r.grp[1] == true)
    H.assert_err(r.grp[2], "timeout")
    ch:close()
    assert.is_true((go.wait(h, 5)))
    assert.is_true(grp:wait(5))
  end)

  it("cancelling a group raises \"cancelled\" promptly in members parked in comparators; <close> runs", function()
    local ch, other = go.chan(), go.group()
    other:go(function() ch:recv() end)
    local blocker = go(function() ch:recv() end)
    local ops = {
      recv = function() go.chan():recv() end,
      send = function() go.chan():send(1) end,
      sleep = function() go.sleep(30) end,
      select = function() go.select({ { go.chan(), "recv" }, { go.chan(), "send", 1 } }) end,
      wait = function() go.wait(blocker) end,
      grp_wait = function() other:wait() end,
    }
    local grp = go.group()
    local ready, out, closed = 0, {}, {}
    for name, op in pairs(ops) do
      grp:go(function()
        local guard <close> = setmetatable({}, { __close = function() closed[name] = true end })
        -- no yield between the count and the park: once the canceller (same
        -- VM) sees all six, all six are parked on their Ms
        local ok, err = pcall(sorted, function() ready = ready + 1; op() end)
        out[name] = { ok = ok, err = err, at = go.now() }
        error(err, 0)
      end)
    end
    assert.is_true(H.wait_until(function() return ready == 6 end))
    local t0 = go.now()
    grp:cancel()
    local ok, err = grp:wait(5)
    assert.is_false(ok)
    assert.are.equal("cancelled", err)
    for name in pairs(ops) do
      local r = out[name]
      assert.is_table(r, name)
      assert.is_false(r.ok, name)
      assert.are.equal("cancelled", r.err, name)
      assert.is_true(closed[name], name .. ": <close> did not run")
      assert.is_true(r.at - t0 <= BOUND, ("%s raised %.1f ms after the cancel"):format(name, (r.at - t0) * 1000))
      if os.getenv("NONYIELD_SPEC_DEBUG") then
        io.stderr:write(("  cancelled %s: %.3f ms\n"):format(name, (r.at - t0) * 1000))
      end
    end
    ch:close()
    assert.is_true((go.wait(blocker, 5)))
    assert.is_true(other:wait(5))
  end)

  it("1,000 send/recv pairs with one side in a gsub callback, both ways, in a few seconds", function()
    local N = 1000
    for _, side in ipairs({ "recv", "send" }) do
      local ch, sum = go.chan(), 0
      local t0 = go.now()
      local h
      if side == "recv" then
        h = go(function() for i = 1, N do ch:send(i) end end)
        string.gsub(string.rep("x", N), "x", function() sum = sum + ch:recv() end)
      else
        h = go(function() for _ = 1, N do sum = sum + ch:recv() end end)
        local i = 0
        string.gsub(string.rep("x", N), "x", function() i = i + 1; ch:send(i) end)
      end
      assert.is_true((go.wait(h, 10)))
      local dt = go.now() - t0
      assert.are.equal(N * (N + 1) // 2, sum, side)
      assert.is_true(dt < 5, ("%s side: %.2f s"):format(side, dt))
      if os.getenv("NONYIELD_SPEC_DEBUG") then
        io.stderr:write(("  %s in gsub: %.1f us per pair\n"):format(side, dt / N * 1e6))
      end
    end
  end)

  it("a shared channel fed from another P wakes a receiver in a comparator (-p 2)", function()
    local r = H.run([[
      local go = require "go"
      local ch = go.sharedchan()
      local N = 300
      local h = go.spawn("support.schan_work:produce", ch, 1, N)
      local sum = 0
      table.sort({ 2, 1 }, function(a, b)
        if sum == 0 then for _ = 1, N do sum = sum + ch:recv() end end
        return a < b
      end)
      assert(go.wait(h, 10))
      print(sum)
    ]], {}, { flags = { "-p", "2" }, env = { LUA_PATH = H.root() .. "/spec/?.lua;;" }, timeout = 60 })
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.are.equal("45150\n", r.stdout)
  end)

  it("a goroutine parked on its M is in the deadlock report", function()
    local r = H.run([[
      local ch = require("go").chan()
      table.sort({ 2, 1 }, function(a, b) ch:recv(); return a < b end)
    ]], {}, { timeout = 20 })
    assert.are.equal(2, r.status, H.describe_run(r))
    assert.matches("all goroutines are asleep %- deadlock", r.stderr)
    assert.matches("goroutine 1 %[chan receive", r.stderr)
    assert.truthy(r.stderr:find("in function 'table.sort'", 1, true), r.stderr)
  end)

  it("os.exit from another goroutine ends the process while main is parked on its M", function()
    local r = H.run([[
      local go = require "go"
      go(function() go.sleep(0.02); os.exit(3) end)
      table.sort({ 2, 1 }, function(a, b) go.chan():recv(); return a < b end)
    ]], {}, { timeout = 20 })
    assert.are.equal(3, r.status, H.describe_run(r))
  end)

  it("main returning ends the process while another goroutine is parked on its M", function()
    local r = H.run([[
      local go = require "go"
      local entered = false
      go(function()
        table.sort({ 2, 1 }, function(a, b) entered = true; go.chan():recv(); return a < b end)
      end)
      while not entered do go.sleep(0.001) end
      print("main done")
    ]], {}, { timeout = 20 })
    assert.are.equal(0, r.status, H.describe_run(r))
    assert.are.equal("main done\n", r.stdout)
  end)

  it("a __gc finalizer still raises; outside any goroutine nothing changed", function()
    local err
    setmetatable({}, { __gc = function()
      err = select(2, pcall(go.sleep, 0.001))
    end })
    collectgarbage(); collectgarbage()
    assert.matches("cannot block inside a __gc finalizer", err)
  end)
end)
