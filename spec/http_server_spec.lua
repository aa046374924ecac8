-- http_server_spec: scripts/http_server.lua as a subprocess on a free port,
-- exercised with the real curl and nc (Debian: curl, netcat-openbsd).
-- nc: "-q 2" (the pipelining command of the issue) always waits 2 s after
-- its input ends; the other cases use "-N" (half-close after the input) so
-- nc ends as soon as the server has answered and closed.
-- The server is another process, so blocking this VM in io.popen /
-- os.execute while curl runs is fine.
local net = require "net"
local json = require "goluarun.json"
local H = require "support.helpers"

local here = debug.getinfo(1, "S").source:gsub("^@", "")
local root = here:match("^(.*)/spec/[^/]*$") or "."

local q = H.shquote

-- runs a shell command; returns its stdout, its stderr, its exit status
local function sh(cmd)
  local out, err = H.tmpname(), H.tmpname()
  local _, how, code = os.execute("timeout -s KILL 60 sh -c " .. q(cmd)
    .. " > " .. q(out) .. " 2> " .. q(err) .. " < /dev/null")
  local o, e = H.read_file(out) or "", H.read_file(err) or ""
  os.remove(out); os.remove(err)
  if how == "signal" then code = 128 + code end
  return o, e, code
end

local function have(tool)
  local _, _, code = sh("command -v " .. tool)
  return code == 0
end

describe("scripts/http_server.lua with curl and nc", function()
  local p, addr, base, host, port
  local tmpfiles = {}
  local function tmp(suffix)
    local f = H.tmpname(suffix)
    tmpfiles[#tmpfiles + 1] = f
    return f
  end

  setup(function()
    assert(have("curl"), "curl is not installed (apt-get install curl)")
    assert(have("nc"), "nc is not installed (apt-get install netcat-openbsd)")
    p = H.spawn(root .. "/scripts/http_server.lua", { "127.0.0.1:0" },
      { file = true, timeout = 300 })
    addr = p:wait_output("listening on (%S+)", 10)
    if not addr then
      local msg = "no 'listening on':\n" .. p:stdout() .. "\n" .. p:stderr()
      p:cleanup()
      error(msg)
    end
    host, port = addr:match("^(.*):(%d+)$")
    base = "http://" .. addr
    assert(H.wait_until(function()
      local c = net.dial(addr, 1)
      if c then c:close() return true end
      return false
    end, 10))
  end)

  teardown(function()
    if p then p:cleanup() end
    for _, f in ipairs(tmpfiles) do os.remove(f) end
  end)

  -- the server still answers a plain GET
  local function assert_serving()
    local out, err, code = sh("curl -sS --max-time 10 " .. q(base .. "/"))
    assert.are.equal(0, code, err)
    assert.are.equal("Hello, World!\n", out)
    assert.is_true(p:alive(), "server died:\n" .. p:stderr())
  end

  it("prints exactly one 'listening on' line", function()
    local _, n = p:stdout():gsub("listening on", "")
    assert.are.equal(1, n)
  end)

  it("GET / answers Hello, World! as text/plain", function()
    local out, err, code = sh("curl -sS -i --max-time 10 " .. q(base .. "/"))
    assert.are.equal(0, code, err)
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("\r\nContent%-Type: text/plain", out)
    assert.matches("\r\nContent%-Length: 14\r\n", out)
    assert.are.equal("Hello, World!\n", out:match("\r\n\r\n(.*)$"))
  end)

  it("curl reuses one keep-alive connection for two URLs", function()
    local _, err, code = sh("curl -sS -v --max-time 10 -o /dev/null -o /dev/null "
      .. q(base .. "/") .. " " .. q(base .. "/"))
    assert.are.equal(0, code, err)
    assert.matches("Re%-using existing connection", err)
    local _, connects = err:gsub("\n%* Connected to ", "")
    assert.are.equal(1, connects, err)
    local _, intact = err:gsub("Connection #0 to host [^\n]* left intact", "")
    assert.are.equal(2, intact, err)
  end)

  it("answers two pipelined requests from nc in order", function()
    local out, err, code = sh("printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
      .. "GET /stats HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -N -w 10 "
      .. host .. " " .. port)
    assert.are.equal(0, code, err)
    local first, rest = out:match("^(HTTP/1%.1 200 OK\r\n.-\r\n\r\nHello, World!\n)(.*)$")
    assert.truthy(first, "first response wrong:\n" .. out)
    local body = rest:match("^HTTP/1%.1 200 OK\r\n.-Content%-Type: application/json.-\r\n\r\n(.*)$")
    assert.truthy(body, "second response wrong:\n" .. rest)
    assert.truthy(json.decode(body))
  end)

  it("answers the exact pipelining command (two GET /) with two responses", function()
    local out, err, code = sh("printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
      .. "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -q 2 " .. host .. " " .. port)
    assert.are.equal(0, code, err)
    local _, n = out:gsub("HTTP/1%.1 200 OK\r\n", "")
    assert.are.equal(2, n, out)
    local _, m = out:gsub("\r\n\r\nHello, World!\n", "")
    assert.are.equal(2, m, out)
  end)

  it("echoes a chunked upload", function()
    local size = H.scale(1024 * 1024 + 17, 30000)
    local f = tmp(".bin")
    H.write_file(f, H.payload(size, 11))
    local out = tmp(".out")
    local _, err, code = sh("curl -sS -v --max-time 60 -H 'Transfer-Encoding: chunked' "
      .. "--data-binary @" .. q(f) .. " -o " .. q(out) .. " " .. q(base .. "/echo"))
    assert.are.equal(0, code, err)
    assert.matches("> Transfer%-Encoding: chunked", err)
    assert.matches("< HTTP/1%.1 200 OK", err)
    local _, _, same = sh("cmp " .. q(f) .. " " .. q(out))
    assert.are.equal(0, same, "echoed chunked body differs")
  end)

  it("echoes a 10 MiB POST body identically", function()
    local size = H.scale(10 * 1024 * 1024, 100 * 1024)
    local f = tmp(".bin")
    H.write_file(f, H.payload(size, 4))
    local out = tmp(".out")
    local res, err, code = sh("curl -sS --max-time 120 --data-binary @" .. q(f)
      .. " -H 'Content-Type: application/octet-stream'"
      .. " -w '%{http_code} %{size_download}' -o " .. q(out) .. " " .. q(base .. "/echo"))
    assert.are.equal(0, code, err)
    assert.are.equal("200 " .. size, res)
    local _, _, same = sh("cmp " .. q(f) .. " " .. q(out))
    assert.are.equal(0, same, "echoed body differs")
  end)

  it("rejects malformed request lines with 400 and keeps serving", function()
    for _, line in ipairs({ "GET / HTTP/1.1 extra", "GET  / HTTP/1.1", "BAD",
      "GET /a b HTTP/1.1", "G@T / HTTP/1.1" }) do
      local out, err, code = sh("printf '" .. line .. "\\r\\nHost: x\\r\\n\\r\\n' | nc -N -w 10 "
        .. host .. " " .. port)
      assert.are.equal(0, code, err)
      assert.matches("^HTTP/1%.1 400 Bad Request\r\n", out)
      assert.matches("\r\nConnection: close\r\n", out)
      assert_serving()
    end
  end)

  it("answers oversized headers with 431 and keeps serving", function()
    local big = ("a"):rep(20000)
    local out, err, code = sh("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "
      .. q("X-Big: " .. big) .. " " .. q(base .. "/"))
    assert.are.equal(0, code, err)
    assert.are.equal("431", out)
    assert_serving()
    -- too many fields
    local hs = {}
    for i = 1, 120 do hs[#hs + 1] = "-H " .. q("X-H" .. i .. ": v") end
    out, err, code = sh("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "
      .. table.concat(hs, " ") .. " " .. q(base .. "/"))
    assert.are.equal(0, code, err)
    assert.are.equal("431", out)
    assert_serving()
  end)

  it("answers 413 to an announced body over the limit, 404/405 for unknown routes", function()
    local out, err, code = sh("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "
      .. "-H 'Content-Length: 999999999999' --data-binary x " .. q(base .. "/echo"))
    assert.are.equal(0, code, err)
    assert.are.equal("413", out)
    out = sh("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' " .. q(base .. "/nope"))
    assert.are.equal("404", out)
    out = sh("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X DELETE " .. q(base .. "/"))
    assert.are.equal("405", out)
    assert_serving()
  end)

  it("GET /stats is valid JSON with the go.stats keys", function()
    local out, err, code = sh("curl -sS --max-time 10 -D - " .. q(base .. "/stats"))
    assert.are.equal(0, code, err)
    assert.matches("Content%-Type: application/json", out)
    local body = out:match("\r\n\r\n(.*)$")
    local v, jerr = json.decode(body)
    assert.truthy(v, jerr)
    for _, k in ipairs({ "goroutines", "runnable", "threads", "procs", "netpoll_waiters",
      "spawned", "coroutines_created", "steals", "preemptions", "handoffs" }) do
      assert.is_not_nil(v[k], "missing key " .. k)
    end
    assert.is_true(#v.procs >= 1)
    assert.is_not_nil(v.procs[1].goroutines)
    assert.is_not_nil(v.procs[1].runq)
  end)
end)
