-- xchan.lua — cross-VM shared channel round trip (issue 15's figure):
-- main on P0 and an echo goroutine started on P1 (go.spawn_on) bounce a
-- value over two unbuffered shared channels; time per round trip.
--
--   goluarun -p 2 scripts/bench/xchan.lua [N]
--
-- prints: RESULT bench=xpingpong n=N ns_per_op=...
-- go_micro -bench xpingpong is Go's side (GOMAXPROCS=2).
local go = go or require "go"
local n = tonumber(arg and arg[1]) or 20000
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
  .. "/?.lua;" .. package.path
assert(go.nprocs() >= 2, "xchan.lua: run with -p 2")

local ping, pong = go.sharedchan(), go.sharedchan()
local echo = go.spawn_on(1, "xchan_echo", ping, pong)

local function bounce(count)
  for i = 1, count do
    ping:send(i)
    local v = pong:recv()
    if v ~= i then error("xpingpong: got " .. tostring(v) .. " for " .. i) end
  end
end

bounce(math.max(1, n // 10))
local t0 = go.now()
bounce(n)
local secs = go.now() - t0
ping:close()
go.wait(echo)
print(string.format("RESULT bench=xpingpong n=%d ns_per_op=%.1f", n, secs * 1e9 / n))
