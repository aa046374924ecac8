-- gateway_spec: scripts/gateway.lua (a reverse proxy on goluarun.http and
-- its client) driven by curl and wrk, in front of upstreams started by
-- this spec: two goluarun.http servers of this VM, a real nginx
-- (support.nginx), a port that refuses and a server that never answers.
-- Routes, round-robin, passive health, 502, 504, X-Forwarded-For,
-- streaming both ways, HTTPS termination.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local H = require "support.helpers"
local N = require "support.nginx"
local TP = require "support.tlspeers"

H.warmup()
H.require_tool("curl", "curl")
H.require_tool("wrk", "wrk")

local T = H.scale(10, 60)
local ngx, gw, gw_addr, tgw, tgw_addr, conf_file, tconf_file
local ups, hits, silent = {}, { A = 0, B = 0 }, {}
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. H.shquote(dir))

local function upstream(name)
  local app = function(req, res)
    hits[name] = hits[name] + 1
    if req.path == "/stream" then
      for i = 1, 3 do
        res:write("tick", i, "\n")
        go.sleep(0.01)
      end
      return
    end
    if req.path == "/hdrs" then -- raw fields the gateway must filter
      local c = res:hijack()
      c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, X-Secret\r\n"
        .. "X-Secret: s\r\nKeep-Alive: timeout=5\r\nServer: up\r\n"
        .. "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Up: " .. name .. "\r\n\r\nok")
      c:close()
      return
    end
    if req.path == "/head" then -- the request head as it arrived
      local raw, pos = req:rawhead()
      local e = raw:find("\r\n\r\n", pos, true)
      return res:send(raw:sub(pos, e + 1))
    end
    if req.path == "/echo" then -- streams the body back as it comes
      res:header("X-Up", name)
      while true do
        local d = req:read()
        if not d then break end
        res:write(d)
      end
      return
    end
    res:header("X-Up", name):send(name .. " " .. req.target .. " xff=" ..
      tostring(req.headers["x-forwarded-for"]) .. " proto=" ..
      tostring(req.headers["x-forwarded-proto"]) .. "\n")
  end
  local ln = assert(http.serve("127.0.0.1:0", app, { max_body = 64 * 1024 * 1024 }))
  ups[#ups + 1] = ln
  return ln:addr()
end

local function curl(args)
  return H.sh("curl -s -S --max-time " .. T .. " " .. args)
end

setup(function()
  local a, b = upstream("A"), upstream("B")
  ngx = N.start({ files = { ["page.txt"] = "static page\n" }, servers = { "location / { }" } })
  local dead = H.free_addr()
  local never = assert(net.listen("127.0.0.1:0")) -- accepts (backlog), never answers
  ups[#ups + 1] = never
  go(function()
    while true do
      local c = never:accept()
      if not c then return end
      silent[#silent + 1] = c
    end
  end)
  local conf = ([[
return {
  timeout = %s, fail_timeout = 30,
  routes = {
    { prefix = "/api/", upstream = "api", strip = true },
    { prefix = "/static/", upstream = "web", strip = true },
    { prefix = "/dead/", upstream = "dead" },
    { prefix = "/half/", upstream = "half", strip = true },
    { prefix = "/slow/", upstream = "slow", timeout = %s },
  },
  upstreams = {
    api = { "%s", "%s" },
    web = { servers = { "127.0.0.1:%d" } },
    dead = { "%s" },
    half = { "%s", "%s" },
    slow = { "%s" },
  },
}
]]):format(T, H.scale(0.5, 3), a, b, ngx.ports[1], dead, dead, a, never:addr())
  conf_file = dir .. "/gw.lua"
  H.write_file(conf_file, conf)
  gw, gw_addr = H.start_script("gateway.lua", { conf_file, "127.0.0.1:0" }, { flags = { "-p", "1" } })
  local pki = TP.pki("ec")
  tconf_file = dir .. "/tgw.lua"
  H.write_file(tconf_file, ([[
return { tls = { cert = %q, key = %q }, routes = { { prefix = "/", upstream = "api" } },
  upstreams = { api = { "%s" } } }
]]):format(pki.cert, pki.key, a))
  tgw, tgw_addr = H.start_script("gateway.lua", { tconf_file, "127.0.0.1:0" }, { flags = { "-p", "1" } })
end)

teardown(function()
  if gw then gw:cleanup() end
  if tgw then tgw:cleanup() end
  if ngx then ngx:stop() end
  for _, ln in ipairs(ups) do ln:close() end
  for _, c in ipairs(silent) do c:close() end
  os.execute("rm -rf " .. H.shquote(dir))
  TP.cleanup()
end)

describe("gateway.lua", function()
  it("routes by prefix and round-robins over a group", function()
    local seen = {}
    for i = 1, 4 do
      local out, code = curl("http://" .. gw_addr .. "/api/x?i=" .. i)
      assert.are.equal(0, code, out)
      local who, target = out:match("^(%u) (%S+)")
      assert.are.equal("/x?i=" .. i, target)
      seen[#seen + 1] = who
    end
    assert.are_not.equal(seen[1], seen[2])
    assert.are.equal(seen[1], seen[3])
    assert.are.equal(seen[2], seen[4])
    local out = curl("http://" .. gw_addr .. "/static/page.txt")
    assert.are.equal("static page\n", out)
    out = curl("-o /dev/null -w '%{http_code}' http://" .. gw_addr .. "/nowhere")
    assert.are.equal("404", out)
  end)

  it("answers 502 when every server refuses, and skips a refusing one", function()
    local out = curl("-o /dev/null -w '%{http_code}' http://" .. gw_addr .. "/dead/x")
    assert.are.equal("502", out)
    local a0 = hits.A
    for _ = 1, 4 do
      out = curl("-w ' %{http_code}' http://" .. gw_addr .. "/half/y")
      assert.matches("^A /y .* 200$", out)
    end
    assert.are.equal(a0 + 4, hits.A)
  end)

  it("answers 504 when the upstream does not answer in time", function()
    local t0 = go.now()
    local out = curl("-o /dev/null -w '%{http_code}' http://" .. gw_addr .. "/slow/x")
    assert.are.equal("504", out)
    assert.is_true(go.now() - t0 < H.scale(5, 20))
  end)

  it("appends X-Forwarded-For and says the protocol", function()
    local out = curl("-H 'X-Forwarded-For: 10.1.2.3' http://" .. gw_addr .. "/api/xff")
    assert.matches("xff=10%.1%.2%.3, 127%.0%.0%.1 proto=http\n$", out)
  end)

  it("relays the upstream's fields minus hop-by-hop ones and those Connection names", function()
    local out = curl("-i http://" .. gw_addr .. "/api/hdrs")
    assert.matches("^HTTP/1.1 200", out)
    -- names as the upstream sent them, repeated fields each on its line
    assert.matches("\r\nSet%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n", out)
    assert.matches("\r\nX%-Up: [AB]\r\n", out)
    assert.matches("\r\nContent%-Length: 2\r\n", out)
    assert.matches("\r\n\r\nok$", out)
    local lower = out:lower()
    assert.is_nil(lower:find("content-type", 1, true)) -- none sent, none added
    assert.is_nil(lower:find("x-secret", 1, true))
    assert.is_nil(lower:find("keep-alive:", 1, true))
    assert.is_nil(lower:find("server: up", 1, true))
    assert.is_nil(lower:find("connection: close", 1, true))
  end)

  it("forwards the client's fields as sent, minus hop-by-hop ones and those Connection names", function()
    local out, code = curl("-H 'Connection: X-Private' -H 'X-Private: p' -H 'Keep-Alive: 9'"
      .. " -H 'TE: trailers' -H 'Proxy-Authorization: Basic x' -H 'X-Mixed-Case: V'"
      .. " -H 'X-Forwarded-Proto: forged' -H 'X-Forwarded-Host: forged'"
      .. " -H 'Host: site.example' http://" .. gw_addr .. "/api/head")
    assert.are.equal(0, code, out)
    assert.matches("^GET /head HTTP/1%.1\r\n", out)
    assert.matches("\r\nHost: site%.example\r\n", out)
    assert.matches("\r\nX%-Mixed%-Case: V\r\n", out)
    assert.matches("\r\nX%-Forwarded%-For: 127%.0%.0%.1\r\n", out)
    assert.matches("\r\nX%-Forwarded%-Proto: http\r\n", out)
    assert.matches("\r\nX%-Forwarded%-Host: site%.example\r\n", out)
    local lower = out:lower()
    for _, gone in ipairs({ "x-private", "keep-alive", "te:", "proxy-authorization", "forged",
      "connection: x" }) do
      assert.is_nil(lower:find(gone, 1, true), gone)
    end
  end)

  it("streams bodies both ways (a 4 MiB upload echoed back as it comes)", function()
    local n = H.scale(4 * 1024 * 1024, 64 * 1024)
    local src, dst = dir .. "/up.bin", dir .. "/down.bin"
    os.execute("head -c " .. n .. " /dev/urandom > " .. H.shquote(src))
    local out, code = curl("-H 'Transfer-Encoding: chunked' -T " .. H.shquote(src)
      .. " -o " .. H.shquote(dst) .. " -w '%{http_code}' http://" .. gw_addr .. "/api/echo")
    assert.are.equal(0, code, out)
    assert.are.equal("200", out)
    local _, same = H.sh("cmp " .. H.shquote(src) .. " " .. H.shquote(dst))
    assert.are.equal(0, same)
    out = curl("-N http://" .. gw_addr .. "/api/stream")
    assert.are.equal("tick1\ntick2\ntick3\n", out)
  end)

  it("terminates HTTPS", function()
    local pki = TP.pki("ec")
    local port = tgw_addr:match(":(%d+)$")
    local out, code = curl("--cacert " .. H.shquote(pki.ca) .. " https://localhost:" .. port .. "/z")
    assert.are.equal(0, code, out)
    assert.matches("^A /z xff=127%.0%.0%.1 proto=https\n$", out)
  end)

  it("serves wrk without errors, over pooled upstream conns", function()
    local out = H.sh("wrk -t1 -c8 -d" .. "1s" .. " http://" .. gw_addr .. "/api/w")
    local reqs = tonumber(out:match("(%d+) requests in"))
    assert.truthy(reqs and reqs > 0, out)
    assert.is_nil(out:match("Non%-2xx"), out)
    assert.is_nil(out:match("Socket errors"), out)
    assert.is_true(gw:alive())
  end)
end)
