-- soak/load.lua: the load of scripts/soak.sh, run by goluarun -p 2:
--   load.lua SECONDS ECHO_ADDR HTTP_ADDR REDIS_ADDR
-- Mixed clients until SECONDS pass: persistent echo clients checking every
-- byte, echo connection churn, HTTP keep-alive and one-request connections,
-- RESP SET/GET/MGET checked against what was set, slow clients (a byte
-- every 50 ms), and RST storms (a partial request, then SO_LINGER 0 and
-- close). Prints "kind ok=N err=N" per kind, the first errors, and
-- "errors=N" (RSTs are injected, not errors); exits 1 if errors > 0.
local net = require "net"
local tu = require "testutil"

local SECS = assert(tonumber(arg[1]), "seconds")
local ECHO, HTTP, REDIS = arg[2], arg[3], arg[4]
local deadline = go.now() + SECS
local counts, firsterr, nerr = {}, {}, 0

local function count(kind, ok, why)
  local c = counts[kind] or { ok = 0, err = 0 }
  counts[kind] = c
  if ok then c.ok = c.ok + 1 return end
  c.err = c.err + 1
  nerr = nerr + 1
  if #firsterr < 20 then firsterr[#firsterr + 1] = kind .. ": " .. tostring(why) end
end

local function dial(addr)
  local c, err = net.dial(addr, 5)
  if c then c:settimeout(10) end
  return c, err
end

local function rnd(n, seed)
  local t = {}
  for i = 1, n do t[i] = string.char(32 + (i * 7 + seed) % 90) end
  return table.concat(t)
end

-- each worker loops until the deadline; a failed step counts and moves on
local function worker(kind, step)
  return go(function()
    local i = 0
    while go.now() < deadline do
      i = i + 1
      local ok, why = pcall(step, i)
      if ok and why ~= nil and why ~= true then ok = false end
      count(kind, ok, why)
    end
  end)
end

local function echo_session(c, i, n)
  for k = 1, n do
    local msg = rnd(1 + (i * 131 + k * 17) % 3000, i + k) .. "\n"
    assert(c:write(msg))
    local got, err = c:read(#msg)
    if got ~= msg then return "echo mismatch: " .. tostring(err) end
  end
  return true
end

local function http_get(c, close)
  assert(c:write("GET / HTTP/1.1\r\nHost: soak\r\n" .. (close and "Connection: close\r\n" or "") .. "\r\n"))
  local status = c:read("l")
  if not status or not status:match("^HTTP/1%.1 200") then return "status " .. tostring(status) end
  local len
  while true do
    local h = assert(c:read("l"))
    if h == "" or h == "\r" then break end
    len = len or tonumber(h:lower():match("^content%-length:%s*(%d+)"))
  end
  local body = c:read(assert(len, "no content-length"))
  if not body or not body:find("Hello") then return "body " .. tostring(body) end
  return true
end

local function resp(c, ...)
  local parts = { "*" .. select("#", ...) .. "\r\n" }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n" end
  assert(c:write(table.concat(parts)))
  local line = assert(c:read("l")):gsub("\r$", "")
  local t = line:sub(1, 1)
  if t == "+" or t == "-" or t == ":" then return line end
  if t == "$" then
    local n = tonumber(line:sub(2))
    if n < 0 then return nil end
    local v = c:read(n + 2)
    return v:sub(1, n)
  end
  if t == "*" then
    local out = {}
    for k = 1, tonumber(line:sub(2)) do
      local l2 = assert(c:read("l")):gsub("\r$", "")
      local n = tonumber(l2:sub(2))
      out[k] = n >= 0 and c:read(n + 2):sub(1, n) or false
    end
    return out
  end
  error("bad reply " .. line)
end

local ws = {}
for w = 1, 4 do -- persistent echo clients
  ws[#ws + 1] = worker("echo", function(i)
    local c = assert(dial(ECHO))
    local r = echo_session(c, i * 10 + w, 50)
    c:close()
    return r
  end)
end
for w = 1, 2 do -- echo churn: one exchange per connection
  ws[#ws + 1] = worker("echo_churn", function(i)
    local c = assert(dial(ECHO))
    local r = echo_session(c, i + w, 1)
    c:close()
    return r
  end)
end
for w = 1, 3 do -- HTTP keep-alive
  ws[#ws + 1] = worker("http_keepalive", function()
    local c = assert(dial(HTTP))
    for _ = 1, 20 do
      local r = http_get(c, false)
      if r ~= true then c:close() return r end
    end
    c:close()
    return true
  end)
end
ws[#ws + 1] = worker("http_close", function()
  local c = assert(dial(HTTP))
  local r = http_get(c, true)
  c:close()
  return r
end)
for w = 1, 3 do -- RESP, checked
  ws[#ws + 1] = worker("resp", function(i)
    local c = assert(dial(REDIS))
    for k = 1, 20 do
      local key, val = "k" .. w .. ":" .. (k % 50), rnd(1 + (i + k) % 500, k)
      if resp(c, "SET", key, val) ~= "+OK" then c:close() return "SET" end
      if resp(c, "GET", key) ~= val then c:close() return "GET " .. key end
      local m = resp(c, "MGET", key, key)
      if type(m) ~= "table" or m[1] ~= val or m[2] ~= val then c:close() return "MGET" end
    end
    c:close()
    return true
  end)
end
ws[#ws + 1] = worker("slow", function(i) -- a slow client: a byte every 50 ms
  local c = assert(dial(ECHO))
  local msg = rnd(40, i) .. "\n"
  for k = 1, #msg do
    assert(c:write(msg:sub(k, k)))
    go.sleep(0.05)
  end
  local got = c:read(#msg)
  c:close()
  return got == msg or "slow echo mismatch"
end)
ws[#ws + 1] = worker("slow_http", function() -- a request head in drips
  local c = assert(dial(HTTP))
  for _, piece in ipairs({ "GET / HTT", "P/1.1\r\nHo", "st: soak\r\n", "Connection: close\r\n", "\r\n" }) do
    assert(c:write(piece))
    go.sleep(0.1)
  end
  local status = c:read("l")
  c:close()
  return (status and status:match("^HTTP/1%.1 200")) and true or "slow http " .. tostring(status)
end)
ws[#ws + 1] = worker("rst_injected", function(i) -- RST storm: partial request then RST
  local targets = { { ECHO, "partial" }, { HTTP, "GET / HTTP/1.1\r\nHo" }, { REDIS, "*2\r\n$3\r\nGET\r\n$" } }
  for _, t in ipairs(targets) do
    local c = assert(dial(t[1]))
    assert(c:write(t[2]))
    if i % 2 == 0 then go.sleep(0.005) end
    assert(tu.linger0(c:fd()))
    c:close()
  end
  return true
end)

for _, w in ipairs(ws) do go.wait(w) end
local kinds = {}
for k in pairs(counts) do kinds[#kinds + 1] = k end
table.sort(kinds)
for _, k in ipairs(kinds) do print(string.format("%-15s ok=%d err=%d", k, counts[k].ok, counts[k].err)) end
for _, e in ipairs(firsterr) do print("error: " .. e) end
print("errors=" .. nerr)
os.exit(nerr == 0 and 0 or 1)
