-- http_spec: lua/goluarun/http.lua through net.dial against servers in this process
-- (http.serve on 127.0.0.1:0): parsing, framing, keep-alive, pipelining,
-- limits (400/408/413/431/...), 100-continue, the router, and that the
-- server keeps serving and leaks no fds after hostile clients.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local json = require "goluarun.json"
local H = require "support.helpers"

---------------------------------------------------------------------------
-- client side helpers
---------------------------------------------------------------------------

-- reads one response: {code, line, headers (lower-case), body, raw_headers}
local function read_response(c, opts)
  opts = opts or {}
  c:settimeout(opts.timeout or 10)
  local line, err = c:read("l")
  if not line then return nil, err end
  local code = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  assert(code, "bad status line: " .. line)
  local h, list = {}, {}
  while true do
    local l = assert(c:read("l"))
    if l == "" then break end
    local k, v = l:match("^([%w-]+): (.-)$")
    assert(k, "bad header line: " .. l)
    list[#list + 1] = k:lower()
    h[k:lower()] = v
    h[#h + 1] = k .. ": " .. v -- (the lines as received, in order)
  end
  local body = ""
  local n = tonumber(h["content-length"])
  if opts.head then
    return { code = code, line = line, headers = h, body = body, names = list }
  end
  if n then
    if n > 0 then body = assert(c:read(n)) end
  elseif h["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(c:read("l")), 16)
      assert(size, "bad chunk size line")
      if size == 0 then break end
      parts[#parts + 1] = assert(c:read(size))
      assert.are.equal("", c:read("l"))
    end
    assert.are.equal("", c:read("l")) -- no trailers
    body = table.concat(parts)
    h.chunks = #parts
  elseif opts.until_eof then
    body = assert(c:read("a"))
  end
  return { code = code, line = line, headers = h, body = body, names = list }
end

-- the connection ends (EOF, or a reset after our unread input)
local function expect_eof(c)
  c:settimeout(10)
  local d, err = c:read()
  assert.is_nil(d, "expected EOF, got data: " .. tostring(d))
  H.assert_err(err, { "eof", "connection reset" })
end

local function dial(addr)
  return assert(net.dial(addr, 5))
end

-- sends `raw` on a fresh connection and returns the response (and the conn)
local function exchange(addr, raw, opts)
  local c = dial(addr)
  assert(c:write(raw))
  local r, err = read_response(c, opts)
  assert.truthy(r, "no response: " .. tostring(err))
  return r, c
end

-- sends `raw`, expects status `code` with "Connection: close" and EOF
local function expect_reject(addr, raw, code)
  local r, c = exchange(addr, raw)
  assert.are.equal(code, r.code, "for " .. string.format("%q", raw))
  assert.are.equal("close", r.headers.connection)
  expect_eof(c)
  c:close()
  return r
end

-- a normal request on a fresh connection still works
local function assert_serving(addr)
  local r, c = exchange(addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
  assert.are.equal(200, r.code)
  assert.are.equal("hello\n", r.body)
  c:close()
end

local function get(path, extra)
  return "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" .. (extra or "") .. "\r\n"
end

local function post(path, body, extra)
  return "POST " .. path .. " HTTP/1.1\r\nHost: t\r\nContent-Length: " .. #body
    .. "\r\n" .. (extra or "") .. "\r\n" .. body
end

local function chunked(body, size)
  local out = {}
  local i = 1
  size = size or 1000
  while i <= #body do
    local piece = body:sub(i, i + size - 1)
    out[#out + 1] = string.format("%x\r\n%s\r\n", #piece, piece)
    i = i + size
  end
  out[#out + 1] = "0\r\n\r\n"
  return table.concat(out)
end

---------------------------------------------------------------------------
-- the application under test
---------------------------------------------------------------------------

local errors = {}
local function app()
  local a = http.router()
  a:get("/", function(_, res) res:send("hello\n") end)
  a:post("/echo", function(req, res) res:send(req:body()) end)
  a:post("/strict", function(req, res) res:send(assert(req:body())) end)
  a:put("/echo", function(req, res)
    local b, err = req:body()
    if not b then return res:status(400):send("body error: " .. err) end
    res:send(b)
  end)
  a:get("/inspect", function(req, res)
    res:json({
      method = req.method, path = req.path, target = req.target,
      query = req.query, query_string = req.query_string or json.null,
      headers = req.headers, version = req.version,
    })
  end)
  a:post("/trailers", function(req, res)
    local b = assert(req:body())
    res:json({ body = b, trailers = req.trailers or json.object() })
  end)
  a:get("/users/:id", function(req, res) res:send("user " .. req.params.id) end)
  a:delete("/users/:id", function(req, res) res:send("deleted " .. req.params.id) end)
  a:get("/files/*", function(req, res) res:send("file " .. req.params["*"]) end)
  a:get("/boom", function() error("boom!") end)
  a:get("/status/:code", function(req, res)
    res:status(tonumber(req.params.code)):header("X-Custom", "yes"):send("s")
  end)
  a:get("/nothing", function() end)
  a:get("/reason", function(_, res) res:status(200, "Fine"):send("r") end)
  a:get("/ok200", function(_, res) res:status(200):send("ok") end)
  a:get("/empty204", function(_, res) res:status(204):send("") end)
  a:get("/stream", function(req, res)
    res:header("Content-Type", "text/event-stream")
    assert(res:write("one "))
    assert(res:write("two ", 3, " "))
    assert(res:write("")) -- nothing, and does not end the body
    assert(res:write(H.payload(10000, 1)))
    errors.stream_header = pcall(res.header, res, "X-Late", "1")
    if req.query.finish then assert(res:finish()) end
  end)
  a:get("/stream-boom", function(_, res)
    res:write("partial")
    error("stream boom")
  end)
  a:get("/header/:name", function(req, res) res:send(req.headers[req.params.name] or "-") end)
  a:post("/ignore", function(_, res) res:send("ignored\n") end)
  a:get("/close", function(_, res) res:header("Connection", "close"):send("bye\n") end)
  a:get("/headers", function(_, res)
    res:header("X-A", "1"):header("x-a", "2"):header("X-B", { "p", "q" })
      :header("X-C", "gone"):header("X-C", nil)
      :header("Content-Type", "text/html")
    res:send("<p>")
  end)
  a:get("/bulk", function(req, res)
    -- another message's fields in one step: the server's own and the
    -- excepted ones skipped, lists sent line by line, Date kept
    local from = { ["Content-Type"] = "text/html", ["x-list"] = { "p", 2 },
      ["x-drop"] = "no", date = "Mon, 01 Jan 2024 00:00:00 GMT",
      ["content-length"] = "999", ["transfer-encoding"] = "gzip",
      connection = req.query.close and "close" or "keep-alive" }
    res:header("X-Single", "1"):headers(from, { ["x-drop"] = true })
    res:send("bulk")
  end)
  a:get("/relay", function(req, res)
    -- the request's own fields relayed as the answer's (a proxy's step)
    local head, pos = req:rawhead()
    res:relay(head, pos, { ["x-drop"] = true })
    res:send("relayed")
  end)
  a:get("/relay-misuse", function(_, res)
    local out = {}
    for _, args in ipairs({ { nil }, { 5 }, { "A: 1\r\n", 0 }, { "A: 1\r\n", 1.5 },
      { "A: 1\r\n", 1, 5 }, { "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n" },
      { "GET / HTTP/1.1\r\nA: \0\r\n\r\n" } }) do
      local ok, err = pcall(res.relay, res, args[1], args[2], args[3])
      out[#out + 1] = ok and "ok" or err:match("res:relay: (%a+ %a+)") or err
    end
    res:send(table.concat(out, ","))
    errors.late_relay = not pcall(res.relay, res, "A: 1\r\n")
  end)
  a:get("/bulk-misuse", function(_, res)
    local out = {}
    for _, t in ipairs({ { ["Bad Name"] = "v" }, { x = "a\r\nInjected: 1" },
      { x = { "ok", {} } }, { x = true }, { [1] = "v" } }) do
      local ok, err = pcall(res.headers, res, t)
      out[#out + 1] = ok and "ok" or (err:match("res:headers: (%a+ %a+)") or err)
    end
    out[#out + 1] = select(2, pcall(res.headers, res, "x")):match("table expected") or "?"
    out[#out + 1] = select(2, pcall(res.headers, res, {}, 1)):match("except must") or "?"
    res:send(table.concat(out, ","))
    errors.late_headers = not pcall(res.headers, res, {})
  end)
  a:get("/misuse", function(_, res)
    local out = {}
    out[#out + 1] = pcall(res.status, res, 99)
    out[#out + 1] = pcall(res.status, res, 600)
    out[#out + 1] = pcall(res.header, res, "Bad Name", "v")
    out[#out + 1] = pcall(res.header, res, "X", "a\r\nInjected: 1")
    out[#out + 1] = pcall(res.header, res, "Content-Length", "5")
    out[#out + 1] = pcall(res.send, res, {})
    res:send(tostring(out[1]) .. tostring(out[2]) .. tostring(out[3])
      .. tostring(out[4]) .. tostring(out[5]) .. tostring(out[6]))
    local ok = pcall(res.send, res, "again")
    errors.second_send = not ok
    errors.late_header = not pcall(res.header, res, "X-Late", "1")
    errors.late_status = not pcall(res.status, res, 201)
    errors.late_write = not pcall(res.write, res, "x")
  end)
  return a
end

local function start(opts)
  opts = opts or {}
  opts.on_error = function(e) errors[#errors + 1] = e end
  local ln = assert(http.serve("127.0.0.1:0", app(), opts))
  return ln, ln:addr()
end

---------------------------------------------------------------------------

describe("http server", function()
  local ln, addr
  setup(function()
    H.warmup()
    ln, addr = start({ max_body = 8 * 1024 * 1024 })
  end)
  teardown(function() ln:close() end)

  it("answers a GET with status, Date, Content-Type and Content-Length", function()
    local r, c = exchange(addr, get("/"))
    assert.are.equal("HTTP/1.1 200 OK", r.line)
    assert.are.equal("6", r.headers["content-length"])
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", r.headers.date)
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
    assert.is_nil(r.headers.connection)
    assert.are.equal("hello\n", r.body)
    c:close()
  end)

  it("keeps an HTTP/1.1 connection alive across requests", function()
    local c = dial(addr)
    for i = 1, 5 do
      assert(c:write(get("/users/" .. i)))
      local r = assert(read_response(c))
      assert.are.equal(200, r.code)
      assert.are.equal("user " .. i, r.body)
    end
    c:close()
  end)

  it("plain and framed requests on one connection: each answer as its handler set it", function()
    -- plain heads (HTTP/1.1, one Host, no framing field) take the server's
    -- shortest paths; a status, a field or a framing field leaves them
    local c = dial(addr)
    local steps = {
      { get("/"), "HTTP/1.1 200 OK", "hello\n" },
      { get("/reason"), "HTTP/1.1 200 Fine", "r" },
      { get("/"), "HTTP/1.1 200 OK", "hello\n" },
      { get("/ok200"), "HTTP/1.1 200 OK", "ok" },
      { get("/empty204"), "HTTP/1.1 204 No Content", "" },
      { get("/headers"), "HTTP/1.1 200 OK", "<p>" },
      { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "HTTP/1.1 200 OK", "hello\n",
        "keep-alive" },
      { get("/"), "HTTP/1.1 200 OK", "hello\n" },
      { "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 200 OK",
        "abc" },
      { get("/nothing"), "HTTP/1.1 200 OK", "" },
      { "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 200 OK", "", nil, true },
      { get("/"), "HTTP/1.1 200 OK", "hello\n" },
    }
    for i, step in ipairs(steps) do
      assert(c:write(step[1]))
      local r = assert(read_response(c, { head = step[5] }))
      assert.are.equal(step[2], r.line, "step " .. i)
      assert.are.equal(step[3], r.body, "step " .. i)
      assert.are.equal(step[4], r.headers.connection, "step " .. i)
      if r.code ~= 204 then
        assert.are.equal(step[5] and "6" or tostring(#step[3]), r.headers["content-length"])
      end
      local ct = step[1]:find("^GET /headers") and "text/html" or "text/plain; charset=utf-8"
      if r.code ~= 204 then assert.are.equal(ct, r.headers["content-type"], "step " .. i) end
    end
    c:close()
  end)

  it("honours Connection: close from the client (any case, in a list)", function()
    for _, v in ipairs({ "close", "Close", "keep-alive, CLOSE" }) do
      local r, c = exchange(addr, get("/", "Connection: " .. v .. "\r\n"))
      assert.are.equal(200, r.code)
      assert.are.equal("close", r.headers.connection)
      expect_eof(c)
      c:close()
    end
  end)

  it("honours Connection: close from the handler", function()
    local r, c = exchange(addr, get("/close"))
    assert.are.equal("bye\n", r.body)
    assert.are.equal("close", r.headers.connection)
    expect_eof(c)
    c:close()
  end)

  it("closes HTTP/1.0 connections unless they ask for keep-alive", function()
    local r, c = exchange(addr, "GET / HTTP/1.0\r\n\r\n")
    assert.are.equal(200, r.code)
    assert.are.equal("hello\n", r.body)
    expect_eof(c)
    c:close()
    c = dial(addr)
    for _ = 1, 3 do
      assert(c:write("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))
      r = assert(read_response(c))
      assert.are.equal(200, r.code)
      assert.are.equal("keep-alive", r.headers.connection)
    end
    -- an HTTP/1.0 request needs no Host
    assert(c:write("GET /inspect HTTP/1.0\r\n\r\n"))
    r = assert(read_response(c))
    assert.are.equal("1.0", json.decode(r.body).version)
    assert.are.equal("close", r.headers.connection)
    expect_eof(c)
    c:close()
  end)

  it("answers pipelined requests in order", function()
    local body = H.payload(3000, 5)
    local reqs = {
      get("/users/1"), post("/echo", "first"), get("/users/2"),
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. chunked(body, 700),
      get("/nope"), get("/users/3"), "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
      get("/users/4", "Connection: close\r\n"),
    }
    local want = { { 200, "user 1" }, { 200, "first" }, { 200, "user 2" },
      { 200, body }, { 404, "Not Found\n" }, { 200, "user 3" }, { 200, "" },
      { 200, "user 4" } }
    local c = dial(addr)
    local w = go(function() return c:write(table.concat(reqs)) end)
    for i, x in ipairs(want) do
      local r = assert(read_response(c, { head = i == 7 }))
      assert.are.equal(x[1], r.code, "response " .. i)
      assert.are.equal(x[2], r.body, "response " .. i)
      if i == 7 then assert.are.equal("6", r.headers["content-length"]) end
    end
    assert.is_true((go.wait(w, 10)))
    expect_eof(c)
    c:close()
  end)

  it("parses the request line, the query and the headers", function()
    local r, c = exchange(addr, "GET /inspect?a=1&b=x+y&c=%41%2f&a=2&&e HTTP/1.1\r\n"
      .. "Host: example.com\r\n"
      .. "X-Spaces:   inner  spaces kept \t \r\n"
      .. "x-dup: one\r\n"
      .. "X-Dup: two\r\n"
      .. "X-Empty:\r\n"
      .. "X-Tab:\tv\t\r\n"
      .. "\r\n")
    assert.are.equal(200, r.code)
    assert.are.equal("application/json", r.headers["content-type"])
    local v = assert(json.decode(r.body))
    assert.are.equal("GET", v.method)
    assert.are.equal("/inspect", v.path)
    assert.are.equal("/inspect?a=1&b=x+y&c=%41%2f&a=2&&e", v.target)
    assert.are.equal("a=1&b=x+y&c=%41%2f&a=2&&e", v.query_string)
    assert.are.same({ "1", "2" }, v.query.a)
    assert.are.equal("x y", v.query.b)
    assert.are.equal("A/", v.query.c)
    assert.are.equal("", v.query.e)
    assert.are.equal("1.1", v.version)
    assert.are.equal("example.com", v.headers.host)
    assert.are.equal("inner  spaces kept", v.headers["x-spaces"])
    assert.are.equal("one, two", v.headers["x-dup"])
    assert.are.equal("", v.headers["x-empty"])
    assert.are.equal("v", v.headers["x-tab"])
    -- obs-text (bytes >= 0x80) is allowed in field values
    assert(c:write(get("/header/x-obs", "X-Obs: caf\233 \255\r\n")))
    r = assert(read_response(c))
    assert.are.equal("caf\233 \255", r.body)
    c:close()
  end)

  it("accepts bare LF line ends, leading empty lines and an absolute-form target", function()
    local r, c = exchange(addr, "\r\n\r\nGET /inspect?q=1 HTTP/1.1\nHost: t\nX-A: b\n\n")
    assert.are.equal(200, r.code)
    local v = json.decode(r.body)
    assert.are.equal("/inspect", v.path)
    assert.are.equal("b", v.headers["x-a"])
    assert(c:write("GET http://t/inspect HTTP/1.1\r\nHost: t\r\n\r\n"))
    r = assert(read_response(c))
    assert.are.equal("/inspect", json.decode(r.body).path)
    c:close()
  end)

  it("routes: path parameters, wildcards, 404, 405 with Allow, HEAD", function()
    local c = dial(addr)
    local function ask(raw, opts)
      assert(c:write(raw))
      return assert(read_response(c, opts))
    end
    assert.are.equal("user a b", ask(get("/users/a%20b")).body)
    assert.are.equal("deleted 9", ask("DELETE /users/9 HTTP/1.1\r\nHost: t\r\n\r\n").body)
    assert.are.equal("file x/y/z.txt", ask(get("/files/x/y/z.txt")).body)
    assert.are.equal(404, ask(get("/users/1/extra")).code)
    assert.are.equal(404, ask(get("/missing")).code)
    local r = ask(post("/users/1", ""))
    assert.are.equal(405, r.code)
    assert.are.equal("DELETE, GET, HEAD", r.headers.allow)
    r = ask(get("/echo"))
    assert.are.equal(405, r.code)
    assert.are.equal("POST, PUT", r.headers.allow)
    r = ask("HEAD /users/5 HTTP/1.1\r\nHost: t\r\n\r\n", { head = true })
    assert.are.equal(200, r.code)
    assert.are.equal("6", r.headers["content-length"])
    assert.are.equal("", r.body)
    -- the HEAD answer carried no body: the next answer is intact
    assert.are.equal("hello\n", ask(get("/")).body)
    c:close()
  end)

  it("res: status, headers (set, replace, remove, lists), 204/304 without body", function()
    local c = dial(addr)
    assert(c:write(get("/headers")))
    local r = assert(read_response(c))
    assert.are.equal("2", r.headers["x-a"])
    assert.is_nil(r.headers["x-c"])
    assert.are.equal("text/html", r.headers["content-type"])
    local xb = 0
    for _, n in ipairs(r.names) do if n == "x-b" then xb = xb + 1 end end
    assert.are.equal(2, xb)
    assert(c:write(get("/status/201")))
    r = assert(read_response(c))
    assert.are.equal("HTTP/1.1 201 Created", r.line)
    assert.are.equal("yes", r.headers["x-custom"])
    assert(c:write(get("/status/204")))
    r = assert(read_response(c))
    assert.are.equal(204, r.code)
    assert.is_nil(r.headers["content-length"])
    assert(c:write(get("/status/299")))
    r = assert(read_response(c))
    assert.are.equal("HTTP/1.1 299 ", r.line)
    assert.are.equal("s", r.body)
    -- a handler that sends nothing: empty 200
    assert(c:write(get("/nothing")))
    r = assert(read_response(c))
    assert.are.equal(200, r.code)
    assert.are.equal("0", r.headers["content-length"])
    c:close()
  end)

  it("res:headers sets many fields at once, minus the server's own and the excepted", function()
    local c = dial(addr)
    assert(c:write(get("/bulk")))
    local r = assert(read_response(c))
    assert.are.equal("bulk", r.body)
    assert.are.equal("4", r.headers["content-length"])
    assert.are.equal("text/html", r.headers["content-type"])
    assert.are.equal("Mon, 01 Jan 2024 00:00:00 GMT", r.headers.date)
    assert.are.equal("1", r.headers["x-single"])
    assert.is_nil(r.headers["x-drop"])
    assert.is_nil(r.headers["transfer-encoding"])
    assert.is_nil(r.headers.connection)
    local count = {}
    for _, n in ipairs(r.names) do count[n] = (count[n] or 0) + 1 end
    assert.are.equal(2, count["x-list"])
    assert.are.equal(1, count["content-type"])
    assert.are.equal(1, count.date)
    assert.are.equal(1, count["content-length"])
    -- the next request on the same conn gets no leftover of the block
    assert(c:write(get("/")))
    r = assert(read_response(c))
    assert.is_nil(r.headers["x-list"])
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
    -- Connection: close among the fields is honoured
    assert(c:write(get("/bulk?close=1")))
    r = assert(read_response(c))
    assert.are.equal("close", r.headers.connection)
    expect_eof(c)
    c:close()
    r, c = exchange(addr, get("/bulk-misuse"))
    assert.are.equal("invalid field,a value,a value,a value,invalid field,"
      .. "table expected,except must", r.body)
    assert.is_true(errors.late_headers)
    c:close()
  end)

  it("res:relay sends a head's fields as received, minus hop-by-hop ones; no default Content-Type", function()
    local c = dial(addr)
    assert(c:write("GET /relay HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: V\r\nX-Drop: 1\r\n"
      .. "Keep-Alive: 5\r\nConnection: X-Private\r\nX-Private: p\r\nset-cookie: a\r\n"
      .. "Set-Cookie: b\r\n\r\n"))
    local r = assert(read_response(c))
    assert.are.equal("relayed", r.body)
    local lines = table.concat(r.headers, "\n")
    assert.matches("\nHost: h\nX%-Mixed%-Case: V\nset%-cookie: a\nSet%-Cookie: b\n", lines)
    for _, gone in ipairs({ "content-type", "x-drop", "keep-alive", "x-private", "connection" }) do
      assert.is_nil(lines:lower():find(gone, 1, true), gone)
    end
    assert.are.equal("7", r.headers["content-length"])
    assert.truthy(r.headers.date)
    -- the next answer on the conn has none of it, and the default type again
    assert(c:write(get("/")))
    r = assert(read_response(c))
    assert.is_nil(r.headers["x-mixed-case"])
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
    c:close()
    r, c = exchange(addr, get("/relay-misuse"))
    assert.are.equal("a head,a head,pos must,pos must,drop must,malformed head,"
      .. "malformed head", r.body)
    assert.is_true(errors.late_relay)
    c:close()
  end)

  it("res:write streams a chunked body; HTTP/1.0 gets it until close", function()
    local want = "one two 3 " .. H.payload(10000, 1)
    local c = dial(addr)
    for _, path in ipairs({ "/stream", "/stream?finish=1" }) do
      assert(c:write(get(path)))
      local r = assert(read_response(c))
      assert.are.equal(200, r.code)
      assert.are.equal("chunked", r.headers["transfer-encoding"])
      assert.is_nil(r.headers["content-length"])
      assert.are.equal("text/event-stream", r.headers["content-type"])
      assert.are.equal(3, r.headers.chunks)
      assert.is_true(r.body == want)
      assert.is_false(errors.stream_header)
    end
    -- HEAD: the head only, and the connection goes on
    assert(c:write("HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n"))
    local r = assert(read_response(c, { head = true }))
    assert.are.equal("chunked", r.headers["transfer-encoding"])
    assert(c:write(get("/")))
    assert.are.equal("hello\n", assert(read_response(c)).body)
    c:close()
    -- HTTP/1.0 (even with keep-alive): no chunking, the body ends at close
    r, c = exchange(addr, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      { until_eof = true })
    assert.is_nil(r.headers["transfer-encoding"])
    assert.are.equal("close", r.headers.connection)
    assert.is_true(r.body == want)
    c:close()
  end)

  it("an error after the first res:write cuts the connection mid-body", function()
    H.no_fd_leak(function()
      local r, c = exchange(addr, get("/stream-boom"), { head = true })
      assert.are.equal(200, r.code)
      assert.are.equal("chunked", r.headers["transfer-encoding"])
      c:settimeout(5)
      local rest = c:read("a")
      assert.are.equal("7\r\npartial\r\n", rest) -- and no last chunk
      c:close()
    end)
    assert_serving(addr)
  end)

  it("res: misuse raises inside the handler", function()
    local r, c = exchange(addr, get("/misuse"))
    assert.are.equal("falsefalsefalsefalsefalsefalse", r.body)
    assert.is_true(errors.second_send)
    assert.is_true(errors.late_header)
    assert.is_true(errors.late_status)
    assert.is_true(errors.late_write)
    c:close()
  end)

  it("echoes Content-Length and chunked bodies (with extensions and trailers)", function()
    local c = dial(addr)
    local size = H.scale(1024 * 1024, 20000)
    local body = H.payload(size, 3)
    local w = go(function() return c:write(post("/echo", body)) end)
    local r = assert(read_response(c, { timeout = 30 }))
    assert.are.equal(200, r.code)
    assert.is_true(r.body == body, "Content-Length body differs")
    assert.is_true((go.wait(w, 30)))
    w = go(function()
      return c:write("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n",
        chunked(body, 65536))
    end)
    r = assert(read_response(c, { timeout = 30 }))
    assert.are.equal(200, r.code)
    assert.is_true(r.body == body, "chunked body differs")
    assert.is_true((go.wait(w, 30)))
    -- chunk extensions, upper-case hex, trailers
    assert(c:write("POST /trailers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5;ext=1\r\nhello\r\nA ; name=\"v\"\r\n0123456789\r\n0\r\nX-Sum: abc\r\nX-More: 1\r\n\r\n"))
    r = assert(read_response(c))
    local v = json.decode(r.body)
    assert.are.equal("hello0123456789", v.body)
    assert.are.same({ ["x-sum"] = "abc", ["x-more"] = "1" }, v.trailers)
    -- an empty chunked body
    assert(c:write("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
    r = assert(read_response(c))
    assert.are.equal(200, r.code)
    assert.are.equal("", r.body)
    c:close()
  end)

  it("discards a body the handler did not read and keeps the connection", function()
    local c = dial(addr)
    assert(c:write(post("/ignore", H.payload(5000, 1))))
    local r = assert(read_response(c))
    assert.are.equal("ignored\n", r.body)
    assert(c:write("POST /ignore HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. chunked(H.payload(3000, 2), 512)))
    r = assert(read_response(c))
    assert.are.equal("ignored\n", r.body)
    assert.is_nil(r.headers.connection)
    assert(c:write(get("/")))
    assert.are.equal("hello\n", assert(read_response(c)).body)
    c:close()
  end)

  it("Expect: 100-continue: 100 before the body, only when the handler reads it", function()
    H.no_fd_leak(function()
      local c = dial(addr)
      assert(c:write("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        .. "Expect: 100-continue\r\n\r\n"))
      c:settimeout(5)
      assert.are.equal("HTTP/1.1 100 Continue", c:read("l"))
      assert.are.equal("", c:read("l"))
      assert(c:write("hello"))
      local r = assert(read_response(c))
      assert.are.equal(200, r.code)
      assert.are.equal("hello", r.body)
      -- same with a chunked body
      assert(c:write("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        .. "Expect: 100-Continue\r\n\r\n"))
      assert.are.equal("HTTP/1.1 100 Continue", c:read("l"))
      assert.are.equal("", c:read("l"))
      assert(c:write("3\r\nabc\r\n0\r\n\r\n"))
      r = assert(read_response(c))
      assert.are.equal("abc", r.body)
      -- the handler does not read the body: no 100, final answer, close
      assert(c:write("POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        .. "Expect: 100-continue\r\n\r\n"))
      r = assert(read_response(c))
      assert.are.equal(200, r.code)
      assert.are.equal("ignored\n", r.body)
      assert.are.equal("close", r.headers.connection)
      expect_eof(c)
      c:close()
      -- an unknown expectation
      expect_reject(addr, post("/echo", "x", "Expect: magic\r\n"), 417)
      -- a body too large is refused before any 100
      r, c = exchange(addr, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n"
        .. "Expect: 100-continue\r\n\r\n")
      assert.are.equal(413, r.code)
      expect_eof(c)
      c:close()
    end)
    assert_serving(addr)
  end)

  it("a handler error gives 500 and closes; the server goes on", function()
    H.no_fd_leak(function()
      local n = #errors
      local r, c = exchange(addr, get("/boom"))
      assert.are.equal(500, r.code)
      assert.are.equal("close", r.headers.connection)
      expect_eof(c)
      c:close()
      assert.are.equal(n + 1, #errors)
      assert.matches("boom!", errors[#errors])
    end)
    assert_serving(addr)
  end)

  it("http.handle serves one connection and closes it", function()
    H.no_fd_leak(function()
      local c, s, l = H.pair()
      l:close()
      local g = go(http.handle, s, function(req, res) res:send("via handle " .. req.path) end)
      assert(c:write(get("/x")))
      local r = assert(read_response(c))
      assert.are.equal("via handle /x", r.body)
      c:closewrite()
      assert.is_true((go.wait(g, 5)))
      assert.are.equal(-1, s:fd())
      c:close()
    end)
  end)

  it("serves a unix socket; a second server on the same address fails", function()
    local path = H.sockpath("http")
    local l = assert(http.serve("unix:" .. path, function(_, res) res:send("unix") end))
    local c = assert(net.dial("unix:" .. path, 5))
    assert(c:write(get("/")))
    assert.are.equal("unix", assert(read_response(c)).body)
    c:close()
    local l2, err = http.serve(addr, function() end)
    assert.is_nil(l2)
    H.assert_err(err, "address in use")
    l:close()
    os.remove(path)
  end)

  it("raises on misuse of serve/handle/router", function()
    assert.has_error(function() http.serve("127.0.0.1:0", 42) end)
    assert.has_error(function() http.serve("127.0.0.1:0", function() end, { max_body = -1 }) end)
    assert.has_error(function() http.serve("127.0.0.1:0", function() end, { header_timeout = "x" }) end)
    assert.has_error(function() http.serve("127.0.0.1:0", function() end, 5) end)
    local r = http.router()
    assert.has_error(function() r:get("nopath", function() end) end)
    assert.has_error(function() r:get("/x", 5) end)
    assert.has_error(function() r:route("BAD METHOD", "/x", function() end) end)
    r:get("/x", function() end)
    assert.has_error(function() r:get("/x", function() end) end)
    assert.has_error(function() r:get("/a/*/b", function() end) end)
  end)
end)

describe("http server limits and hostile clients", function()
  local ln, addr
  local LIMITS = {
    max_header_bytes = 1024, max_headers = 10, max_body = 4096,
    header_timeout = 0.3, linger_timeout = 1,
  }
  setup(function()
    H.warmup()
    ln, addr = start(LIMITS)
  end)
  teardown(function() ln:close() end)

  it("rejects malformed requests with 400 and closes", function()
    local bad = {
      "GET\r\n\r\n",
      "GET /\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: t\r\n\r\n",
      "GET / HTTP/1.1 x\r\nHost: t\r\n\r\n",
      "GET / FOO/1.1\r\nHost: t\r\n\r\n",
      "GET / HTTP/1\r\nHost: t\r\n\r\n",
      "GET / HTTP/11.1\r\nHost: t\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /\127 HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /caf\233 HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET ?x HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET nothttp://x HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /\rx HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : t\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\n: novalue\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nJustText\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\n\tX-A: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\1b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\127\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX(A): a\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n", -- HTTP/1.1 without Host
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1.5\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo\r\n\r\n",
    }
    H.no_fd_leak(function()
      for _, raw in ipairs(bad) do
        local r = expect_reject(addr, raw, 400)
        assert.are.equal("Bad Request\n", r.body)
      end
    end)
    assert_serving(addr)
  end)

  it("answers 505 to HTTP/2.0 and 501 to an unknown transfer coding", function()
    H.no_fd_leak(function()
      expect_reject(addr, "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505)
      expect_reject(addr, "POST /echo HTTP/1.1\r\nHost: t\r\n"
        .. "Transfer-Encoding: gzip, chunked\r\n\r\n", 501)
    end)
    assert_serving(addr)
  end)

  it("a malformed request in a pipeline: earlier ones answered, then 400", function()
    H.no_fd_leak(function()
      local c = dial(addr)
      assert(c:write(get("/") .. get("/users/1") .. "BROKEN LINE\r\n\r\n" .. get("/")))
      assert.are.equal("hello\n", assert(read_response(c)).body)
      assert.are.equal("user 1", assert(read_response(c)).body)
      local r = assert(read_response(c))
      assert.are.equal(400, r.code)
      expect_eof(c)
      c:close()
    end)
    assert_serving(addr)
  end)

  it("431 for an oversized head (in one piece, trickled, long request line)", function()
    H.no_fd_leak(function()
      -- sent at once
      expect_reject(addr, get("/", "X-Big: " .. ("a"):rep(2000) .. "\r\n"), 431)
      -- many small fields adding up
      local many = {}
      for i = 1, 9 do many[i] = "X-" .. i .. ": " .. ("b"):rep(150) .. "\r\n" end
      expect_reject(addr, get("/", table.concat(many)), 431)
      -- a long request line
      expect_reject(addr, get("/" .. ("p"):rep(1100)), 431)
      -- never-ending head without an empty line
      local c = dial(addr)
      local w = go(function()
        c:write("GET / HTTP/1.1\r\nHost: t\r\n")
        for _ = 1, 200 do
          if not c:write("X-Pad: " .. ("c"):rep(20) .. "\r\n") then break end
        end
      end)
      local r = assert(read_response(c))
      assert.are.equal(431, r.code)
      expect_eof(c)
      go.wait(w, 10)
      c:close()
      -- just at the limit is fine
      local line = get("/")
      local pad = 1024 - #line - #"X-P: \r\n"
      r, c = exchange(addr, get("/", "X-P: " .. ("d"):rep(pad) .. "\r\n"))
      assert.are.equal(200, r.code)
      c:close()
    end)
    assert_serving(addr)
  end)

  it("431 for too many header fields", function()
    H.no_fd_leak(function()
      local fields = {}
      for i = 1, 10 do fields[i] = "X-" .. i .. ": v\r\n" end
      -- 10 fields including Host: fine
      local r, c = exchange(addr, "GET / HTTP/1.1\r\nHost: t\r\n"
        .. table.concat(fields, "", 1, 9) .. "\r\n")
      assert.are.equal(200, r.code)
      c:close()
      -- 11: too many
      expect_reject(addr, "GET / HTTP/1.1\r\nHost: t\r\n" .. table.concat(fields) .. "\r\n", 431)
    end)
    assert_serving(addr)
  end)

  it("413 for a body too large (Content-Length, chunked), 4096 is fine", function()
    H.no_fd_leak(function()
      -- announced: refused before the body is read
      expect_reject(addr, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4097\r\n\r\n", 413)
      -- at the limit
      local ok = H.payload(4096, 9)
      local r, c = exchange(addr, post("/echo", ok))
      assert.are.equal(200, r.code)
      assert.is_true(r.body == ok)
      c:close()
      -- chunked: found out while reading
      c = dial(addr)
      local w = go(function()
        return c:write("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
          chunked(H.payload(5000, 1), 1000))
      end)
      r = assert(read_response(c))
      assert.are.equal(413, r.code)
      assert.are.equal("close", r.headers.connection)
      expect_eof(c)
      go.wait(w, 10)
      c:close()
      -- one huge chunk announced: refused without reading it
      r, c = exchange(addr, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "ffffff\r\n")
      assert.are.equal(413, r.code)
      expect_eof(c)
      c:close()
      -- the handler that handles the error itself
      r, c = exchange(addr, "PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "2000\r\n")
      assert.are.equal(400, r.code)
      assert.are.equal("body error: body too large", r.body)
      assert.are.equal("close", r.headers.connection)
      expect_eof(c)
      c:close()
    end)
    assert_serving(addr)
  end)

  it("400, not 500, for a body the client cut short by closing its side", function()
    H.no_fd_leak(function()
      for _, raw in ipairs {
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "POST /strict HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
      } do
        local c = dial(addr)
        assert(c:write(raw))
        assert(c:closewrite())
        local r = assert(read_response(c))
        assert.are.equal(400, r.code, raw)
        assert.are.equal("close", r.headers.connection)
        expect_eof(c)
        c:close()
      end
    end)
    assert_serving(addr)
  end)

  it("400 for bad chunked encoding", function()
    local bad = {
      "zz\r\nhello\r\n0\r\n\r\n",            -- not hex
      "\r\nhello\r\n0\r\n\r\n",              -- empty size
      "-5\r\nhello\r\n0\r\n\r\n",            -- sign
      "5\r\nhelloXX0\r\n\r\n",               -- no CRLF after the data
      "5\r\nhello\r\n1000000000000000000\r\n", -- size overflow
      "5 x\r\nhello\r\n0\r\n\r\n",           -- junk after the size
      "5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n", -- malformed trailer
      "5\r\nhello\r\n0\r\nX: a\1b\r\n\r\n",   -- control char in a trailer
    }
    H.no_fd_leak(function()
      for _, b in ipairs(bad) do
        local raw = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" .. b
        local r = expect_reject(addr, raw, 400)
        assert.are.equal("Bad Request\n", r.body)
      end
    end)
    assert_serving(addr)
  end)

  it("408 and close for a client that trickles its head (slowloris)", function()
    H.no_fd_leak(function()
      local c = dial(addr)
      local stop = false
      local w = go(function()
        c:write("GET / HTTP/1.1\r\n")
        for i = 1, 100 do
          if stop then break end
          if not c:write("X-" .. i .. ": y\r\n") then break end
          go.sleep(0.05)
        end
      end)
      local t0 = go.now()
      local r = assert(read_response(c))
      local dt = go.now() - t0
      stop = true
      assert.are.equal(408, r.code)
      assert.are.equal("close", r.headers.connection)
      assert.is_true(dt >= 0.25, "408 after " .. dt .. " s")
      assert.is_true(dt < 3, "408 only after " .. dt .. " s")
      expect_eof(c)
      go.wait(w, 10)
      c:close()
      -- a client that sends half a request line and stalls
      c = dial(addr)
      assert(c:write("GET /sl"))
      r = assert(read_response(c))
      assert.are.equal(408, r.code)
      expect_eof(c)
      c:close()
    end)
    assert_serving(addr)
  end)

  it("the header timeout covers only the head: slow bodies and later requests are fine", function()
    local c = dial(addr)
    -- a head in two parts (the slow path sets the header deadline) ...
    assert(c:write("POST /echo HTTP/1.1\r\nHost: t\r\n"))
    go.sleep(0.05)
    assert(c:write("Content-Length: 5\r\n\r\n"))
    -- ... then the body after the header timeout has passed
    go.sleep(0.5)
    assert(c:write("hello"))
    local r = assert(read_response(c))
    assert.are.equal(200, r.code)
    assert.are.equal("hello", r.body)
    -- the next request, also after more than header_timeout
    go.sleep(0.4)
    assert(c:write(get("/")))
    r = assert(read_response(c))
    assert.are.equal(200, r.code)
    c:close()
  end)

  it("a client that connects and says nothing is closed quietly after the idle timeout", function()
    local ln2, addr2 = start({ idle_timeout = 0.3, header_timeout = 5 })
    H.no_fd_leak(function()
      local c = dial(addr2)
      local t0 = go.now()
      c:settimeout(5)
      local d, err = c:read()
      assert.is_nil(d)
      H.assert_err(err, "eof")
      assert.is_true(go.now() - t0 >= 0.25)
      c:close()
      -- after a response, the idle keep-alive connection closes quietly too
      c = dial(addr2)
      assert(c:write(get("/")))
      assert.are.equal(200, assert(read_response(c)).code)
      t0 = go.now()
      d, err = c:read()
      assert.is_nil(d, "unexpected bytes: " .. tostring(d))
      H.assert_err(err, "eof")
      assert.is_true(go.now() - t0 >= 0.25)
      c:close()
      -- a body that stops coming: 408 once a read waited idle_timeout
      local r
      r, c = exchange(addr2, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
      assert.are.equal(408, r.code)
      assert.are.equal("close", r.headers.connection)
      expect_eof(c)
      c:close()
    end)
    ln2:close()
  end)

  it("a client that vanishes mid-request does not disturb the server", function()
    H.no_fd_leak(function()
      for _, raw in ipairs({
        "GET / HTT",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab",
        get("/") .. get("/") .. get("/"), -- and never reads the answers
      }) do
        local c = dial(addr)
        assert(c:write(raw))
        c:close()
      end
      -- many at once
      local gs = {}
      for i = 1, 20 do
        gs[i] = go(function()
          local c = dial(addr)
          c:write(get("/", "X-Junk: " .. i .. "\r\n"):sub(1, 10 + i))
          go.sleep(0.01)
          c:close()
        end)
      end
      for i = 1, 20 do assert.is_true((go.wait(gs[i], 10))) end
    end)
    assert_serving(addr)
  end)

  it("fuzz: mutated requests never raise inside the server", function()
    local crashes = {}
    local l = assert(net.serve("127.0.0.1:0", function(conn)
      local ok, e = pcall(http.handle, conn, app(), LIMITS)
      if not ok then crashes[#crashes + 1] = e end
    end))
    local a = l:addr()
    local seeds = {
      get("/users/1?x=1&y=%zz"),
      post("/echo", "hello world"),
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
      "GET /inspect HTTP/1.0\r\nConnection: keep-alive\r\nX: y\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    }
    local alphabet = { "\r", "\n", " ", ":", "\0", "\t", "\255", "a", "0", "f", ";",
      "\r\n", "\r\n\r\n", "-", "?", "%", "/", "H" }
    math.randomseed(20240601)
    H.no_fd_leak(function()
      for _ = 1, H.scale(300, 40) do
        local s = seeds[math.random(#seeds)]
        for _ = 1, math.random(1, 4) do
          local i = math.random(1, #s)
          local op = math.random(3)
          if op == 1 then -- delete a byte
            s = s:sub(1, i - 1) .. s:sub(i + 1)
          elseif op == 2 then -- insert
            s = s:sub(1, i - 1) .. alphabet[math.random(#alphabet)] .. s:sub(i)
          else -- replace
            s = s:sub(1, i - 1) .. alphabet[math.random(#alphabet)] .. s:sub(i + 1)
          end
        end
        local c = dial(a)
        c:write(s, get("/"))
        c:closewrite()
        c:settimeout(5)
        local r, err = c:read("a")
        assert.truthy(r or H.is_err(err, "connection reset"), tostring(err))
        if r and r ~= "" then assert.matches("^HTTP/1%.1 %d%d%d ", r) end
        c:close()
      end
    end)
    l:close()
    assert.are.same({}, crashes)
  end)

  it("serves many clients concurrently with keep-alive", function()
    local n, per = H.scale(50, 10), H.scale(20, 5)
    local gs = {}
    for k = 1, n do
      gs[k] = go(function()
        local c = dial(addr)
        for i = 1, per do
          assert(c:write(get("/users/" .. k .. "-" .. i)))
          local r = read_response(c)
          if not r or r.body ~= "user " .. k .. "-" .. i then c:close() return false end
        end
        c:close()
        return true
      end)
    end
    for k = 1, n do assert.are.same({ true, true }, { go.wait(gs[k], 60) }) end
  end)
end)
