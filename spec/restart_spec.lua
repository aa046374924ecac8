-- restart_spec: zero-downtime restart (scripts/restart_server.lua) and
-- socket activation. Two goluarun instances behind Debian's haproxy, wrk
-- through haproxy while each instance is restarted in turn by SIGHUP: no
-- failed request, no refused or retried backend connection. And
-- systemd-socket-activate handing its socket to net.listen.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

local SCRIPT = H.root() .. "/scripts/restart_server.lua"

local function get(addr)
  local c, err = net.dial(addr, 2)
  if not c then return nil, err end
  c:settimeout(5)
  c:write("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
  local r = c:read("a")
  c:close()
  return r
end

-- collect — a goroutine appending every line of conn to a list
local function collect(conn)
  local lines = {}
  go(function()
    while true do
      local l = conn:read("l")
      if not l then return end
      lines[#lines + 1] = l
    end
  end)
  return lines
end

local function find_line(lines, pattern)
  for _, l in ipairs(lines) do
    local a, b = l:match(pattern)
    if a then return a, b end
  end
end

local function kill_pid(pid, sig)
  local p = go.exec({ "kill", "-" .. (sig or "TERM"), tostring(pid) },
    { stdin = "null", stdout = "null", stderr = "null" })
  if p then p:wait(5) end
end

-- an instance on its own listener, passed to it as LISTEN_FDS
local function start_instance(logs)
  local ln = assert(net.listen("127.0.0.1:0"))
  local addr = ln:addr()
  local p = assert(go.exec({ H.bin(), "-p", "2", SCRIPT, addr }, { files = { ln }, stdin = "null" }))
  ln:close() -- the instance's copy stays open
  local line = p.stdout:read("l", 20)
  p.stdout:close()
  assert.are.equal("listening on " .. addr, line)
  local lines = collect(p.stderr)
  logs[#logs + 1] = lines
  return { p = p, addr = addr, log = lines }
end

local HAPROXY_CFG = [[
global
  maxconn 2000
  log stderr format raw local0
defaults
  mode http
  log global
  option httplog
  option dontlog-normal
  timeout connect 2s
  timeout client 20s
  timeout server 20s
  option http-server-close
frontend fe
  bind %s
  default_backend be
backend be
  balance roundrobin
  server s1 %s
  server s2 %s
listen stats
  bind %s
  stats enable
  stats uri /stats
]]

-- haproxy's per-server counters from its HTTP stats page (CSV, the
-- fields of the CLI's "show stat"): name -> {field = n}. Not the stats
-- socket: haproxy 2.6's CLI leaves a command that arrives a byte at a time
-- with gaps between them unanswered (a Python client sending "show
-- stat\n" byte by byte with 0-2 ms between bytes got no answer in 12 of
-- its first 15 rounds), and GOLUA_MOCKEAGAIN writes a byte per call; its
-- HTTP parser waits for the whole head
local function haproxy_stats(addr)
  local c = assert(net.dial(addr, 5))
  c:settimeout(15)
  -- (HTTP/1.0: the CSV comes close-delimited, never chunked)
  assert(c:write("GET /stats;csv HTTP/1.0\r\nHost: t\r\n\r\n"))
  local answer = assert(c:read("a"))
  c:close()
  local text = assert(answer:match("\r\n\r\n(.*)$"), "no stats page: " .. answer)
  local names, rows = nil, {}
  for line in text:gmatch("[^\n]+") do
    local fields = {}
    for f in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
    if line:sub(1, 2) == "# " then
      fields[1] = fields[1]:sub(3)
      names = fields
    elseif names and fields[1] == "be" then
      local row = {}
      for i, n in ipairs(names) do row[n] = tonumber(fields[i]) or fields[i] end
      rows[fields[2]] = row
    end
  end
  return rows
end

describe("zero-downtime restart", function()
  it("restarts two instances behind haproxy in turn by SIGHUP under wrk load, losing nothing", function()
    H.require_tool("haproxy", "haproxy")
    H.require_tool("wrk", "wrk")
    local logs, insts, hap, successors = {}, {}, nil, {}
    finally(function()
      if hap then hap:kill("SIGKILL"); hap:wait(5) end
      for _, i in ipairs(insts) do i.p:kill("SIGKILL"); i.p:wait(5) end
      for _, pid in ipairs(successors) do kill_pid(pid, "KILL") end
    end)
    insts[1] = start_instance(logs)
    insts[2] = start_instance(logs)
    local front = H.free_addr()
    local dir = H.tmpname()
    local stats, cfg = H.free_addr(), dir .. ".cfg"
    H.write_file(cfg, HAPROXY_CFG:format(front, insts[1].addr, insts[2].addr, stats))
    hap = assert(go.exec({ "haproxy", "-db", "-f", cfg }, { stdin = "null", stdout = "null" }))
    local hlog = collect(hap.stderr)
    assert(H.wait_until(function()
      local r = get(front)
      return r and r:find("hello from", 1, true)
    end, 10), "haproxy did not come up: " .. table.concat(hlog, "\n"))

    local secs = H.scale(4, 3)
    local wrk = assert(go.exec({ "wrk", "-t2", "-c16", "-d" .. secs .. "s", "http://" .. front .. "/" },
      { stdin = "null" }))
    local wrk_out = go(function() return wrk.stdout:read("a") end)
    for n, inst in ipairs(insts) do
      go.sleep(secs / 4) -- load runs on both before and between the restarts
      assert.is_true(inst.p:kill("SIGHUP"))
      local pid = inst.p.pid
      assert(H.wait_until(function() return find_line(inst.log, "^restart_server " .. pid .. ": drained") end, 15),
        "instance " .. n .. " did not drain:\n" .. table.concat(inst.log, "\n"))
      assert.are.equal(0, inst.p:wait(10))
      successors[n] = tonumber(find_line(inst.log, "^restart_server " .. pid .. ": successor (%d+) is listening"))
    end
    local _, out = go.wait(wrk_out, secs + 30)
    assert.are.equal(0, wrk:wait(10))
    os.remove(cfg)

    local why = out .. "\nhaproxy:\n" .. table.concat(hlog, "\n") .. "\ninstances:\n"
      .. table.concat(insts[1].log, "\n") .. "\n" .. table.concat(insts[2].log, "\n")
    local st = haproxy_stats(stats)
    for _, s in ipairs({ "s1", "s2" }) do
      local row = assert(st[s], "no stats for " .. s)
      assert.are.equal(0, row.econ, s .. ": refused or failed connections\n" .. why)
      assert.are.equal(0, row.eresp, s .. ": failed responses\n" .. why)
      assert.are.equal(0, row.wretr, s .. ": retried connections\n" .. why)
      assert.are.equal(0, row.wredis, s .. ": redispatched requests\n" .. why)
      assert.is_true(row.stot > 0)
    end
    assert.is_nil(out:find("Socket errors", 1, true), why)
    assert.is_nil(out:find("Non-2xx", 1, true), why)
    local requests = tonumber(out:match("(%d+) requests in"))
    assert.is_true(requests and requests > 100, out)
    -- the successors answer now
    local seen = {}
    for _ = 1, 4 do
      local r = get(front)
      seen[r:match("hello from (%d+)")] = true
    end
    assert.is_true(seen[tostring(successors[1])] and seen[tostring(successors[2])])
  end)
end)

describe("socket activation", function()
  it("net.listen adopts the socket systemd-socket-activate passes", function()
    H.require_tool("systemd-socket-activate", "systemd")
    local addr = H.free_addr()
    local p = assert(go.exec({ "systemd-socket-activate", "-l", addr, H.bin(), SCRIPT, addr },
      { stdin = "null", stdout = "null" }))
    finally(function() p:kill("SIGKILL"); p:wait(5) end)
    local log = collect(p.stderr)
    local r
    assert(H.wait_until(function()
      r = get(addr)
      return r ~= nil
    end, 10), "no answer: " .. table.concat(log, "\n"))
    -- systemd-socket-activate execs the server in its own process
    assert.truthy(r:find("hello from " .. p.pid, 1, true), r)
    local pat = "^restart_server " .. p.pid .. ": listening on " .. addr:gsub("%p", "%%%0")
    assert(H.wait_until(function() return find_line(log, pat) end, 10), table.concat(log, "\n"))
    assert.truthy(get(addr):find("hello from " .. p.pid, 1, true))
    assert.is_true(p:kill("SIGTERM"))
    assert.is_not_nil(p:wait(10), "SIGTERM ends it")
  end)
end)
