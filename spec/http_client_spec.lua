-- http_client_spec: goluarun.http's client (docs/API.md "HTTP client")
-- against a real nginx (support.nginx: Debian's nginx, started by this
-- spec on free loopback ports, stopped by PID), against goluarun.http's own
-- server, and against hand-written raw servers for the broken answers:
-- keep-alive reuse counted by the server, chunked both ways, a 64 MiB
-- streamed body each way with its sha256 checked by sha256sum, redirects,
-- a server that closes an idle pooled conn, a malformed status line,
-- headers past the limit, a body longer than its Content-Length, a
-- close-delimited body, a server that never answers, https.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local H = require "support.helpers"
local N = require "support.nginx"
local TP = require "support.tlspeers"

H.warmup()
H.require_tool("sha256sum", "coreutils")

local BIG = H.scale(64 * 1024 * 1024, 64 * 1024)
local T = H.scale(20, 120)

local ngx, base, idle_base
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. H.shquote(dir))
local big_file = dir .. "/big.bin"
os.execute("head -c " .. BIG .. " /dev/urandom > " .. H.shquote(big_file))

local function sha256_of_file(path)
  local out = H.sh("sha256sum " .. H.shquote(path))
  return out:match("^(%x+)")
end
local big_sha = sha256_of_file(big_file)

setup(function()
  ngx = N.start({
    files = { ["hello.txt"] = "hello from nginx\n" },
    servers = {
      [[
    location / { }
    location = /r1 { return 301 /r2; }
    location = /r2 { return 302 /hello.txt; }
    location = /loop { return 302 /loop; }
    location /up/ { dav_methods PUT; create_full_put_path on; }
    location = /big.bin { alias ]] .. big_file .. [[; }
      ]],
      "    keepalive_timeout 200ms;\n    location / { }",
    },
  })
  base = "http://127.0.0.1:" .. ngx.ports[1]
  idle_base = "http://127.0.0.1:" .. ngx.ports[2]
end)

teardown(function()
  if ngx then ngx:stop() end
  os.execute("rm -rf " .. H.shquote(dir))
  TP.cleanup()
end)

-- a raw server: handler(conn) per connection; returns the listener, "host:port"
local function raw_server(handler)
  local ln = assert(net.listen("127.0.0.1:0"))
  go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      go(function()
        c:settimeout(T)
        handler(c)
        c:close()
      end)
    end
  end)
  return ln, ln:addr()
end

-- reads one request head from a raw conn
local function read_head(c)
  local lines = {}
  while true do
    local l = c:read("l")
    if not l or l == "" then break end
    lines[#lines + 1] = l
  end
  return lines
end

describe("http client against nginx", function()
  it("reuses one keep-alive conn, as nginx's log counts", function()
    local p = net.pool()
    local before = #ngx:log()
    for _ = 1, 20 do
      local res, err = http.get(base .. "/hello.txt", { pool = p, timeout = T })
      assert.truthy(res, err)
      assert.are.equal(200, res.status)
      assert.are.equal("OK", res.reason)
      assert.are.equal("hello from nginx\n", res.body)
      assert.are.equal("17", res.headers["Content-Length"])
      assert.are.equal(res.headers["content-length"], res.headers["CONTENT-LENGTH"])
    end
    assert.is_true(H.wait_until(function()
      local n = 0
      for _ in ngx:log():sub(before + 1):gmatch("[^\n]+") do n = n + 1 end
      return n == 20
    end))
    local conns, reqs = {}, {}
    for conn, nreq in ngx:log():sub(before + 1):gmatch("(%d+) (%d+) GET /hello.txt 200") do
      conns[conn] = true
      reqs[#reqs + 1] = tonumber(nreq)
    end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(1, n)
    for i = 1, 20 do assert.are.equal(i, reqs[i]) end
    assert.are.same({ idle = 1, active = 0, dials = 1, reuses = 19 }, p:stats())
    p:close()
  end)

  it("streams a 64 MiB download; sha256sum agrees", function()
    H.no_fd_leak(function()
      local p = net.pool()
      local res = assert(http.get(base .. "/big.bin", { stream = true, timeout = T, pool = p }))
      assert.are.equal(200, res.status)
      assert.is_nil(res.body)
      local out = dir .. "/down.sha"
      local sink = assert(io.popen("sha256sum > " .. H.shquote(out), "w"))
      local n = 0
      while true do
        local d, err = res:read()
        if not d then
          assert.is_nil(err)
          break
        end
        n = n + #d
        sink:write(d)
      end
      sink:close()
      p:close()
      assert.are.equal(BIG, n)
      assert.are.equal(big_sha, H.read_file(out):match("^(%x+)"))
    end)
  end)

  it("streams a 64 MiB chunked upload (PUT to nginx's DAV); sha256sum agrees", function()
    H.no_fd_leak(function()
      local f = assert(io.open(big_file, "rb"))
      local p = net.pool()
      local res, err = http.request({
        method = "PUT", url = base .. "/up/big.bin", timeout = T, pool = p,
        body = function() return f:read(256 * 1024) end,
      })
      f:close()
      p:close()
      assert.truthy(res, err)
      assert.are.equal(201, res.status)
      assert.are.equal(big_sha, sha256_of_file(ngx.root .. "/up/big.bin"))
    end)
  end)

  it("follows redirects when asked, and only as far as asked", function()
    local res = assert(http.get(base .. "/r1", { timeout = T }))
    assert.are.equal(301, res.status)
    assert.matches("/r2$", res.headers.location)
    res = assert(http.get(base .. "/r1", { follow = 2, timeout = T }))
    assert.are.equal(200, res.status)
    assert.are.equal("hello from nginx\n", res.body)
    assert.are.equal(base .. "/hello.txt", res.url)
    local r, err = http.get(base .. "/loop", { follow = 3, timeout = T })
    assert.is_nil(r)
    assert.are.equal("too many redirects", err)
  end)

  it("survives nginx closing an idle pooled conn; the conn leaves when the close arrives", function()
    H.no_fd_leak(function()
      local p = net.pool()
      local res = assert(http.get(idle_base .. "/hello.txt", { pool = p, timeout = T }))
      assert.are.equal(200, res.status)
      assert.are.equal(1, p:stats().idle)
      -- nginx's keepalive_timeout is 200 ms: the pool drops the conn as the
      -- FIN comes, with no request in flight
      assert.is_true(H.wait_until(function() return p:stats().idle == 0 end, 5, 0.005))
      res = assert(http.get(idle_base .. "/hello.txt", { pool = p, timeout = T }))
      assert.are.equal(200, res.status)
      assert.are.same({ idle = 1, active = 0, dials = 2, reuses = 0 }, p:stats())
      p:close()
    end)
  end)

  it("makes HEAD requests without reading a body", function()
    local p = net.pool()
    local res = assert(http.request({ method = "HEAD", url = base .. "/hello.txt", pool = p }))
    assert.are.equal(200, res.status)
    assert.are.equal("", res.body)
    res = assert(http.get(base .. "/hello.txt", { pool = p }))
    assert.are.equal("hello from nginx\n", res.body)
    assert.are.equal(1, p:stats().dials)
    p:close()
  end)
end)

describe("http client against goluarun.http", function()
  local ln, addr, seen
  setup(function()
    seen = {}
    local app = http.router()
    app:get("/who", function(req, res)
      seen[req.conn] = (seen[req.conn] or 0) + 1
      res:header("Set-Cookie", { "a=1", "b=2" }):send("hi")
    end)
    app:post("/echo", function(req, res)
      local b = assert(req:body())
      res:header("X-Te", req.headers["transfer-encoding"] or "none"):send(b)
    end)
    app:get("/chunks", function(req, res)
      for i = 1, 5 do res:write("piece", i, ";") end
    end)
    app:get("/xff", function(req, res) res:send(req.headers["x-test"] or "") end)
    app:get("/head", function(req, res) -- the request head as it arrived
      local raw, pos = req:rawhead()
      res:header("X-Mixed", "M"):send(raw:sub(pos, raw:find("\r\n\r\n", pos, true) + 1))
    end)
    app:get("/proxy", function(req, res) -- a proxy's answer path: req.relay, res:relay(up)
      local up = assert(http.request({ url = addr .. "/head", stream = true,
        relay = req.query.drop or "x-mixed" }))
      if req.query.mine then res:relay(up, req.query.mine) else res:relay(up) end
      res:status(up.status):send(assert(up:readall()))
    end)
    app:get("/code", function(req, res) -- an answer with the status asked
      res:status(tonumber(req.query.c)):header("X-Up", "u"):send("")
    end)
    app:get("/forward", function(req, res) -- res:forward(up, body): one call
      local q = req.query
      local up = assert(http.request({ url = addr .. (q.c and "/code?c=" .. q.c or "/head"),
        stream = true, relay = not q.norelay and "x-mixed" or nil }))
      if q.mine then res:header("X-Mine", "1") end
      local body = assert(up:readall())
      assert(res:forward(up, body))
      local ok, err = pcall(res.forward, res, up, body) -- (sent: raises)
      assert(not ok and err:find("res:forward: the head was already sent", 1, true))
    end)
    app:get("/big", function(_, res) res:send(string.rep("b", 100000)) end)
    app:get("/forward-own", function(req, res) -- res:forward(up): the body at hand, or false
      local up = assert(http.request({ url = addr .. (req.query.big and "/big" or "/head"),
        stream = not req.query.buffered, relay = "x-mixed" }))
      local ok = res:forward(up)
      if ok == false then -- (not at hand: nothing sent)
        local body = assert(up:readall())
        res:header("X-Path", "read")
        assert(res:forward(up, body))
      else
        assert(ok == true)
        assert(up:read() == nil) -- (the body went with the answer)
      end
    end)
    app:get("/forward-misuse", function(_, res)
      local out = {}
      for _, a in ipairs({ { 5, "" }, { { status = 700, _relay = "" }, "" },
        { { status = 200.5, _relay = "" }, "" }, { { status = "200" }, "" },
        { { status = 200, _relay = "" }, 5 } }) do
        local ok, err = pcall(res.forward, res, a[1], a[2])
        out[#out + 1] = ok and "ok" or err:match("res:forward: (.*)$")
      end
      res:send(table.concat(out, ";"))
    end)
    app:get("/proxy-misuse", function(_, res)
      local out = {}
      for _, v in ipairs({ {}, { _head = 5 }, true }) do
        local ok, err = pcall(res.relay, res, v)
        out[#out + 1] = ok and "ok" or err:match("res:relay: (.*)$")
      end
      res:send(table.concat(out, ";"))
    end)
    ln = assert(http.serve("127.0.0.1:0", app, { max_body = 4 * 1024 * 1024 }))
    addr = "http://" .. ln:addr()
  end)
  teardown(function() ln:close() end)

  it("keeps one conn alive across requests, as the server counts", function()
    local p = net.pool()
    for _ = 1, 10 do
      local res = assert(http.get(addr .. "/who", { pool = p }))
      assert.are.equal("hi", res.body)
      assert.are.same({ "a=1", "b=2" }, res.headers["set-cookie"])
    end
    local nconns, total = 0, 0
    for _, n in pairs(seen) do nconns, total = nconns + 1, total + n end
    assert.are.equal(1, nconns)
    assert.are.equal(10, total)
    p:close()
  end)

  it("a streamed answer whose body came with its head gives its conn back at once", function()
    local p = net.pool()
    for k in pairs(seen) do seen[k] = nil end
    local kept, held = {}, 0
    for i = 1, 5 do -- each answer left unread: a body that came whole leaves
      -- its conn back in the pool (no state kept); one that did not (a read
      -- a byte at a time: mockeagain) holds its conn until read
      kept[i] = assert(http.get(addr .. "/who", { pool = p, stream = true }))
      assert.is_nil(rawget(kept[i], "body"))
      if i < 5 and rawget(kept[i], "_st") then held = held + 1 end
    end
    local nconns = 0
    for _ in pairs(seen) do nconns = nconns + 1 end
    assert.are.equal(1 + held, nconns)
    local got = {} -- (pieces: a byte at a time under mockeagain)
    for d in function() return kept[1]:read() end do got[#got + 1] = d end
    assert.are.equal("hi", table.concat(got))
    assert.is_nil(kept[1]:read())
    assert.are.equal("", kept[1]:readall())
    assert.are.equal("hi", kept[2]:readall())
    assert.is_nil(kept[2]:read())
    assert.is_true(kept[3]:close())
    assert.are.equal(kept[4], kept[4]:settimeout(1))
    -- a bad timeout raises, after a good one too (the check remembers the last good s)
    for _, bad in ipairs({ -1, 0, "1", 0 / 0, {} }) do
      assert.has_error(function() kept[4]:settimeout(bad) end,
        "res:settimeout: a positive number or nil expected")
      assert.are.equal(kept[4], kept[4]:settimeout(1))
    end
    assert.are.equal(kept[4], kept[4]:settimeout(nil))
    assert.are.equal("hi", kept[4]:readall())
    p:close()
  end)

  it("sends chunked bodies and reads chunked answers", function()
    local parts, i = { "alpha", "", "beta", string.rep("g", H.scale(100000, 5000)) }, 0
    local res = assert(http.post(addr .. "/echo", function()
      i = i + 1
      return parts[i]
    end, { headers = { ["X-Test"] = "1" } }))
    assert.are.equal(200, res.status)
    assert.are.equal("chunked", res.headers["x-te"])
    assert.are.equal(table.concat(parts), res.body)
    res = assert(http.post(addr .. "/echo", "plain"))
    assert.are.equal("none", res.headers["X-Te"])
    assert.are.equal("plain", res.body)
    res = assert(http.get(addr .. "/chunks"))
    assert.are.equal("piece1;piece2;piece3;piece4;piece5;", res.body)
    assert.are.equal("chunked", res.headers["transfer-encoding"])
    local s = assert(http.get(addr .. "/chunks", { stream = true }))
    local got = {}
    while true do
      local d = s:read()
      if not d then break end
      got[#got + 1] = d
    end
    assert.are.equal("piece1;piece2;piece3;piece4;piece5;", table.concat(got))
    assert.is_true(#got >= 1)
  end)

  it("sends the caller's headers; refuses CR/LF in them", function()
    local res = assert(http.get(addr .. "/xff", { headers = { ["X-Test"] = "v 1" } }))
    assert.are.equal("v 1", res.body)
    assert.has_error(function() http.get(addr .. "/xff", { headers = { ["X-Test"] = "a\r\nb: c" } }) end)
    assert.has_error(function() http.get(addr .. "/xff", { headers = { ["bad name"] = "x" } }) end)
    assert.has_error(function() http.request({}) end)
    assert.has_error(function() http.request({ url = addr, timeout = -1 }) end)
  end)

  it("checks a request's fields in one step, each bad one named, before a dial", function()
    local u = addr .. "/xff"
    local bad = {
      { nil, "req must be a table" },
      { { url = 5 }, "req.url must be a string" },
      { { url = u, method = "GE T" }, "req.method must be a token" },
      { { url = u, method = 7 }, "req.method must be a token" },
      { { url = u, method = "" }, "req.method must be a token" },
      { { url = u, body = 5 }, "req.body must be a string or a function" },
      { { url = u, timeout = "5" }, "req.timeout must be a positive number" },
      { { url = u, timeout = 0 }, "req.timeout must be a positive number" },
      { { url = u, follow = 1.5 }, "req.follow must be a non%-negative integer" },
      { { url = u, follow = -1 }, "req.follow must be a non%-negative integer" },
      { { url = u, fields = {} }, "req.fields must be a string" },
      { { url = u, headers = "x" }, "req.headers must be a table" },
      { { url = u, relay = true }, "req.relay must be a string or a table" },
    }
    for i, c in ipairs(bad) do
      local ok, err = pcall(http.request, c[1])
      assert.is_false(ok, "case " .. i)
      assert.matches("http.request: " .. c[2], err, 1, false, "case " .. i)
    end
    -- the message names the caller's line, as Lua's error(msg, level) does
    local ok, err = pcall(function() local r = http.request({ url = 5 }); return r end)
    assert.is_false(ok)
    assert.matches("http_client_spec.lua:%d+: http.request: req.url", err)
    -- fields read through __index (http.get's wrapper) are checked too
    assert.has_error(function() http.get(u, { timeout = "x" }) end)
    -- and a table that was right, then mutated, is checked again
    local req = { url = u, method = "GET" }
    assert(http.request(req))
    req.method = {}
    assert.has_error(function() http.request(req) end)
    req.method, req.follow = "GET", 1
    assert(http.request(req))
    local r, err = http.get("ftp://x/")
    assert.is_nil(r)
    assert.matches("^unsupported scheme", err)
    r, err = http.get("http://127.0.0.1:1/")
    assert.is_nil(r)
    assert.matches("^connection refused", err)
  end)

  it("req.fields go as given (checked), req.only_headers keeps framing, res:rawhead has all", function()
    local res = assert(http.get(addr .. "/head", { fields = "X-One: 1\r\nx-TWO: 2\r\n"
      .. "Connection: close\r\nContent-Length: 99\r\n" }))
    assert.matches("^GET /head HTTP/1%.1\r\n", res.body)
    assert.matches("\r\nX%-One: 1\r\nx%-TWO: 2\r\n", res.body)
    assert.matches("\r\nHost: 127%.0%.0%.1:%d+\r\n", res.body) -- added: none given
    assert.matches("\r\nUser%-Agent: goluarun\r\n", res.body)
    assert.is_nil(res.body:lower():find("connection", 1, true)) -- hop-by-hop: left out
    assert.is_nil(res.body:lower():find("content-length", 1, true)) -- the client frames the body
    res = assert(http.get(addr .. "/head", { fields = "Host: h.example\r\nUser-Agent: me\r\n" }))
    assert.matches("\r\nHost: h%.example\r\nUser%-Agent: me\r\n", res.body)
    assert.is_nil(res.body:find("goluarun", 1, true))
    res = assert(http.get(addr .. "/head", { fields = "" }))
    assert.matches("\r\nHost: ", res.body)
    -- only_headers: values of the named fields and of framing; the head whole
    local keep = { ["x-mixed"] = true }
    res = assert(http.get(addr .. "/head", { only_headers = keep, stream = true }))
    assert.are.equal("M", res.headers["X-Mixed"])
    assert.truthy(res.headers["content-length"])
    assert.is_nil(res.headers["content-type"])
    assert.is_nil(res.headers.date)
    local raw, pos = res:rawhead()
    assert.are.equal(1, pos)
    assert.matches("^HTTP/1%.1 200 OK\r\n.*\r\nContent%-Type: text/plain", raw:sub(pos))
    assert.are.equal("1.1", res.version) -- (Res's default: not a key of res)
    assert.is_nil(rawget(res, "version"))
    local got = {}
    for piece in function() return res:read() end do got[#got + 1] = piece end
    assert.matches("^GET /head", table.concat(got))
    -- misuse raises
    for _, f in ipairs({ 5, "no colon\r\n", "A: 1\r\nB: \0\r\n", "A: 1\r\n\r\nGET /x HTTP/1.1\r\n",
      "A: 1", "GET / HTTP/1.1\r\nA: 1\r\n" }) do
      assert.has_error(function() http.get(addr .. "/head", { fields = f }) end, nil, tostring(f))
    end
    assert.has_error(function() http.get(addr .. "/head", { only_headers = "x" }) end)
    assert.has_error(function() http.get(addr .. "/head", { only_headers = { ["X-Up"] = true } }) end)
  end)

  it("req.relay makes an answer's relayed lines as its head is read; res:relay(up) sends them", function()
    local res = assert(http.get(addr .. "/proxy"))
    assert.are.equal(200, res.status)
    assert.is_nil(res.headers["x-mixed"]) -- dropped by req.relay's set
    assert.matches("^text/plain", res.headers["content-type"]) -- the upstream's, once
    assert.are.equal("string", type(res.headers.date)) -- one Date: the upstream's
    assert.matches("^GET /head HTTP/1%.1\r\n", res.body)
    res = assert(http.get(addr .. "/proxy?drop=date"))
    assert.are.equal("M", res.headers["x-mixed"])
    assert.are.equal("string", type(res.headers.date)) -- the server's own, once
    -- a drop given to res:relay: the head is relayed again with it
    res = assert(http.get(addr .. "/proxy?mine=content-type"))
    assert.are.equal("M", res.headers["x-mixed"])
    assert.is_nil(res.headers["content-type"]) -- dropped, and none of the server's
    -- misuse
    res = assert(http.get(addr .. "/proxy-misuse"))
    assert.are.equal("a head (string) or a client response expected;"
      .. "a head (string) or a client response expected;a head (string) expected", res.body)
    assert.has_error(function() http.get(addr .. "/head", { relay = 5 }) end,
      "http.request: req.relay must be a string or a table")
    -- res:forward(up, body): status, the relayed lines and the body at once
    res = assert(http.get(addr .. "/forward"))
    assert.are.equal(200, res.status)
    assert.is_nil(res.headers["x-mixed"])
    assert.matches("^text/plain", res.headers["content-type"])
    assert.are.equal("string", type(res.headers.date))
    assert.matches("^GET /head HTTP/1%.1\r\n", res.body)
    assert.are.equal(tonumber(res.headers["content-length"]), #res.body)
    -- no lines made by the read (no req.relay), a field of the handler's:
    -- res:relay(up) and res:send's way, the same answer
    for _, q in ipairs({ "?norelay=1", "?mine=1" }) do
      res = assert(http.get(addr .. "/forward" .. q))
      assert.are.equal(200, res.status)
      assert.matches("^GET /head HTTP/1%.1\r\n", res.body)
      assert.are.equal(q == "?mine=1" and "1" or nil, res.headers["x-mine"])
      assert.are.equal(q == "?norelay=1" and "M" or nil, res.headers["x-mixed"])
    end
    for _, c in ipairs({ 201, 404, 204, 304 }) do
      res = assert(http.get(addr .. "/forward?c=" .. c))
      assert.are.equal(c, res.status)
      assert.are.equal("u", res.headers["x-up"])
      assert.are.equal("", res.body)
    end
    -- no body given: the one that came whole, a buffered one, else false
    for _, q in ipairs({ "", "?buffered=1", "?big=1" }) do
      res = assert(http.get(addr .. "/forward-own" .. q))
      assert.are.equal(200, res.status)
      if q == "?big=1" then -- (never whole: past the whole-body cap)
        assert.are.equal("read", res.headers["x-path"])
      elseif q == "?buffered=1" or not os.getenv("GOLUA_MOCKEAGAIN") then
        -- (whole with its head: a small answer on loopback; under
        -- mockeagain its bytes come a few at a time, so it may not be)
        assert.is_nil(res.headers["x-path"])
      end
      if q == "?big=1" then
        assert.are.equal(string.rep("b", 100000), res.body)
      else
        assert.matches("^GET /head HTTP/1%.1\r\n", res.body)
      end
    end
    res = assert(http.get(addr .. "/forward-misuse"))
    assert.are.equal("a client response expected;"
      .. "the response's status must be an integer in 200..599;"
      .. "the response's status must be an integer in 200..599;"
      .. "the response's status must be an integer in 200..599;body must be a string", res.body)
    -- httpread.readresponse itself: the relayed lines and seen bits after
    -- the body; a bad relay argument raises before any read
    local rr = require("goluarun.httpread").readresponse
    local c = assert(net.dial(ln:addr()))
    assert.has_error(function() rr(c, 16384, 100, nil, false, 65536, 5) end)
    assert.has_error(function() rr(c, 16384, 100, nil, false, 65536, nil, "mt") end,
      "bad argument #8 to 'rr' (table expected, got string)")
    assert(c:write("GET /who HTTP/1.1\r\nHost: x\r\n\r\n"))
    local mt = {}
    local r = table.pack(rr(c, 16384, 100, nil, false, 65536, "date,set-cookie", mt))
    assert.are.equal(11, r.n)
    assert.are.equal(mt, getmetatable(r[4])) -- (the headers table's, set in C)
    assert.are.equal(200, r[1])
    assert.are.equal("length", r[6])
    assert.are.equal(2, r[7])
    local body = r[9] or "" -- (not whole when it arrives a byte at a time: mockeagain)
    while #body < 2 do body = body .. assert(c:read(2 - #body)) end
    assert.are.equal("hi", body)
    assert.matches("^Content%-Type: text/plain", r[10])
    assert.is_nil(r[10]:lower():find("date:", 1, true))
    assert.is_nil(r[10]:lower():find("set-cookie", 1, true))
    assert.are.equal("number", math.type(r[11]) and "number")
    assert(c:write("GET /who HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.are.equal(9, select("#", rr(c, 16384, 100, nil, false, 65536))) -- none asked
    c:close()
  end)

  it("talks https with verification on", function()
    local pki = TP.pki("ec")
    local app = function(req, res) res:send("secure " .. req.conn:tlsinfo().version) end
    local sln = assert(http.serve("127.0.0.1:0", app, { tls = TP.server_tls(pki) }))
    finally(function() sln:close() end)
    local url = "https://localhost:" .. sln:addr():match(":(%d+)$") .. "/"
    H.no_fd_leak(function()
      local p = net.pool()
      local res, err = http.get(url, { tls = { ca = pki.ca }, pool = p, timeout = T })
      assert.truthy(res, err)
      assert.matches("^secure TLSv1", res.body)
      res = assert(http.get(url, { tls = { ca = pki.ca }, pool = p, timeout = T }))
      assert.are.equal(1, p:stats().reuses)
      local r
      r, err = http.get(url, { pool = p, timeout = T }) -- the system store: unknown CA
      assert.is_nil(r)
      assert.matches("^certificate verify failed", err)
      p:close()
    end)
  end)
end)

describe("http client against broken servers", function()
  it("reports a malformed status line", function()
    local ln, a = raw_server(function(c)
      read_head(c)
      c:write("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local r, err = http.get("http://" .. a .. "/", { timeout = T })
      assert.is_nil(r)
      assert.are.equal("bad response: malformed status line", err)
    end)
    local ln2, a2 = raw_server(function(c)
      read_head(c)
      c:write("SMTP ready\r\n")
      c:read("l")
    end)
    finally(function() ln2:close() end)
    local r, err = http.get("http://" .. a2 .. "/", { timeout = T })
    assert.is_nil(r)
    assert.are.equal("bad response: malformed status line", err)
  end)

  it("stops at headers past the limit", function()
    local ln, a = raw_server(function(c)
      read_head(c)
      c:write("HTTP/1.1 200 OK\r\n")
      for i = 1, H.scale(2000, 150) do
        if not c:write("X-Filler-", i, ": ", string.rep("v", 20), "\r\n") then return end
      end
      c:write("\r\n")
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local r, err = http.get("http://" .. a .. "/", { timeout = T, max_header_bytes = 2048 })
      assert.is_nil(r)
      assert.are.equal("headers too large", err) -- past 2048 bytes
      r, err = http.get("http://" .. a .. "/", { timeout = T, max_header_bytes = 1 << 20 })
      assert.is_nil(r)
      assert.are.equal("headers too large", err) -- more fields than max_headers (100)
    end)
  end)

  it("keeps to Content-Length and does not pool a conn with bytes after the body", function()
    local ln, a = raw_server(function(c)
      read_head(c)
      c:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
      read_head(c)
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local res = assert(http.get("http://" .. a .. "/", { pool = p, timeout = T }))
      assert.are.equal("hello", res.body)
      -- refused at put when EXTRA is there; under GOLUA_MOCKEAGAIN it may come
      -- later, one byte at a time: then its first byte drops the idle conn
      assert.is_true(H.wait_until(function() return p:stats().idle == 0 end))
      assert.are.same({ idle = 0, active = 0, dials = 1, reuses = 0 }, p:stats())
    end)
  end)

  it("reads a close-delimited body, and a body cut short is an error", function()
    local ln, a = raw_server(function(c)
      local head = read_head(c)
      if head[1]:match("^GET /short") then
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
      else
        c:write("HTTP/1.0 200 OK\r\n\r\nuntil the end")
      end
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local res = assert(http.get("http://" .. a .. "/", { pool = p, timeout = T }))
      assert.are.equal("until the end", res.body)
      assert.are.equal("1.0", res.version)
      local r, err = http.get("http://" .. a .. "/short", { pool = p, timeout = T })
      assert.is_nil(r)
      assert.are.equal("bad response: body ended early", err)
      assert.are.equal(0, p:stats().idle)
    end)
  end)

  it("times out a server that never answers, and frees the fd", function()
    local held = {}
    local ln, a = raw_server(function(c)
      held[#held + 1] = c
      read_head(c)
      c:read() -- never answers
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local t0 = go.now()
      local r, err = http.get("http://" .. a .. "/", { pool = p, timeout = 0.2 })
      local dt = go.now() - t0
      assert.is_nil(r)
      assert.are.equal("timeout", err)
      assert.is_true(dt >= 0.18 and dt < 2, "took " .. dt)
      assert.are.same({ idle = 0, active = 0, dials = 1, reuses = 0 }, p:stats())
      for _, c in ipairs(held) do c:close() end
    end)
  end)

  it("reads the answer head in one operation: cut, slow, odd heads; clear errors, no fd left", function()
    local ANSWER = {
      ["/trunc"] = "HTTP/1.1 200 OK\r\nContent-Le",
      ["/v2"] = "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
      ["/badcl"] = "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
      ["/badfield"] = "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
      ["/1xx"] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      ["/samecl"] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
      ["/twocl"] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
      ["/extra"] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
      ["/lf"] = "HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\nok",
    }
    local held = {}
    local ln, a = raw_server(function(c)
      local target = read_head(c)[1]:match("^GET (%S+)")
      if target == "/slow" then
        held[#held + 1] = c
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n") -- and no more
        c:read()
        return
      end
      c:write(ANSWER[target])
      if target == "/trunc" then return end -- closed mid-head
      read_head(c) -- (until the client closes)
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      local function get(path, stream)
        return http.get("http://" .. a .. path, { pool = p, timeout = T, stream = stream })
      end
      local function fails(path, want)
        local r, err = get(path)
        assert.is_nil(r, path)
        assert.are.equal(want, err, path)
      end
      fails("/trunc", "bad response: truncated head")
      fails("/v2", "bad response: HTTP/2.0")
      fails("/badcl", "bad response: bad Content-Length")
      fails("/badfield", "bad response: malformed header")
      fails("/twocl", "bad response: conflicting Content-Length")
      local t0 = go.now()
      local r, err = http.get("http://" .. a .. "/slow", { pool = p, timeout = 0.2 })
      assert.is_nil(r)
      assert.are.equal("timeout", err)
      assert.is_true(go.now() - t0 < 2)
      for _, c in ipairs(held) do c:close() end
      r = assert(get("/1xx"))
      assert.are.equal(200, r.status)
      assert.are.equal("ok", r.body)
      assert.are.equal("ok", assert(get("/samecl")).body) -- a repeated field: decided in Lua
      r = assert(get("/lf"))
      assert.are.equal("ok", r.body)
      -- streamed: the body that came with the head, whole; bytes after it
      -- keep the conn out of the pool
      r = assert(get("/1xx", true))
      assert.are.equal("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", (r:rawhead()))
      assert.are.equal("ok", r:readall())
      assert.is_nil(r:read())
      r = assert(get("/extra", true))
      assert.are.equal("hello", r:readall())
      assert.is_true(H.wait_until(function() return p:stats().idle == 0 end))
      p:close()
    end)
  end)

  it("sends a request again on a fresh conn when a reused one was closed under it", function()
    local n = 0
    local ln, a = raw_server(function(c)
      n = n + 1
      read_head(c)
      c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
      -- answers once, then closes when the next request comes
      read_head(c)
    end)
    finally(function() ln:close() end)
    H.no_fd_leak(function()
      local p = net.pool()
      for _ = 1, 3 do
        local res, err = http.get("http://" .. a .. "/", { pool = p, timeout = T })
        assert.truthy(res, err)
        assert.are.equal("ok", res.body)
      end
      assert.are.equal(3, n)
      p:close()
    end)
  end)
end)
