-- http_proxy_spec: http.proxy of goluarun.http (lua/goluarun/http_proxy.lua)
-- driven through a proxy server of this VM (http.serve whose handler calls
-- http.proxy) in front of upstreams this spec starts: a goluarun.http
-- server of this VM, a raw upstream (net.listen, hand-written answers: the
-- odd and broken ones), a port that refuses, a real nginx (support.nginx,
-- driven by curl), and a goluarun.http server over TLS. The client side is
-- raw too (net.dial, hand-written requests) so that exact fields and cuts
-- are seen as they go on the wire.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local H = require "support.helpers"
local N = require "support.nginx"
local TP = require "support.tlspeers"

H.warmup()
H.require_tool("curl", "curl")
H.require_tool("cmp", "diffutils")

local T = H.scale(10, 60)
-- buffer_body of the ups that test it (one-byte moves under mockeagain:
-- smaller sizes, the same paths)
local BUF = H.scale(65536, 4096)
local BIG = H.scale(300 * 1024, 3 * BUF)             -- > BUF: streamed
local NGX_BIG = H.scale(1024 * 1024, 4 * BUF)
local SMALL_BODY = H.payload(1000, 1)

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. H.shquote(dir))

local closers = {} -- listeners and pools closed at teardown

---------------------------------------------------------------------------
-- The goluarun upstream
---------------------------------------------------------------------------

local app_conns, app_nconns = setmetatable({}, { __mode = "k" }), 0
local got = {} -- what the upstream received last: head, body
local BIG_ANSWER = H.payload(BIG, 2)

local function head_of(req)
  local raw, pos = req:rawhead()
  local e = raw:find("\r\n\r\n", pos, true)
  return raw:sub(pos, e + 1)
end

local function app(req, res)
  if not app_conns[req.conn] then
    app_conns[req.conn] = true
    app_nconns = app_nconns + 1
  end
  local path = req.path
  if path == "/head" then return res:send(head_of(req)) end
  if path == "/body" then
    got.head = head_of(req)
    local b, err = req:body()
    got.body = b or ("error: " .. tostring(err))
    return res:send("got " .. (b and #b or -1))
  end
  if path == "/big" then return res:send(BIG_ANSWER) end
  if path == "/chunked" then
    for i = 1, 5 do
      res:write("piece" .. i .. ";")
      go.sleep(0.002)
    end
    return
  end
  if path == "/tls" then
    return res:send("secure " .. tostring(req.conn:tlsinfo() and req.conn:tlsinfo().version)
      .. "\n" .. head_of(req))
  end
  res:send("app " .. req.target)
end

---------------------------------------------------------------------------
-- The raw upstream: hand-written answers by path
---------------------------------------------------------------------------

local raw_accepts = 0
local raw_heads = {}   -- the request heads it read, in order
local never_freed = false
local RAW = {}         -- path -> function(c) -> true to keep the conn

local function read_head(c)
  local lines = {}
  while true do
    local l = c:read("l")
    if not l or l == "" then break end
    lines[#lines + 1] = l
  end
  return lines
end

RAW["/fields"] = function(c)
  c:write("HTTP/1.1 200 OK\r\nX-Up-Case: Yes\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
    .. "Server: rawup\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello")
  return true
end
RAW["/204"] = function(c)
  c:write("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
  return true
end
RAW["/304"] = function(c)
  c:write("HTTP/1.1 304 Not Modified\r\nETag: \"e1\"\r\n\r\n")
  return true
end
RAW["/close"] = function(c)
  c:write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nclosed")
  return false
end
RAW["/http10"] = function(c)
  c:write("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold")
  return false
end
RAW["/http10eof"] = function(c) -- a body delimited by the close
  c:write("HTTP/1.0 200 OK\r\nX-Old: 1\r\n\r\nuntil the end")
  return false
end
RAW["/continue"] = function(c)
  c:write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
  return true
end
RAW["/twocl"] = function(c)
  c:write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd")
  return true
end
RAW["/slow"] = function(c) -- the body after the head, later
  c:write("HTTP/1.1 200 OK\r\nX-Slow: 1\r\nContent-Length: 9\r\n\r\n")
  go.sleep(0.05)
  c:write("slow body")
  return true
end
RAW["/notype"] = function(c)
  c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nnt")
  return true
end
RAW["/never"] = function(c) -- reads, never answers: waits for the proxy's close
  local d, err = c:read()
  never_freed = d == nil and err ~= "timeout"
  return false
end
RAW["/drain"] = function(c) -- reads a chunked body to its end, answers nothing
  local tail = ""
  while not tail:find("\r\n0\r\n\r\n$") do
    local d = c:read()
    if not d then break end
    tail = (tail .. d):sub(-16)
  end
  return false
end
RAW["/badline"] = function(c)
  c:write("HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")
  return false
end
RAW["/101"] = function(c)
  c:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
  return false
end
RAW["/600"] = function(c)
  c:write("HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n")
  return false
end
RAW["/cut"] = function(c) -- a streamed answer cut mid-body
  c:write("HTTP/1.1 200 OK\r\nContent-Length: " .. BIG .. "\r\n\r\n", H.payload(1000, 3))
  go.sleep(0.02)
  return false
end
RAW["/cutchunked"] = function(c)
  c:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
  go.sleep(0.02)
  return false
end

local function raw_upstream()
  local ln = assert(net.listen("127.0.0.1:0"))
  closers[#closers + 1] = ln
  go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      raw_accepts = raw_accepts + 1
      go(function()
        c:settimeout(T)
        while true do
          local lines = read_head(c)
          if #lines == 0 then break end
          raw_heads[#raw_heads + 1] = lines
          local f = RAW[lines[1]:match("^%S+ (%S+)")]
          if not f or not f(c) then break end
        end
        c:close()
      end)
    end
  end)
  return ln:addr()
end

---------------------------------------------------------------------------
-- The proxy and its client
---------------------------------------------------------------------------

local handler                -- the proxy's handler of the running test
local results = {}           -- what http.proxy returned, in order
local proxy_addr

-- a handler proxying to `up` (target: a function of req), answering 502
-- itself when nothing went out
local function proxy_to(up, target)
  handler = function(req, res)
    local ok, err = http.proxy(req, res, up, target and target(req))
    results[#results + 1] = { ok, err }
    if ok == nil and not err:find("^request body") then
      res:status(502):send("bad gateway: " .. err .. "\n")
    end
  end
end

local function result(n)
  assert.is_true(H.wait_until(function() return #results >= n end, T), "no result " .. n)
  return results[n][1], results[n][2]
end

local function client()
  local c = assert(net.dial(proxy_addr, T))
  c:settimeout(T)
  return c
end

-- one answer from a raw conn: {status, line, lines, h (lower-case names ->
-- list of values), head, body, cut (the body ended short)}
local function read_answer(c, no_body)
  local line, err = c:read("l")
  if not line then return nil, "no answer: " .. tostring(err) end
  local a = { line = line, status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)")), lines = {}, h = {} }
  while true do
    local l, herr = c:read("l")
    if not l then return nil, "head: " .. tostring(herr) end
    if l == "" then break end
    a.lines[#a.lines + 1] = l
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    k = k:lower()
    a.h[k] = a.h[k] or {}
    table.insert(a.h[k], v)
  end
  a.head = table.concat(a.lines, "\r\n") .. "\r\n"
  local s = a.status
  if no_body or s == 204 or s == 304 or (s >= 100 and s < 200) then
    a.body = ""
    return a
  end
  if a.h["transfer-encoding"] then
    local parts = {}
    while true do
      local size = c:read("l")
      local n = size and tonumber(size:match("^%x+"), 16)
      if not n then a.cut = true break end
      if n == 0 then
        assert(c:read("l") == "")
        break
      end
      local d, _, partial = c:read(n)
      if not d then
        parts[#parts + 1] = partial
        a.cut = true
        break
      end
      parts[#parts + 1] = d
      assert(c:read("l") == "")
    end
    a.body = table.concat(parts)
  elseif a.h["content-length"] then
    local n = tonumber(a.h["content-length"][1])
    local d, _, partial = c:read(n)
    if d then a.body = d else a.body, a.cut = partial or "", true end
  else
    local d, _, partial = c:read("a")
    a.body = d or partial
  end
  return a
end

local function request(c, method, target, fields, body)
  assert(c:write(method, " ", target, " HTTP/1.1\r\nHost: proxy.test\r\n", fields or "", "\r\n",
    body or ""))
  return assert(read_answer(c, method == "HEAD"))
end

local function get(c, target, fields) return request(c, "GET", target, fields) end

local function has_line(a, pattern)
  for _, l in ipairs(a.lines) do
    if l:match(pattern) then return true end
  end
  return false
end

---------------------------------------------------------------------------

local app_addr, raw_addr, ngx, tls_addr, pki

setup(function()
  local ln = assert(http.serve("127.0.0.1:0", app, { max_body = 64 * 1024 * 1024 }))
  closers[#closers + 1] = ln
  app_addr = ln:addr()
  raw_addr = raw_upstream()
  local pln = assert(http.serve("127.0.0.1:0", function(req, res) return handler(req, res) end,
    { max_body = 64 * 1024 * 1024 }))
  closers[#closers + 1] = pln
  proxy_addr = pln:addr()
end)

teardown(function()
  if ngx then ngx:stop() end
  for _, x in ipairs(closers) do x:close() end
  net.defaultpool:close()
  os.execute("rm -rf " .. H.shquote(dir))
  TP.cleanup()
end)

local function pool()
  local p = net.pool()
  closers[#closers + 1] = p
  return p
end

describe("http.proxy, fast path to a goluarun upstream", function()
  it("relays the client's fields minus hop-by-hop ones, with X-Forwarded-*", function()
    local up = { addr = app_addr, pool = pool(), timeout = T }
    proxy_to(up)
    local c = client()
    local a = request(c, "GET", "/head?x=1", "X-Mixed-Case: V\r\n"
      .. "Connection: keep-alive, X-Private\r\nX-Private: p\r\nKeep-Alive: 9\r\nTE: trailers\r\n"
      .. "Upgrade: foo\r\nProxy-Authorization: Basic x\r\nProxy-Connection: keep-alive\r\n"
      .. "X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: forged\r\nX-Forwarded-Host: forged\r\n"
      .. "accept: */*\r\n")
    assert.are.equal(200, a.status)
    local up_head = a.body
    assert.matches("^GET /head%?x=1 HTTP/1%.1\r\n", up_head)
    assert.matches("\r\nHost: proxy%.test\r\n", up_head)
    assert.matches("\r\nX%-Mixed%-Case: V\r\n", up_head)
    assert.matches("\r\naccept: %*/%*\r\n", up_head) -- lower case kept too
    assert.matches("\r\nX%-Forwarded%-For: 10%.1%.2%.3, 127%.0%.0%.1\r\n", up_head)
    assert.matches("\r\nX%-Forwarded%-Proto: http\r\n", up_head)
    assert.matches("\r\nX%-Forwarded%-Host: proxy%.test\r\n", up_head)
    local lower = up_head:lower()
    for _, gone in ipairs({ "x-private", "keep-alive", "\nte:", "upgrade", "proxy-",
      "connection:", "forged" }) do
      assert.is_nil(lower:find(gone, 1, true), gone)
    end
    local _, n = lower:gsub("x%-forwarded%-for", "")
    assert.are.equal(1, n)
    -- without a received X-Forwarded-For: the client's address alone
    a = get(c, "/head")
    assert.matches("\r\nX%-Forwarded%-For: 127%.0%.0%.1\r\n", a.body)
    c:close()
    local ok, err = result(#results)
    assert.is_true(ok, err)
  end)

  it("relays the upstream's fields as sent, with its own Date and no Server", function()
    local up = { addr = raw_addr, pool = pool() }
    proxy_to(up)
    local c = client()
    local a = get(c, "/fields")
    assert.are.equal("HTTP/1.1 200 OK", a.line)
    assert.are.equal("hello", a.body)
    assert.is_true(has_line(a, "^X%-Up%-Case: Yes$"))
    assert.are.same({ "a=1", "b=2" }, a.h["set-cookie"])
    assert.are.same({ "5" }, a.h["content-length"])
    assert.are.equal(1, #a.h.date)
    assert.are_not.equal("Mon, 01 Jan 2001 00:00:00 GMT", a.h.date[1])
    assert.matches("GMT$", a.h.date[1])
    assert.is_nil(a.h.server and a.h.server[1] == "rawup" or nil)
    assert.is_nil(a.h["content-type"])
    a = get(c, "/notype")
    assert.are.equal("nt", a.body)
    assert.is_nil(a.h["content-type"])
    c:close()
  end)

  it("reuses one upstream conn for many requests over one client conn", function()
    local p = pool()
    local up = { addr = app_addr, pool = p }
    proxy_to(up)
    local before, n0 = app_nconns, #results
    local c = client()
    local N = 20
    for i = 1, N do
      local a = get(c, "/k?i=" .. i)
      assert.are.equal(200, a.status)
      assert.are.equal("app /k?i=" .. i, a.body)
    end
    c:close()
    assert.are.equal(before + 1, app_nconns) -- as the upstream counts its conns
    local s = p:stats()
    assert.are.equal(1, s.dials)
    assert.are.equal(N - 1, s.reuses)
    for i = n0 + 1, n0 + N do assert.is_true(result(i)) end
  end)

  it("forwarded = false adds no X-Forwarded-*; drop drops fields (string and set)", function()
    local c = client()
    proxy_to({ addr = app_addr, forwarded = false })
    local a = get(c, "/head", "X-Keep: 1\r\n")
    assert.matches("\r\nX%-Keep: 1\r\n", a.body)
    assert.is_nil(a.body:lower():find("x-forwarded", 1, true))
    proxy_to({ addr = app_addr, drop = "x-a,x-b" })
    a = get(c, "/head", "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n")
    assert.is_nil(a.body:find("X-A:", 1, true))
    assert.is_nil(a.body:find("X-B:", 1, true))
    assert.matches("\r\nX%-C: 3\r\n", a.body)
    assert.matches("\r\nX%-Forwarded%-For: 127%.0%.0%.1\r\n", a.body)
    proxy_to({ addr = app_addr, drop = { ["x-c"] = true, ["x-a"] = false } })
    a = get(c, "/head", "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n")
    assert.matches("\r\nX%-A: 1\r\n", a.body)
    assert.matches("\r\nX%-B: 2\r\n", a.body)
    assert.is_nil(a.body:find("X-C:", 1, true))
    c:close()
  end)
end)

describe("http.proxy's arguments", function()
  it("sends the given target (a stripped prefix)", function()
    proxy_to({ addr = app_addr }, function(req) return (req.target:gsub("^/app", "")) end)
    local c = client()
    local a = get(c, "/app/head?q=1")
    assert.matches("^GET /head%?q=1 HTTP/1%.1\r\n", a.body)
    a = get(c, "/app/x")
    assert.are.equal("app /x", a.body)
    c:close()
  end)

  it("raises on misuse with http.proxy: messages", function()
    local good = { addr = app_addr }
    local msgs
    handler = function(req, res)
      msgs = {}
      local function try(...)
        local ok, e = pcall(function(...)
          local r = http.proxy(req, res, ...) -- (not a tail call: its line is the position)
          return r
        end, ...)
        msgs[#msgs + 1] = ok and "no error" or tostring(e)
      end
      try(good, "head")
      try(good, 5)
      try("127.0.0.1:1")
      try({ addr = "nope" })
      try({ addr = "127.0.0.1:1", timeout = -1 })
      try({ addr = "127.0.0.1:1", body_timeout = "x" })
      try({ addr = "127.0.0.1:1", drop = "X-Upper" })
      try({ addr = "127.0.0.1:1", drop = { ["X-A"] = true } })
      try({ addr = "127.0.0.1:1", drop = 5 })
      try({ addr = "127.0.0.1:1", buffer_body = 1.5 })
      try({ addr = "127.0.0.1:1", buffer_body = -1 })
      try({ addr = "127.0.0.1:1", forwarded = "no" })
      try({ addr = "127.0.0.1:1", tls = "yes" })
      try(good, nil, "x")
      res:send("done")
      try(good) -- the answer went out already
    end
    local c = client()
    local a = get(c, "/m")
    c:close()
    assert.are.equal("done", a.body)
    local want = {
      "http.proxy: target must be a request target",
      "http.proxy: target must be a request target",
      "http.proxy: up must be a table",
      "http.proxy: up.addr must be \"host:port\"",
      "http.proxy: up.timeout must be a positive number",
      "http.proxy: up.body_timeout must be a positive number",
      "http.proxy: up.drop must be lower-case names separated by commas",
      "http.proxy: up.drop: keys must be lower-case names",
      "http.proxy: up.drop must be a string or a set table",
      "http.proxy: up.buffer_body must be a non-negative integer",
      "http.proxy: up.buffer_body must be a non-negative integer",
      "http.proxy: up.forwarded must be a boolean",
      "http.proxy: up.tls must be a boolean or a TLS config table",
      "http.proxy: timeout must be a number",
      "http.proxy: the response's head was already sent",
    }
    assert.are.equal(#want, #msgs)
    for i, w in ipairs(want) do
      -- the position is the caller's line, not one inside http_proxy.lua
      assert.truthy(msgs[i]:find("^[^:]*http_proxy_spec%.lua:%d+: "), i .. ": " .. msgs[i])
      assert.truthy(msgs[i]:find(w, 1, true), i .. ": " .. msgs[i])
    end
  end)
end)

describe("http.proxy's request bodies", function()
  it("sends a buffered body whole, again to a second upstream after a refusal", function()
    local refused = { addr = H.free_addr() }
    local good = { addr = app_addr }
    local r
    handler = function(req, res)
      r = {}
      r[1], r[2] = http.proxy(req, res, refused)
      r[3], r[4] = http.proxy(req, res, good)
    end
    local c = client()
    local a = request(c, "POST", "/body", "Content-Length: " .. #SMALL_BODY .. "\r\n", SMALL_BODY)
    c:close()
    assert.are.equal("got " .. #SMALL_BODY, a.body)
    assert.is_nil(r[1])
    assert.matches("^connection refused: ", r[2])
    assert.is_true(r[3], r[4])
    assert.are.equal(SMALL_BODY, got.body)
    assert.matches("\r\nContent%-Length: " .. #SMALL_BODY .. "\r\n", got.head)
  end)

  it("streams a larger body and a chunked one intact; a second try gets nil", function()
    local r
    local up = { addr = app_addr, buffer_body = BUF }
    local drains = { addr = raw_addr, buffer_body = BUF } -- (takes it, never answers)
    handler = function(req, res)
      r = {}
      r[1], r[2] = http.proxy(req, res, up)
    end
    local body = H.payload(BIG, 4)
    local c = client()
    local a = request(c, "PUT", "/body", "Content-Length: " .. BIG .. "\r\n", body)
    assert.are.equal("got " .. BIG, a.body)
    assert.is_true(r[1], r[2])
    assert.is_true(got.body == body, "streamed body differs")
    -- a streamed body that went to an upstream which failed: no second try
    handler = function(req, res)
      r = {}
      r[1], r[2] = http.proxy(req, res, drains, "/drain")
      r[3], r[4] = http.proxy(req, res, up)
      res:status(502):send("no\n")
    end
    a = request(c, "PUT", "/body", "Content-Length: " .. BIG .. "\r\n", body)
    assert.are.equal(502, a.status)
    assert.is_nil(r[1])
    assert.are.equal("string", type(r[2]))
    assert.is_nil(r[3])
    assert.are.equal("request body already sent", r[4])
    assert.matches("\r\nTransfer%-Encoding: chunked\r\n", got.head)
    -- a chunked one, in pieces of odd sizes
    local parts, pos = {}, 1
    for _, n in ipairs({ 1, 100, BIG // 2, BIG // 4 }) do
      local d = body:sub(pos, pos + n - 1)
      parts[#parts + 1] = string.format("%x\r\n%s\r\n", #d, d)
      pos = pos + n
    end
    local sent = body:sub(1, pos - 1)
    handler = function(req, res) r = { http.proxy(req, res, up) } end
    a = request(c, "POST", "/body", "Transfer-Encoding: chunked\r\n",
      table.concat(parts) .. "0\r\n\r\n")
    c:close()
    assert.are.equal("got " .. #sent, a.body)
    assert.is_true(got.body == sent, "chunked body differs")
    local _, n = got.head:lower():gsub("transfer%-encoding", "")
    assert.are.equal(1, n)
  end)

  it("gives nil, \"request body: ...\" when the client's body fails", function()
    H.no_fd_leak(function()
      local n0 = #results
      proxy_to({ addr = app_addr })
      local c = client()
      assert(c:write("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort"))
      c:closewrite()
      local ok, err = result(n0 + 1)
      assert.is_nil(ok)
      assert.matches("^request body: ", err)
      -- the server answers 400 itself, or closes
      local a = read_answer(c)
      if a then assert.are.equal(400, a.status) end
      c:close()
    end)
  end)
end)

describe("http.proxy's answers", function()
  it("HEAD, 204 and 304 go without a body; the conn goes on", function()
    proxy_to({ addr = raw_addr })
    local c = client()
    local a = request(c, "HEAD", "/fields")
    assert.are.equal(200, a.status)
    assert.are.same({ "5" }, a.h["content-length"])
    a = get(c, "/204")
    assert.are.equal(204, a.status)
    assert.are.same({ "1" }, a.h["x-a"])
    assert.is_nil(a.h["content-length"])
    assert.is_nil(a.h["transfer-encoding"])
    a = get(c, "/304")
    assert.are.equal(304, a.status)
    assert.are.same({ "\"e1\"" }, a.h.etag)
    a = get(c, "/fields") -- nothing left over from the answers above
    assert.are.equal("hello", a.body)
    c:close()
    -- an HTTP/1.0 client's HEAD (the server's answer with its own fields)
    c = client()
    assert(c:write("HEAD /fields HTTP/1.0\r\n\r\n"))
    a = assert(read_answer(c, true))
    assert.are.equal(200, a.status)
    assert.are.same({ "5" }, a.h["content-length"])
    assert.are.same({ "Yes" }, a.h["x-up-case"])
    local d, err = c:read()
    assert.is_nil(d)
    assert.are_not.equal("timeout", err)
    c:close()
  end)

  it("streams a chunked answer and one bigger than buffer_body intact", function()
    proxy_to({ addr = app_addr, buffer_body = BUF })
    local c = client()
    local a = get(c, "/chunked")
    assert.are.equal("piece1;piece2;piece3;piece4;piece5;", a.body)
    assert.is_nil(a.cut)
    assert.are.same({ "chunked" }, a.h["transfer-encoding"]) -- (no length to keep)
    a = get(c, "/big")
    assert.is_nil(a.cut)
    assert.are.equal(#BIG_ANSWER, #a.body)
    assert.is_true(a.body == BIG_ANSWER)
    -- streamed (past buffer_body) with the upstream's length kept, as nginx
    -- does: a download's size is known to the client
    assert.are.same({ tostring(#BIG_ANSWER) }, a.h["content-length"])
    assert.is_nil(a.h["transfer-encoding"])
    a = get(c, "/x") -- the client conn still works
    assert.are.equal("app /x", a.body)
    c:close()
  end)

  it("does not reuse an upstream conn that said Connection: close", function()
    proxy_to({ addr = raw_addr, pool = pool() })
    local c = client()
    local before = raw_accepts
    for _ = 1, 3 do
      local a = get(c, "/close")
      assert.are.equal("closed", a.body)
      assert.is_nil(a.h.connection) -- the client's conn stays open
    end
    assert.are.equal(before + 3, raw_accepts)
    c:close()
  end)

  it("relays HTTP/1.0 answers, skips 1xx, takes a repeated Content-Length", function()
    proxy_to({ addr = raw_addr })
    local c = client()
    local a = get(c, "/http10")
    assert.are.equal("HTTP/1.1 200 OK", a.line)
    assert.are.equal("old", a.body)
    a = get(c, "/http10eof")
    assert.are.equal(200, a.status)
    assert.are.same({ "1" }, a.h["x-old"])
    assert.are.equal("until the end", a.body)
    c:close()
    c = client() -- (a close-delimited relay may have closed it)
    a = get(c, "/continue")
    assert.are.equal("HTTP/1.1 200 OK", a.line)
    assert.are.equal("ok", a.body)
    a = get(c, "/twocl")
    assert.are.equal(200, a.status)
    assert.are.equal("abcd", a.body)
    a = get(c, "/slow")
    assert.are.equal("slow body", a.body)
    assert.are.same({ "1" }, a.h["x-slow"])
    assert.are.same({ "9" }, a.h["content-length"])
    a = get(c, "/fields")
    assert.are.equal("hello", a.body)
    c:close()
  end)
end)

describe("http.proxy's failures", function()
  it("refused, timeout, bad status lines: nil, err and nothing sent", function()
    H.no_fd_leak(function()
      local c = client()
      proxy_to({ addr = H.free_addr() })
      local n0 = #results
      local a = get(c, "/x")
      assert.are.equal(502, a.status)
      local ok, err = result(n0 + 1)
      assert.is_nil(ok)
      assert.matches("^connection refused: 127%.0%.0%.1:%d+$", err)
      assert.are.equal("bad gateway: " .. err .. "\n", a.body)

      never_freed = false
      local limit = H.scale(0.3, 1)
      proxy_to({ addr = raw_addr, timeout = limit, pool = pool() })
      local t0 = go.now()
      a = get(c, "/never")
      local took = go.now() - t0
      assert.are.equal(502, a.status)
      assert.are.equal("bad gateway: timeout\n", a.body)
      assert.is_true(took >= limit * 0.9 and took < limit + H.scale(2, 10), tostring(took))
      assert.is_true(H.wait_until(function() return never_freed end, T))

      proxy_to({ addr = raw_addr })
      for path, want in pairs({ ["/badline"] = "^bad response: ", ["/101"] = "^bad response: status 101$",
        ["/600"] = "^bad response: status 600$" }) do
        local n = #results
        a = get(c, path)
        assert.are.equal(502, a.status, path)
        ok, err = result(n + 1)
        assert.is_nil(ok, path)
        assert.matches(want, err)
      end
      c:close()
    end)
  end)

  it("cuts the client's answer when the upstream closes mid-body", function()
    H.no_fd_leak(function()
      proxy_to({ addr = raw_addr, buffer_body = BUF })
      for _, path in ipairs({ "/cut", "/cutchunked" }) do
        local n0 = #results
        local c = client()
        local a = get(c, path)
        assert.are.equal(200, a.status)
        if path == "/cut" then -- (its length kept: the client knows it is short)
          assert.are.same({ tostring(BIG) }, a.h["content-length"])
        end
        assert.is_true(a.cut, path .. ": the body looked whole")
        assert.is_true(#a.body < BIG)
        local d, err = c:read()
        assert.is_nil(d)
        assert.are_not.equal("timeout", err)
        c:close()
        local ok, perr = result(n0 + 1)
        assert.are.equal(false, ok, path)
        assert.are.equal("string", type(perr))
      end
    end)
  end)
end)

describe("http.proxy in front of nginx", function()
  it("serves static files to curl: small, 1 MiB streamed, HEAD, 304", function()
    local small, big = H.payload(100, 5), H.payload(NGX_BIG, 6)
    ngx = N.start({ files = { ["small.txt"] = small, ["big.bin"] = big }, servers = { "location / { }" } })
    local p = pool()
    proxy_to({ addr = "127.0.0.1:" .. ngx.ports[1], pool = p, timeout = T, buffer_body = BUF })
    local base = "http://" .. proxy_addr
    local function curl(args) return H.sh("curl -s -S --max-time " .. T .. " " .. args) end
    local out, code = curl(base .. "/small.txt")
    assert.are.equal(0, code, out)
    assert.is_true(out == small)
    local dst = dir .. "/big.bin"
    out, code = curl("-o " .. H.shquote(dst) .. " -w '%{http_code} %{size_download}' " .. base .. "/big.bin")
    assert.are.equal(0, code, out)
    assert.are.equal("200 " .. NGX_BIG, out)
    assert.is_true(H.read_file(dst) == big)
    out = curl("-I " .. base .. "/small.txt")
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("\r\nContent%-Length: 100\r\n", out)
    local etag = out:match("\r\nETag: (\"[^\r]+\")\r\n")
    assert.truthy(etag, out)
    assert.is_nil(out:find("Server: nginx", 1, true))
    out = curl("-o /dev/null -w '%{http_code} %{size_download}' -H " .. H.shquote("If-None-Match: " .. etag)
      .. " " .. base .. "/small.txt")
    assert.are.equal("304 0", out)
    -- raw: the 304 carries nginx's ETag and the conn goes on
    local c = client()
    local a = get(c, "/small.txt", "If-None-Match: " .. etag .. "\r\n")
    assert.are.equal(304, a.status)
    assert.are.same({ etag }, a.h.etag)
    a = get(c, "/small.txt")
    assert.is_true(a.body == small)
    c:close()
    assert.is_true(H.wait_until(function()
      return select(2, ngx:log():gsub("\n", "")) >= 6
    end, T))
  end)
end)

describe("http.proxy to a TLS upstream", function()
  it("relays over https with the test CA", function()
    pki = TP.pki("ec")
    local ln = assert(http.serve("127.0.0.1:0", app, { tls = TP.server_tls(pki),
      max_body = 64 * 1024 * 1024 }))
    closers[#closers + 1] = ln
    tls_addr = ln:addr()
    local up = { addr = tls_addr, tls = { ca = pki.ca }, pool = pool(), timeout = T,
      buffer_body = BUF }
    proxy_to(up)
    local c = client()
    local a = get(c, "/tls", "X-Mixed-Case: V\r\n")
    assert.are.equal(200, a.status)
    assert.matches("^secure TLS", a.body)
    assert.matches("\r\nX%-Mixed%-Case: V\r\n", a.body)
    assert.matches("\r\nX%-Forwarded%-Proto: http\r\n", a.body)
    a = request(c, "POST", "/body", "Content-Length: " .. #SMALL_BODY .. "\r\n", SMALL_BODY)
    assert.are.equal("got " .. #SMALL_BODY, a.body)
    assert.are.equal(SMALL_BODY, got.body)
    a = get(c, "/big")
    assert.is_true(a.body == BIG_ANSWER)
    a = request(c, "HEAD", "/big")
    assert.are.equal(200, a.status)
    assert.are.same({ tostring(BIG) }, a.h["content-length"])
    a = get(c, "/chunked")
    assert.are.equal("piece1;piece2;piece3;piece4;piece5;", a.body)
    c:close()
    -- an upstream whose certificate the CA did not sign: nil, err -> 502
    proxy_to({ addr = tls_addr, tls = true, timeout = T })
    c = client()
    a = get(c, "/tls")
    assert.are.equal(502, a.status)
    c:close()
  end)
end)
