-- luasocket_client.lua — N socket.http GETs of URL, C at a time, then prints
-- "requests N seconds S". Runs under lua5.4 with Debian's lua-socket (C
-- must be 1: LuaSocket blocks) and under goluarun, where goluarun.socket
-- takes LuaSocket's place and each of the C workers is a goroutine.
--   lua5.4 luasocket_client.lua URL N 1
--   goluarun -p 1 luasocket_client.lua URL N C
local url, n, c = arg[1], tonumber(arg[2]), tonumber(arg[3] or 1)
local ok, go = pcall(require, "go")
if ok then require("goluarun.socket").install() end
local socket = require "socket"
local http = require "socket.http"

local function worker(count)
  for _ = 1, count do
    local body, code = http.request(url)
    if code ~= 200 then error("request failed: " .. tostring(code)) end
    assert(#body > 0)
  end
end

local t0 = socket.gettime()
if c == 1 or not ok then
  worker(n)
else
  local hs = {}
  for i = 1, c do hs[i] = go(worker, n // c + (i <= n % c and 1 or 0)) end
  for i = 1, c do assert(go.wait(hs[i])) end
end
print(("requests %d seconds %.6f"):format(n, socket.gettime() - t0))
