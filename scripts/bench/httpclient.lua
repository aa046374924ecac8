-- httpclient.lua: the HTTP client benchmark's goluarun side.
--   goluarun -p 1 scripts/bench/httpclient.lua URL [GOROUTINES [SECONDS]]
-- GOROUTINES (default 50) goroutines each run http.get(URL) in a loop
-- through net.defaultpool (keep-alive) for SECONDS (default 5), checking
-- the status; prints "requests N seconds S req/s R errors E".
local go = require "go"
local http = require "goluarun.http"

local url = arg[1] or error("usage: httpclient.lua URL [GOROUTINES [SECONDS]]")
local n = tonumber(arg[2] or "50")
local secs = tonumber(arg[3] or "5")
local count, errors = 0, 0
local stop = go.now() + secs
local done = go.chan(n)
local t0 = go.now()
for _ = 1, n do
  go(function()
    while go.now() < stop do
      local res, err = http.get(url)
      if res and res.status == 200 then
        count = count + 1
      else
        errors = errors + 1
        if errors < 5 then io.stderr:write("httpclient: ", tostring(err or res.status), "\n") end
      end
    end
    done:send(true)
  end)
end
for _ = 1, n do done:recv() end
local dt = go.now() - t0
print(string.format("requests %d seconds %.2f req/s %.0f errors %d", count, dt, count / dt, errors))
