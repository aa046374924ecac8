-- allocfail_core.lua: the core work allocfail_spec runs under
-- GOLUA_ALLOCFAIL (goroutines, channels, a server answering its clients),
-- phase by phase. A phase may end in "not enough memory" (the injected
-- failure) or in what a dying peer gives ("eof", "closed", "connection
-- reset", "broken pipe", a timeout while a dead goroutine's partner waits);
-- anything else is printed as "PHASE name: UNEXPECTED ..." on stderr.
-- Then, retried (an injected failure may hit it too), a clean round of
-- all of it; "alive" on stdout says the runtime still served.
local go = require "go"
local net = require "net"

local OOM = "not enough memory"
local DYING = { "eof", "closed", "connection reset", "broken pipe", "timeout" }

local function expected(err)
  local s = tostring(err)
  if s:find(OOM, 1, true) then return true end
  for _, d in ipairs(DYING) do if s == d then return true end end
  return false
end

local function check(name, ok, err)
  if not ok and not expected(err) then
    io.stderr:write("PHASE ", name, ": UNEXPECTED ", tostring(err), "\n")
  end
  return ok
end

local function goroutines()
  local hs = {}
  for i = 1, 20 do
    hs[i] = go(function(n)
      local t = {}
      for k = 1, n * 10 do t[k] = ("g%d.%d"):format(n, k) end
      return #t
    end, i)
  end
  local all = true
  for i = 1, 20 do
    local ok, r = go.wait(hs[i], 2)
    if ok == nil then error("timeout", 0) end
    all = check("goroutines", ok, r) and all
    if ok and r ~= i * 10 then error("wrong result " .. tostring(r), 0) end
  end
  return all
end

local function channels()
  local ch = go.chan(2)
  go(function()
    for i = 1, 50 do ch:send({ i, ("v"):rep(i) }) end
    ch:close()
  end)
  local got = 0
  while true do
    -- a producer killed by the injected failure never closes: time out
    local i, v, ok = go.select({ { ch, "recv" } }, 1)
    if i == nil then error("timeout", 0) end
    if not ok then break end
    got = got + 1
    if v[1] ~= got then error("out of order: " .. tostring(v[1]), 0) end
  end
  return got == 50
end

local function server()
  local ln = assert(net.listen("127.0.0.1:0"))
  local srv = go(function()
    for _ = 1, 5 do
      local c = ln:accept(1)
      if not c then return end
      go(function()
        c:settimeout(2)
        local l = c:read("l")
        if l then c:write(l:upper(), "\n") end
        c:close()
      end)
    end
  end)
  local all = true
  for i = 1, 5 do
    local ok, err = pcall(function()
      local c, derr = net.dial(ln:addr(), 2)
      if not c then error(derr, 0) end
      c:settimeout(2)
      local w, werr = c:write("hello ", i, "\n")
      if not w then c:close() error(werr, 0) end
      local l, rerr = c:read("l")
      c:close()
      if not l then error(rerr, 0) end
      if l ~= "HELLO " .. i then error("wrong reply " .. l, 0) end
    end)
    all = check("server", ok, err) and all
  end
  ln:close()
  go.wait(srv, 2)
  return all
end

local PHASES = { { "goroutines", goroutines }, { "channels", channels }, { "server", server } }

for _, ph in ipairs(PHASES) do check(ph[1], pcall(ph[2])) end

-- still serving: a clean round of every phase (retried)
for _ = 1, 5 do
  local clean = true
  for _, ph in ipairs(PHASES) do
    local ok, r = pcall(ph[2])
    check(ph[1], ok, r)
    clean = clean and ok and r
  end
  if clean then
    print("alive")
    break
  end
end
os.exit(0, true)
