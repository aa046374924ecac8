-- GOLUA_MEMLIMIT (runtime/memlimit.c): the bytes every VM's allocator
-- holds are counted for the process; past the limit an allocation of the
-- goroutine that asked fails with "not enough memory" and the rest of the
-- process goes on; near it every VM collects its garbage.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

local LIMIT = "64MiB"

local function ok_run(r) return H.describe_run(r) end

describe("GOLUA_MEMLIMIT", function()
  it("a goroutine allocating without bound gets 'not enough memory'; another keeps ticking; main ends normally", function()
    local r = H.run([[
      local ticks, done = 0, false
      go(function() while not done do ticks = ticks + 1; go.sleep(0.005) end end)
      local g = go(function()
        local t = {}
        while true do t[#t + 1] = ("x"):rep(1000) .. #t end
      end)
      local before = ticks
      print("wait:", go.wait(g))
      collectgarbage()
      local t0 = ticks
      go.sleep(0.05)
      print("ticking:", before >= 0 and ticks > t0)
      local s = go.stats()
      print("memory below limit:", s.memory < s.memlimit)
      print("main done")
      done = true
    ]], nil, { env = { GOLUA_MEMLIMIT = LIMIT } })
    assert.are.equal(0, r.status, ok_run(r))
    assert.truthy(r.stdout:find("wait:\tfalse\tnot enough memory", 1, true), ok_run(r))
    assert.truthy(r.stdout:find("ticking:\ttrue", 1, true), ok_run(r))
    assert.truthy(r.stdout:find("memory below limit:\ttrue", 1, true), ok_run(r))
    assert.truthy(r.stdout:find("main done", 1, true), ok_run(r))
    assert.truthy(r.stderr:find("not enough memory", 1, true), r.stderr)
  end)

  it("without it there is no limit: the same goroutine grows past 64 MiB", function()
    local r = H.run([[
      local s0 = go.stats()
      print("limit:", s0.memlimit)
      local g = go(function()
        local t = {}
        for i = 1, 100 do t[i] = ("x"):rep(1024 * 1024 - 64) .. i end
        return go.stats().memory
      end)
      local ok, mem = go.wait(g)
      print("grew:", ok, mem > 100 * 1024 * 1024)
    ]], nil, { unsetenv = { "GOLUA_MEMLIMIT" } })
    assert.are.equal(0, r.status, ok_run(r))
    assert.truthy(r.stdout:find("limit:\t0\n", 1, true), ok_run(r))
    assert.truthy(r.stdout:find("grew:\ttrue\ttrue", 1, true), ok_run(r))
  end)

  it("a server keeps serving other clients while one request blows the limit", function()
    local p = H.spawn([[
      local net = require "net"
      local ln = assert(net.serve("127.0.0.1:0", function(conn)
        while true do
          local line = conn:read("l")
          if not line then break end
          if line == "grow" then
            local ok, err = pcall(function()
              local t = {}
              while true do t[#t + 1] = ("y"):rep(4096) .. #t; if #t % 64 == 0 then go.yield() end end
            end)
            conn:write("grow: ", tostring(err), "\n")
          else
            conn:write("echo ", line, "\n")
          end
        end
        conn:close()
      end))
      io.stdout:write("listening on ", ln:addr(), "\n"); io.stdout:flush()
    ]], nil, { env = { GOLUA_MEMLIMIT = LIMIT }, timeout = 60 })
    finally(function() p:cleanup() end)
    local addr = p:wait_output("listening on (%S+)", 10)
    assert.truthy(addr, "server did not start:\n" .. p:stderr())
    local a = assert(net.dial(addr, 5))
    local b = assert(net.dial(addr, 5))
    a:settimeout(30); b:settimeout(10)
    assert(a:write("grow\n"))
    -- b is answered while a's request grows to the limit, and after
    local answered, grown = 0, nil
    local g = go(function() grown = a:read("l") end)
    while grown == nil and answered < 100000 do
      assert(b:write("hi " .. answered .. "\n"))
      assert.are.equal("echo hi " .. answered, b:read("l"))
      answered = answered + 1
    end
    go.wait(g)
    assert.are.equal("grow: not enough memory", grown)
    assert.truthy(answered > 0)
    for i = 1, 5 do
      assert(b:write("after " .. i .. "\n"))
      assert.are.equal("echo after " .. i, b:read("l"))
    end
    -- the same conn serves again once its request failed
    assert(a:write("again\n"))
    assert.are.equal("echo again", a:read("l"))
    a:close(); b:close()
    assert.truthy(p:alive(), p:stderr())
  end)

  it("near the limit, every VM collects: garbage held by a busy P makes room for another's allocation", function()
    -- P1 makes 40 MiB of garbage, then stays busy (never idle, so only the
    -- soft-limit request collects it); P0 then grows to 40 MiB live: the
    -- two only fit under 64 MiB if P1 collected when asked
    local dir = H.tmpname("-mod")
    os.execute("mkdir -p " .. H.shquote(dir))
    H.write_file(dir .. "/memhog.lua", [[
      local M = {}
      function M.garbage(ready, stop)
        local t = {}
        for i = 1, 40 do t[i] = ("g"):rep(1024 * 1024 - 64) .. i end
        t = nil
        ready:send(true)
        while #stop == 0 do go.yield() end
        return true
      end
      return M
    ]])
    local r = H.run([[
      package.path = ]] .. string.format("%q", dir .. "/?.lua;") .. [[ .. package.path
      local ready, stop = go.sharedchan(1), go.sharedchan(1)
      local h = go.spawn_on(1, "memhog:garbage", ready, stop)
      assert(ready:recv())
      local g = go(function()
        local t = {}
        for i = 1, 40 do t[i] = ("l"):rep(1024 * 1024 - 64) .. i; go.yield() end
        return #t
      end)
      print("live:", go.wait(g))
      stop:send(true)
      print("hog:", go.wait(h))
    ]], nil, { env = { GOLUA_MEMLIMIT = LIMIT }, flags = { "-p", "2" } })
    os.execute("rm -rf " .. H.shquote(dir))
    assert.are.equal(0, r.status, ok_run(r))
    assert.truthy(r.stdout:find("live:\ttrue\t40", 1, true), ok_run(r))
    assert.truthy(r.stdout:find("hog:\ttrue\ttrue", 1, true), ok_run(r))
  end)

  it("go.stats() has memory and memlimit (bytes)", function()
    local r = H.run([[
      local s = go.stats()
      print(math.type(s.memory), math.type(s.memlimit), s.memory > 0, s.memlimit)
    ]], nil, { env = { GOLUA_MEMLIMIT = "3GiB" } })
    assert.are.equal(0, r.status, ok_run(r))
    assert.truthy(r.stdout:find("integer\tinteger\ttrue\t" .. math.tointeger(3 * 1024 ^ 3), 1, true), ok_run(r))
    local s = go.stats()
    assert.are.equal("integer", math.type(s.memory))
    assert.are.equal("integer", math.type(s.memlimit))
  end)

  it("a bad value is reported clearly and ignored", function()
    for _, bad in ipairs({ "64MB", "lots", "-1", "0", "99999999999GiB" }) do
      local r = H.run([[print("limit:", go.stats().memlimit)]], nil,
        { env = { GOLUA_MEMLIMIT = bad } })
      assert.are.equal(0, r.status, ok_run(r))
      assert.truthy(r.stdout:find("limit:\t0\n", 1, true), ok_run(r))
      assert.truthy(r.stderr:find("GOLUA_MEMLIMIT=" .. bad .. ": must be a number of bytes", 1, true),
        bad .. ": " .. r.stderr)
    end
    for v, bytes in pairs({ ["1048576"] = 1048576, ["512KiB"] = 524288, ["2GiB"] = math.tointeger(2 * 1024 ^ 3),
                            ["100000000B"] = 100000000, off = 0 }) do
      local r = H.run([[print("limit:", go.stats().memlimit)]], nil, { env = { GOLUA_MEMLIMIT = v } })
      assert.truthy(r.stdout:find("limit:\t" .. bytes .. "\n", 1, true), v .. ": " .. ok_run(r))
      assert.are.equal("", r.stderr)
    end
  end)
end)
