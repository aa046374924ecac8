-- soak/stats.lua: loaded with `goluarun -l soak.stats` in front of a server
-- script (scripts/soak.sh): a goroutine answering each connection to
-- 127.0.0.1:$SOAK_STATS_PORT with one line of the runtime's own figures,
-- "goroutines=N polldescs=N waiters=N threads=N", and closing it. Its own
-- goroutine, listener and the answered conn are the same at every reading.
local net = require "net"

local port = assert(os.getenv("SOAK_STATS_PORT"), "SOAK_STATS_PORT not set")
local ln = assert(net.listen("127.0.0.1:" .. port))
io.stdout:write("soak stats on ", ln:addr(), "\n"); io.stdout:flush()
go(function()
  while true do
    local c = ln:accept()
    if not c then return end
    local s = go.stats()
    c:write(string.format("goroutines=%d polldescs=%d waiters=%d threads=%d\n",
      s.goroutines, s.polldescs, s.netpoll_waiters, s.threads))
    c:close()
  end
end)
return true
