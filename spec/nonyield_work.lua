-- nonyield_work.lua: run by spec/nonyield_spec.lua as a child goluarun
-- (with -p 1 and -p 2). Every blocking operation inside every context
-- where Lua cannot yield, while a ticker goroutine of the same VM keeps
-- running; the value each operation waits for is produced only once the
-- ticker has ticked 3 more times, so an operation that returns proves the
-- VM ran meanwhile. Prints "ok CONTEXT OP" per case, then "done N".
local go = require "go"
local net = require "net"

local ticks, stop = 0, false
local ticker = go(function()
  while not stop do go.sleep(0.001); ticks = ticks + 1 end
end)

-- after(n, fn): a goroutine that runs fn once the ticker ticked n more times
local function after(n, fn)
  local want = ticks + n
  return go(function()
    while ticks < want do go.sleep(0.001) end
    return fn()
  end)
end

-- contexts: each calls body() from a place Lua cannot yield from
local proxy_mt = {}
local contexts = {
  sort = function(body)
    local t = { 2, 1 }
    local done = false
    table.sort(t, function(a, b)
      if not done then done = true; body() end
      return a < b
    end)
  end,
  gsub = function(body) string.gsub("x", "x", function() body() end) end,
  __lt = function(body) -- table.sort without a comparator: C calls __lt
    local mt = { __lt = function(a, b) if not a.done then a.done = true; body() end; return a.v < b.v end }
    table.sort({ setmetatable({ v = 2 }, mt), setmetatable({ v = 1 }, mt) })
  end,
  __index = function(body) -- table.unpack reads through lua_geti
    local t = setmetatable({}, { __index = function(_, k) if k == 1 then body() end; return k end })
    table.unpack(t, 1, 2)
  end,
  __tostring = function(body) -- tostring calls luaL_tolstring
    tostring(setmetatable({}, { __tostring = function() body(); return "x" end }))
  end,
  __close = function(body) -- closed by coroutine.close, from C
    local co = coroutine.create(function()
      local x <close> = setmetatable({}, { __close = function() body() end })
      coroutine.yield()
    end)
    coroutine.resume(co)
    assert(coroutine.close(co))
  end,
}

local ln = assert(net.listen("127.0.0.1:0"))
local port = ln:addr():match(":(%d+)$")
go(function()
  while true do
    local c = ln:accept()
    if not c then return end
    c:write("hi"); c:close()
  end
end)

local ops = {
  recv = function()
    local ch = go.chan()
    after(3, function() ch:send(42) end)
    local v, ok = ch:recv()
    assert(v == 42 and ok, "recv")
  end,
  send = function()
    local ch = go.chan()
    local got
    local h = after(3, function() got = ch:recv() end)
    ch:send("v")
    assert(go.wait(h, 5))
    assert(got == "v", "send: value lost")
  end,
  select = function()
    local a, b = go.chan(), go.chan()
    after(3, function() b:send(7) end)
    local i, v, ok = go.select({ { a, "recv" }, { b, "recv" } })
    assert(i == 2 and v == 7 and ok, "select")
  end,
  select_send = function()
    local a = go.chan()
    local got
    local h = after(3, function() got = a:recv() end)
    local i = go.select({ { a, "send", "s" } })
    assert(i == 1)
    assert(go.wait(h, 5))
    assert(got == "s")
  end,
  sleep = function()
    local t0 = ticks
    go.sleep(0.02)
    assert(ticks - t0 >= 3, "sleep: ticker did not run: " .. (ticks - t0))
  end,
  wait = function()
    local h = after(3, function() return "r" end)
    local ok, r = go.wait(h)
    assert(ok and r == "r", "go.wait")
  end,
  grp_wait = function()
    local grp = go.group()
    local t0 = ticks
    grp:go(function() local w = t0 + 3; while ticks < w do go.sleep(0.001) end end)
    assert(grp:wait() == true, "grp:wait")
    assert(ticks - t0 >= 3)
  end,
  lookup = function()
    local addrs = assert(net.lookup("localhost"))
    assert(#addrs >= 1)
  end,
  dial_name = function()
    local c = assert(net.dial("localhost:" .. port, 5))
    assert(c:read(2) == "hi")
    c:close()
  end,
  timeout = function()
    local ch = go.chan()
    local t0 = ticks
    local i, err = go.select({ { ch, "recv" } }, 0.02)
    assert(i == nil and err == "timeout", "select timeout")
    local h = go(function() go.chan():recv() end) -- never ends (main ending ends it)
    local r, e = go.wait(h, 0.01)
    assert(r == nil and e == "timeout", "go.wait timeout")
    assert(ticks - t0 >= 3, "ticker did not run during the timeouts")
  end,
}

local cnames, onames = {}, {}
for k in pairs(contexts) do cnames[#cnames + 1] = k end
for k in pairs(ops) do onames[#onames + 1] = k end
table.sort(cnames); table.sort(onames)

local n = 0
for _, cn in ipairs(cnames) do
  for _, on in ipairs(onames) do
    local ok, err = pcall(contexts[cn], ops[on])
    if not ok then
      io.stderr:write(("FAIL %s %s: %s\n"):format(cn, on, tostring(err)))
      os.exit(1)
    end
    n = n + 1
    print("ok", cn, on)
  end
end
stop = true
go.wait(ticker, 5)
ln:close()
print("done", n)
