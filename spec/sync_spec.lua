-- sync_spec: lua/sync.lua (waitgroup and mutex on local channels).
local go = require "go"
local sync = require "sync"
local H = require "support.helpers"

describe("sync.waitgroup", function()
  it("wait returns true once every done has been called", function()
    local wg = sync.waitgroup()
    local finished = 0
    wg:add(3)
    for i = 1, 3 do
      go(function()
        go.sleep(0.01 * i)
        finished = finished + 1
        wg:done()
      end)
    end
    local dt, ok = H.timed(wg.wait, wg)
    assert.is_true(ok)
    assert.are.equal(3, finished)
    assert.is_true(dt >= 0.025 and dt < 1.0, "took " .. dt)
  end)

  it("add() defaults to 1 and add(n) may be negative", function()
    local wg = sync.waitgroup()
    wg:add()
    wg:add(2)
    wg:add(-2)
    local g = H.must_not_return(0.03, function() return wg:wait() end)
    wg:done()
    assert.are.same({ true, true }, { go.wait(g, 1) })
  end)

  it("wait on a zero counter returns at once", function()
    local wg = sync.waitgroup()
    local dt, ok = H.timed(wg.wait, wg)
    assert.is_true(ok)
    assert.is_true(dt < 0.5)
    assert.is_true(wg:wait(0))
  end)

  it("wait(timeout) gives nil, 'timeout'", function()
    local wg = sync.waitgroup()
    wg:add(1)
    local dt, ok, err = H.timed(wg.wait, wg, 0.1)
    assert.is_nil(ok)
    assert.are.equal("timeout", err)
    assert.is_true(dt >= 0.05 and dt < 1.0, "took " .. dt)
    local ok0, err0 = wg:wait(0)
    assert.is_nil(ok0); assert.are.equal("timeout", err0)
    wg:done()
    assert.is_true(wg:wait(0.1))
  end)

  it("wakes every waiter", function()
    local wg = sync.waitgroup()
    wg:add(1)
    local gs = {}
    for i = 1, 5 do gs[i] = go(function() return wg:wait() end) end
    go.sleep(0.01)
    wg:done()
    for i = 1, 5 do
      assert.are.same({ true, true }, { go.wait(gs[i], 1) })
    end
  end)

  it("can be reused after reaching zero", function()
    local wg = sync.waitgroup()
    for round = 1, 3 do
      wg:add(2)
      local g = H.must_not_return(0.02, function() return wg:wait() end)
      go(function() wg:done() end)
      go(function() go.sleep(0.01); wg:done() end)
      assert.are.same({ true, true }, { go.wait(g, 1) }, "round " .. round)
      assert.is_true(wg:wait(0))
    end
  end)

  it("done below zero raises", function()
    local wg = sync.waitgroup()
    assert.error_matches(function() wg:done() end, "negative")
    wg:add(1)
    wg:done()
    assert.error_matches(function() wg:done() end, "negative")
    assert.error_matches(function() wg:add(-1) end, "negative")
    -- still usable
    assert.is_true(wg:wait(0))
  end)

  it("bad arguments raise", function()
    local wg = sync.waitgroup()
    assert.has_error(function() wg:add(1.5) end)
    assert.has_error(function() wg:add("x") end)
    assert.has_error(function() wg:wait("soon") end)
  end)

  it("tracks many goroutines", function()
    local wg = sync.waitgroup()
    local n, count = 500, 0
    for _ = 1, n do
      wg:add(1)
      go(function()
        go.yield()
        count = count + 1
        wg:done()
      end)
    end
    assert.is_true(wg:wait(5))
    assert.are.equal(n, count)
  end)
end)

describe("sync.mutex", function()
  it("lock / unlock", function()
    local mu = sync.mutex()
    mu:lock()
    mu:unlock()
    mu:lock()
    mu:unlock()
  end)

  it("a second lock blocks until unlock", function()
    local mu = sync.mutex()
    mu:lock()
    local g = H.must_not_return(0.05, function() mu:lock(); return "got it" end)
    mu:unlock()
    assert.are.same({ true, "got it" }, { go.wait(g, 1) })
    mu:unlock()
  end)

  it("unlock of an unlocked mutex raises", function()
    local mu = sync.mutex()
    assert.error_matches(function() mu:unlock() end, "unlock")
    mu:lock()
    mu:unlock()
    assert.error_matches(function() mu:unlock() end, "unlock")
  end)

  it("trylock takes a free mutex only", function()
    local mu = sync.mutex()
    assert.is_true(mu:trylock())
    assert.is_false(mu:trylock())
    mu:unlock()
    assert.is_true(mu:trylock())
    mu:unlock()
  end)

  it("gives mutual exclusion across parks", function()
    local mu = sync.mutex()
    local wg = sync.waitgroup()
    local counter, inside, max_inside = 0, 0, 0
    for _ = 1, 10 do
      wg:add(1)
      go(function()
        for _ = 1, 20 do
          mu:lock()
          inside = inside + 1
          if inside > max_inside then max_inside = inside end
          local v = counter
          go.yield()            -- others run while we hold the lock
          counter = v + 1
          inside = inside - 1
          mu:unlock()
        end
        wg:done()
      end)
    end
    assert.is_true(wg:wait(10))
    assert.are.equal(200, counter)
    assert.are.equal(1, max_inside)
  end)

  it("wakes blocked lockers one at a time", function()
    local mu = sync.mutex()
    mu:lock()
    local order = {}
    local gs = {}
    for i = 1, 3 do
      gs[i] = go(function()
        mu:lock()
        order[#order + 1] = i
        go.sleep(0.005)
        mu:unlock()
      end)
    end
    go.sleep(0.01)
    mu:unlock()
    for i = 1, 3 do assert.is_true((go.wait(gs[i], 2))) end
    assert.are.equal(3, #order)
    table.sort(order)
    assert.are.same({ 1, 2, 3 }, order)
  end)
end)
