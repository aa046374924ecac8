-- busy_neighbour.lua — how long a line echo takes when its P also runs
-- CPU-bound goroutines and has no timer armed (the forced poll of a busy P).
--   goluarun scripts/bench/busy_neighbour.lua [pings] [goluarun binary]
-- For -p 1 and -p 2, with 1 and 4 spinning goroutines, it starts
-- scripts/bench/busy_server.lua, sends `pings` lines (default 200) at random
-- gaps of 0-20 ms, and prints the median, p99 and max round trip. Each
-- server is stopped by its PID.
local net = require "net"

local N = tonumber(arg[1] or 200)
local BIN = arg[2] or arg[-1]
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/") or "."
local SERVER = here .. "/busy_server.lua"

local function start(procs, busy)
  local out = os.tmpname()
  local cmd = ("sh -c 'echo $$; exec %s -p %d %s %d' >%s 2>&1 &"):format(BIN, procs, SERVER, busy, out)
  os.execute(cmd)
  local deadline = go.now() + 10
  while go.now() < deadline do
    local f = io.open(out)
    local text = f and f:read("a") or ""
    if f then f:close() end
    local pid, addr = text:match("^(%d+)\nlistening on (%S+)")
    if addr then
      os.remove(out)
      return pid, addr
    end
    go.sleep(0.05)
  end
  error("server did not start: " .. out)
end

local function pings(addr)
  local c = assert(net.dial(addr, 10))
  c:settimeout(5)
  local t = {}
  for i = 1, N do
    local t0 = go.now()
    assert(c:write("ping\n"))
    assert(c:read("l") == "ping")
    t[i] = (go.now() - t0) * 1000
    go.sleep(math.random() * 0.02)
  end
  c:close()
  table.sort(t)
  return t[(N + 1) // 2], t[math.ceil(N * 0.99)], t[N]
end

print(("| -p | busy goroutines | median ms | p99 ms | max ms |  (%d pings, %s)"):format(N, BIN))
print("|---:|---:|---:|---:|---:|")
for _, procs in ipairs { 1, 2 } do
  for _, busy in ipairs { 1, 4 } do
    local pid, addr = start(procs, busy)
    local ok, med, p99, max = pcall(pings, addr)
    os.execute("kill -9 " .. pid)
    assert(ok, med)
    print(("| %d | %d | %.1f | %.1f | %.1f |"):format(procs, busy, med, p99, max))
  end
end
