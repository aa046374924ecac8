-- httpparse_spec: goluarun.httpparse (bindings/lhttp.c), the C head parser
-- of goluarun.http, against its reference, the LPeg grammar of
-- lua/goluarun/http.lua (http._grammar): hand-written hostile heads, a
-- differential fuzz (same bytes -> same captures, or no match from both),
-- and request-smuggling shapes sent to a real server.
local net = require "net"
local http = require "goluarun.http"
local hp = require "goluarun.httpparse"
local H = require "support.helpers"

local REF = http._grammar

-- a string equal to s but another object when it is long (short strings
-- are interned: one object per content). Not `"" .. s`: that is s itself
local function other(s) return ("\0" .. s):sub(2) end

-- a result as a comparable string: captures in order, tables sorted
local function dump(v)
  if type(v) ~= "table" then return string.format("%q", v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = string.format("%q", k) .. "=" .. dump(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

local function result(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = dump((select(i, ...))) end
  return table.concat(out, " ")
end

-- both parsers on s: asserts the same result and returns it (C's captures)
local function both(kind, s, pos, n)
  local c = result(hp[kind](s, pos, n))
  local r = result(REF[kind](s, pos, n))
  if c ~= r then
    error(string.format("%s parsers differ on %q (pos %s, max %s):\n  C:    %s\n  LPeg: %s",
      kind, s, tostring(pos), tostring(n), c, r), 2)
  end
  return hp[kind](s, pos, n)
end

describe("goluarun.httpparse", function()
  it("parses a request head like the grammar: captures, lower-cased names, joined repeats", function()
    local s = "\r\n\nPOST /a/b?x=1&y=?2 HTTP/1.0\r\nHost: h\r\nX-A:  one two \t\r\n"
      .. "x-a: three\nEmpty:\r\n\r\nBODY"
    local m, path, q, major, minor, h, nx = both("request", s, 1, 100)
    assert.are.same({ "POST", "/a/b", "x=1&y=?2", "1", "0" }, { m, path, q, major, minor })
    assert.are.same({ host = "h", ["x-a"] = "one two, three", empty = "" }, h)
    assert.are.equal("BODY", s:sub(nx))
    local _, p2, q2 = both("request", "GET * HTTP/1.1\r\n\r\n")
    assert.are.same({ "*", nil }, { p2, q2 })
    -- from a position inside a buffer (pipelining)
    local two = "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
    local _, _, _, _, _, _, n1 = both("request", two, 1)
    local _, second = both("request", two, n1)
    assert.are.equal("/2", second)
  end)

  it("plain: HTTP/1.1, origin-form, one Host without a comma, no framing field", function()
    local cases = {
      { "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true },
      { "GET /x?q=1 HTTP/1.1\r\nhOsT: a:80\r\nX-A: b\r\nAccept: */*\r\n\r\n", true },
      { "GET / HTTP/1.0\r\nHost: a\r\n\r\n", false },
      { "GET / HTTP/2.1\r\nHost: a\r\n\r\n", false },
      { "GET / HTTP/1.2\r\nHost: a\r\n\r\n", false },
      { "GET / HTTP/1.1\r\n\r\n", false },
      { "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", false },
      { "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", false },
      { "GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n", false },
      { "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", false },
      { "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", false },
      { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", false },
      { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", false },
      { "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false },
      { "POST / HTTP/1.1\r\nHost: a\r\nEXPECT: 100-continue\r\n\r\n", false },
    }
    for _, case in ipairs(cases) do
      local plain = select(8, both("request", case[1], 1, 100))
      assert.are.equal(case[2], plain, string.format("%q", case[1]))
    end
    assert.is_nil((both("request", "GET / HTTP/1.1\r\nHost: a\r\n")))
  end)

  it("interned strings: common names in any case, methods exact, more fields than a batch", function()
    -- the parser pushes common names, methods and digits from a cache and
    -- scans fields in batches of 32: the same captures as the grammar
    local s = "get / HTTP/1.1\r\nHOST: a\r\nContent-TYPE: t\r\nhoSt: b\r\nHost2: c\r\n"
      .. "Hos: d\r\n\r\n"
    local m, _, _, _, _, h = both("request", s)
    assert.are.equal("get", m)
    assert.are.same({ host = "a, b", ["content-type"] = "t", host2 = "c", hos = "d" }, h)
    for _, meth in ipairs({ "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "GETX", "PO" }) do
      assert.are.equal(meth, (both("request", meth .. " / HTTP/1.1\r\n\r\n")))
    end
    for n = 31, 66 do
      local lines = {}
      for i = 1, n do lines[i] = "F" .. i .. ": v" .. i .. "\r\n" end
      local head = "GET / HTTP/1.1\r\n" .. table.concat(lines) .. "\r\n"
      local _, _, _, _, _, fh = both("request", head, 1, 100)
      assert.are.equal("v" .. n, fh["f" .. n])
      assert.is_nil((both("request", head, 1, n - 1)))
    end
  end)

  it("parses a response head: integer status, reason, repeated fields as a list", function()
    local s = "HTTP/1.1 404 Not  Found \r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\n"
      .. "set-cookie: c=3\r\nX: y\r\n\r\n"
    local major, minor, status, reason, h, nx = both("response", s)
    assert.are.same({ "1", "1", 404, "Not  Found " }, { major, minor, status, reason })
    assert.are.same({ ["set-cookie"] = { "a=1", "b=2", "c=3" }, x = "y" }, h)
    assert.are.equal(#s + 1, nx)
    assert.are.equal("", select(4, both("response", "HTTP/1.1 204\r\n\r\n")))
    assert.are.equal("", select(4, both("response", "HTTP/1.1 200 \n\n")))
  end)

  it("rejects hostile request heads exactly where the grammar does", function()
    local bad = {
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n folded\r\n\r\n",     -- obs-fold
      "GET / HTTP/1.1\r\nHost: t\r\n\tX-A: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",             -- NUL
      "GET /a\0 HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",             -- bare CR
      "GET / HTTP/1.1\rHost: t\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX-A: \127\r\n\r\n",             -- DEL
      "GET / HTTP/1.1\r\nHost : t\r\n\r\n",                         -- space before ':'
      "GET / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\n: v\r\n\r\n",
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nX(A): v\r\n\r\n",
      "GET / HTTP/2\r\n\r\n", "GET / HTTP/1.10\r\n\r\n", "GET / http/1.1\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET /a b HTTP/1.1\r\n\r\n",
      "GET ?q HTTP/1.1\r\n\r\n", "G\128T / HTTP/1.1\r\n\r\n", " GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\n",                               -- incomplete
      "GET / HTTP/1.1\r\nHost: t\r\n\r", "GET / HTTP/1.1", "", "\r\n\r\n",
    }
    for _, s in ipairs(bad) do
      assert.is_nil((both("request", s, 1, 100)), string.format("%q", s))
    end
    -- accepted: bare LF, obs-text in values, tabs inside a value, a
    -- repeated Content-Length joined (the server then answers 400)
    local ok = {
      "GET / HTTP/1.1\nHost: t\n\n",
      "GET / HTTP/1.1\r\nX: caf\233 \t au\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    }
    for _, s in ipairs(ok) do
      assert.is_not_nil((both("request", s, 1, 100)), string.format("%q", s))
    end
    local h = select(6, both("request", ok[3]))
    assert.are.equal("5, 5", h["content-length"])
  end)

  it("max_headers: n fields match, n + 1 do not; huge lines are the caller's limit", function()
    local head = "GET / HTTP/1.1\r\n"
    for i = 1, 5 do head = head .. "X-" .. i .. ": v\r\n" end
    head = head .. "\r\n"
    assert.is_not_nil((both("request", head, 1, 5)))
    assert.is_nil((both("request", head, 1, 4)))
    assert.is_nil((both("response", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", 1, 1)))
    local long = "GET /" .. string.rep("a", 100000) .. " HTTP/1.1\r\nX: "
      .. string.rep("b", 100000) .. "\r\n\r\n"
    local _, path, _, _, _, h, nx = both("request", long)
    assert.are.equal(100001, #path)
    assert.are.equal(100000, #h.x)
    assert.are.equal(#long + 1, nx)
  end)

  it("rejects hostile response heads exactly where the grammar does", function()
    local bad = {
      "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1 200 O\0K\r\n\r\n", "HTTP/1.1 200 OK\rX\r\n\r\n", "HTTP/11 200 OK\r\n\r\n",
      "ICY 200 OK\r\n\r\n", "\r\nHTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 200 OK\r\nX: a\r\n",
    }
    for _, s in ipairs(bad) do
      assert.is_nil((both("response", s)), string.format("%q", s))
    end
  end)

  it("block: field lines of a table, except and own names, what was seen", function()
    local block = hp.block
    local lines, seen, conn = block({ Host = "h", ["user-agent"] = "u", n = 5 })
    local got = {}
    for l in lines:gmatch("([^\r]*)\r\n") do got[#got + 1] = l end
    table.sort(got)
    assert.are.same({ "Host: h", "n: 5", "user-agent: u" }, got)
    assert.are.equal(1 | 2, seen)
    assert.is_nil(conn)
    lines, seen, conn = block({ ["Content-Type"] = "t", Date = "d", X = { "a", "b" },
      Connection = "close", ["x-gone"] = "1", ["content-length"] = "3" },
      { ["x-gone"] = true }, { connection = true, ["content-length"] = true })
    assert.are.equal(4 | 8, seen)
    assert.are.equal("close", conn)
    assert.is_nil(lines:find("x-gone", 1, true))
    assert.is_nil(lines:find("onnection", 1, true))
    assert.is_nil(lines:find("content-length", 1, true))
    assert.truthy(lines:find("X: a\r\n", 1, true) and lines:find("X: b\r\n", 1, true))
    -- past the stack buffer: grows, same bytes
    local big, want = {}, 0
    for i = 1, 300 do
      big["x-field-" .. i] = ("v"):rep(i)
      want = want + #("x-field-" .. i) + 4 + i
    end
    assert.are.equal(want, #block(big))
    assert.are.equal("", (block({})))
    -- bad names and values: nil, what, the key
    assert.are.same({ nil, "name", "Bad Name" }, { block({ ["Bad Name"] = "v" }) })
    assert.are.same({ nil, "name", 1 }, { block({ "v" }) })
    assert.are.same({ nil, "value", "x" }, { block({ x = "a\r\nb: c" }) })
    assert.are.same({ nil, "value", "x" }, { block({ x = "a\0" }) })
    assert.are.same({ nil, "value", "x" }, { block({ x = { "ok", true } }) })
    assert.are.same({ nil, "value", "x" }, { block({ x = false }) })
    assert.has_error(function() block("x") end)
    assert.has_error(function() block({}, 1) end)
  end)

  it("relay: a head's field lines as they go on, names as received", function()
    local relay = hp.relay
    local s = "\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\n"
      .. "X-Secret: s\r\nKeep-Alive: 5\r\nUser-Agent:  u \r\nContent-Type: t\nDATE: d\r\n"
      .. "TE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nTrailer: t\r\n"
      .. "Transfer-Encoding: chunked\r\nContent-Length: 5\r\nProxy-Authorization: p\r\n"
      .. "Proxy-Authenticate: p\r\nX-Forwarded-For: 1\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\nBODY"
    local lines, seen, nx = relay(s)
    assert.are.equal("Host: h\r\nUser-Agent: u\r\nContent-Type: t\r\nDATE: d\r\n"
      .. "X-Forwarded-For: 1\r\nSet-Cookie: a\r\nset-cookie: b\r\n", lines)
    assert.are.equal(1 | 2 | 4 | 8, seen)
    assert.are.equal("BODY", s:sub(nx))
    -- drop: lower-case names; from a position; a status line; field lines alone
    lines = relay("xx" .. s, 3, { ["x-forwarded-for"] = true, date = true, ["set-cookie"] = true })
    assert.are.equal("Host: h\r\nUser-Agent: u\r\nContent-Type: t\r\n", lines)
    assert.are.same({ "A: 1\r\n", 0, 26 }, { relay("HTTP/1.1 200 OK\r\nA: 1\r\n\r\n") })
    assert.are.same({ "A: 1\r\nB: 2\r\n", 0, 12 }, { relay("A: 1\nB: 2\r\n") })
    assert.are.same({ "", 0, 1 }, { relay("") })
    -- drop as a string of comma-separated names: the same
    assert.are.equal(lines, (relay("xx" .. s, 3, "x-forwarded-for,date,,set-cookie")))
    -- more drop names than the C array holds: the table is asked instead
    local many = {}
    for i = 1, 40 do many["x-" .. i] = true end
    many.host = true
    assert.are.equal("User-Agent: u\r\n", (relay("GET / HTTP/1.1\r\nHost: h\r\nX-7: 7\r\nUser-Agent: u\r\n\r\n", 1, many)))
    -- names longer than the C stack's copy: still dropped, named or kept
    local long = ("X-Long-"):rep(12)
    assert.are.equal(long .. ": 3\r\n", (relay("GET / HTTP/1.1\r\nConnection: " .. long:upper() .. "a\r\n"
      .. long .. "A: 1\r\n" .. long .. "b: 2\r\n" .. long .. ": 3\r\n\r\n", 1, { [long:lower() .. "b"] = true })))
    -- past the stack buffer: grows, same bytes
    local big = { "GET / HTTP/1.1\r\n" }
    for i = 1, 200 do big[#big + 1] = "X-Field-" .. i .. ": " .. ("v"):rep(i) .. "\r\n" end
    local raw = table.concat(big) .. "\r\n"
    assert.are.equal(table.concat(big, "", 2), (relay(raw)))
    -- not field lines: nil
    for _, bad in ipairs({
      "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "GET / HTTP/1.1\r\nA: a\0b\r\n\r\n",
      "GET / HTTP/1.1\r\nA: a\rb\r\n\r\n", "GET / HTTP/1.1\r\nA: a\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nA : a\r\n\r\n", "GET / HTTP/1.1\r\nA: a", "GET / HTTP/1.1",
      "A: a\r\nB\r\n", "A: \127\r\n",
    }) do
      assert.is_nil(relay(bad), string.format("%q", bad))
    end
    local over = { "GET / HTTP/1.1\r\n" }
    for i = 1, 257 do over[#over + 1] = "A" .. i .. ": v\r\n" end
    assert.is_nil(relay(table.concat(over) .. "\r\n"))
    over[#over] = nil
    assert.truthy(relay(table.concat(over) .. "\r\n"))
    -- misuse raises
    assert.has_error(function() relay(nil) end)
    assert.has_error(function() relay("x", 0) end)
    assert.has_error(function() relay("x", 1, 5) end)
    assert.has_error(function() relay("A: 1\r\n\r\n", 1, ("a,"):rep(17)) end) -- 16 names at most
  end)

  it("relay's tail: strings appended to the lines as they are, one string", function()
    local relay = hp.relay
    local s = "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: a\r\nUser-Agent: u\r\n\r\n"
    assert.are.same({ "Host: h\r\nUser-Agent: u\r\nX-Forwarded-For: a, b\r\nX: 1\r\n", 3, #s + 1 },
      { relay(s, 1, "x-forwarded-for", "X-Forwarded-For: ", "a", ", b\r\n", "X: 1\r\n") })
    assert.are.same({ "Host: h\r\n", 1, 12 }, { relay("Host: h\r\n\r\n", 1, nil, "") })
    assert.are.same({ "T\r\n", 0, 1 }, { relay("", 1, nil, "T\r\n") }) -- (not in seen)
    local long = ("x"):rep(3000) -- past the C stack buffer
    assert.are.equal("A: 1\r\n" .. long .. long, (relay("A: 1\r\n\r\n", 1, {}, long, long)))
    local over = { "GET / HTTP/1.1\r\n" }
    for i = 1, 257 do over[#over + 1] = "A" .. i .. ": v\r\n" end
    assert.is_nil(relay(table.concat(over) .. "\r\n", 1, nil, "T\r\n")) -- declined: no tail
    -- a tail is strings only; a bad one raises before anything is made
    assert.has_error(function() relay("A: 1\r\n", 1, nil, "x", 5) end,
      "bad argument #5 to 'relay' (string expected, got number)")
    assert.has_error(function() relay("A: 1\r\n", 1, nil, {}) end,
      "bad argument #4 to 'relay' (string expected, got table)")
    assert.has_error(function() relay("A: 1\r\n", 1, nil, nil, "x") end,
      "bad argument #4 to 'relay' (string expected, got nil)")
  end)

  it("readresponse's relayed lines are relay's, from the one scan of its parse", function()
    local go = require "go"
    local rr = require("goluarun.httpread").readresponse
    local many = {}
    for i = 1, 20 do many["x-" .. i] = true end -- (a table past 16 names: looked up)
    local big = { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" }
    for i = 1, 256 do big[#big + 1] = "A" .. i .. ": v\r\n" end
    local heads = { -- { head, drop }
      { "HTTP/1.1 200 OK\r\nDate: d\r\nServer: s\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n",
        "date,server" },
      { "HTTP/1.1 200 OK\nConnection: X-A, keep-alive\nX-A: 1\nX-B:  2 \nContent-Length: 0\n\n", "" },
      { "HTTP/1.1 200 OK\r\nX-1: 1\r\nX-2: 2\r\nHost: h\r\nContent-Length: 0\r\n\r\n", many },
      { "HTTP/1.1 200 OK\r\nConnection: " .. ("L"):rep(70) .. "\r\n" .. ("l"):rep(70)
        .. ": 1\r\nUser-Agent: u\r\nContent-Length: 0\r\n\r\n", {} },
      { table.concat(big) .. "\r\n", "" }, -- 257 field lines (Content-Length too): declined
      { table.concat(big, "", 1, 256) .. "\r\n", "" }, -- 256: relayed
      { "HTTP/1.1 100 Continue\r\nX: 1\r\n\r\nHTTP/1.1 204 No\r\nX: 2\r\n\r\n", "" }, -- 1xx skipped
    }
    local ln = assert(net.listen("127.0.0.1:0"))
    finally(function() ln:close() end)
    go(function()
      local c = ln:accept()
      for _, h in ipairs(heads) do assert(c:write(h[1])) end
      c:read(1) -- (until the client closes)
      c:close()
    end)
    local c = assert(net.dial(ln:addr(), 5))
    c:settimeout(5)
    local got = {}
    for i, h in ipairs(heads) do
      local r = table.pack(rr(c, 65536, 300, nil, false, 65536, h[2]))
      assert.are.equal(11, r.n, i)
      local lines, seen = hp.relay(r[5], 1, h[2])
      assert.are.same({ lines, lines and seen or 0 }, { r[10], r[11] }, i)
      got[i] = r
    end
    assert.are.same({ "Content-Type: t\r\n", 4 }, { got[1][10], got[1][11] })
    assert.are.same({ "X-B: 2\r\n", 0 }, { got[2][10], got[2][11] })
    assert.are.same({ "Host: h\r\n", 1 }, { got[3][10], got[3][11] })
    assert.are.same({ "User-Agent: u\r\n", 2 }, { got[4][10], got[4][11] })
    assert.are.same({ nil, 0 }, { got[5][10], got[5][11] })
    assert.are.equal(table.concat(big, "", 2, 256), got[6][10])
    assert.are.same({ 204, "X: 2\r\n", 0 }, { got[7][1], got[7][10], got[7][11] })
    c:close()
  end)

  it("relay of the head request just parsed: its kept spans, the same as a scan", function()
    local relay, request = hp.relay, hp.request
    local function same_as_scan(s, pos, drop, ...)
      local kept = { relay(s, pos, drop, ...) }
      assert.are.same({ relay(other(s), pos, drop, ...) }, kept, string.format("%q", s))
      return table.unpack(kept)
    end
    local s = "\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n"
      .. "Keep-Alive: 5\r\nUser-Agent:  u \r\nX-Forwarded-For: 1\r\nDATE: d\r\n\r\nBODY"
    assert.truthy(request(s))
    local lines, seen, nx = same_as_scan(s, 1, "x-forwarded-for", "X-Forwarded-For: 1, 2\r\n")
    assert.are.equal("Host: h\r\nUser-Agent: u\r\nDATE: d\r\nX-Forwarded-For: 1, 2\r\n", lines)
    assert.are.same({ 1 | 2 | 8, "BODY" }, { seen, s:sub(nx) })
    -- pipelined: the second head of a buffer; the first's position scans
    local two = s:sub(3, -5) .. "GET /y HTTP/1.1\r\nHost: g\r\nA: 1\r\n\r\n"
    local _, _, _, _, _, _, nx1 = request(two)
    assert.truthy(request(two, nx1))
    assert.are.equal("Host: g\r\nA: 1\r\n", (same_as_scan(two, nx1)))
    assert.are.equal("Host: h\r\nUser-Agent: u\r\nDATE: d\r\n", (same_as_scan(two, 1, "x-forwarded-for")))
    assert.are.same({ "", 0, #two + 1 }, { same_as_scan(two, #two + 1) })
    -- a failed parse keeps nothing: a head parsed before it is scanned again
    assert.truthy(request(s))
    assert.is_nil(request(s:gsub("Host: h", "Host: \0")))
    assert.are.equal("Host: h\r\nUser-Agent: u\r\n", (same_as_scan(s, 1, "date,x-forwarded-for")))
    -- more field lines than relay takes: declined either way; 256: relayed
    local over = { "GET / HTTP/1.1\r\n" }
    for i = 1, 257 do over[#over + 1] = "A" .. i .. ": v\r\n" end
    local big = table.concat(over) .. "\r\n"
    assert.truthy(request(big, 1, 300))
    assert.is_nil(same_as_scan(big, 1))
    over[#over] = nil
    big = table.concat(over) .. "\r\n"
    assert.truthy(request(big, 1, 300))
    assert.are.equal(table.concat(over, "", 2), (same_as_scan(big, 1)))
    -- the tail's misuse still raises with kept spans
    assert.truthy(request(s))
    assert.has_error(function() relay(s, 1, nil, 5) end,
      "bad argument #4 to 'relay' (string expected, got number)")
  end)

  it("lines of relay's own result: the tail is still checked (CR/LF injection)", function()
    local relay, lines = hp.relay, hp.lines
    local s = "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: u\r\nX-A: 1\r\n\r\n"
    local function both(...)
      local out = relay(s, 1, nil, ...)
      local seen = lines(out)
      assert.are.equal(lines(other(out)), seen, string.format("%q", out))
      return seen
    end
    assert.are.equal(1 | 2, both())
    assert.are.equal(1 | 2 | 4, both("X-Forwarded-For: 1\r\n", "Content-Type: t\r\n"))
    for _, tail in ipairs({ "X: a\r\nConnection: close\r\n", "X: a\nY: b\r\n",
      "X: a\r\n\r\nGET /smuggled HTTP/1.1\r\n", "X: a\rY: b\r\n", "X: a\0\r\n", "X: a",
      "Transfer-Encoding: chunked\r\n", "X : a\r\n", "X:  a\r\n" }) do
      assert.is_nil(both(tail), string.format("%q", tail))
    end
  end)

  it("lines: field lines exactly as relay writes them, else nil", function()
    local lines = hp.lines
    assert.are.equal(0, lines(""))
    assert.are.equal(1 | 2, lines("Host: h\r\nX-A: 1\r\nuser-agent: u\r\nX-E: \r\n"))
    for _, s in ipairs({ "A:1\r\n", "A: 1\n", "A: 1 \r\n", "A:  1\r\n", "A: 1\r\n\r\n",
      "Bad Name: 1\r\n", "A: \0\r\n", "A: 1", "Connection: x\r\n", "TE: x\r\n",
      "content-length: 1\r\n", "GET / HTTP/1.1\r\nA: 1\r\n" }) do
      assert.is_nil(lines(s), s)
    end
    -- what it accepts, relay gives back unchanged
    local s = "Host: h\r\nX-Forwarded-For: 1, 2\r\nSet-Cookie: a=b; c\r\n"
    assert.are.equal(s, (hp.relay(s)))
    assert.are.equal(1, lines(s))
    assert.has_error(function() lines(nil) end)
  end)

  it("response with only: the other fields checked but left out", function()
    local s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: e\r\nX-A: 1\r\nx-a: 2\r\n\r\nok"
    local _, _, status, _, h, nx = hp.response(s, 1, 100, { ["content-length"] = true, ["x-a"] = true })
    assert.are.equal(200, status)
    assert.are.same({ ["content-length"] = "2", ["x-a"] = { "1", "2" } }, h)
    assert.are.equal("ok", s:sub(nx))
    assert.are.same({}, select(5, hp.response(s, 1, 100, {})))
    assert.is_nil(hp.response("HTTP/1.1 200 OK\r\nA: \0\r\n\r\n", 1, 100, {}))
    assert.is_nil(hp.response(s, 1, 3, {})) -- max_headers counts every field
    assert.has_error(function() hp.response(s, 1, 100, "x") end)
  end)

  -- values are scanned eight bytes a step (a word), names compared a word
  -- at a time: every edge byte at every place of a word, and at the end
  it("values a word at a time: each edge byte at each place, OWS trimmed, the buffer's end", function()
    local head = "GET / HTTP/1.1\r\n"
    -- ok: value bytes, kept; bad: not, no match anywhere
    local ok = { "\128", "\255", "\t", " ", "~", "!", "\200" }
    local bad = { "\127", "\0", "\31", "\1", "\r" }
    for len = 1, 19 do
      for at = 1, len do
        for _, b in ipairs(ok) do
          local v = ("v"):rep(at - 1) .. b .. ("w"):rep(len - at)
          local want = v:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
          local h = select(6, both("request", head .. "A: " .. v .. "\r\n\r\n"))
          assert.are.equal(want, h.a, string.format("%q", v))
          assert.are.equal("A: " .. want .. "\r\n", (hp.relay("A:" .. v .. "\r\n")))
        end
        for _, b in ipairs(bad) do
          local v = ("v"):rep(at - 1) .. b .. ("w"):rep(len - at)
          assert.is_nil((both("request", head .. "A: " .. v .. "\r\n\r\n")), string.format("%q", v))
          assert.is_nil((both("response", "HTTP/1.1 200 " .. v .. "\r\n\r\n")), string.format("%q", v))
          assert.is_nil(hp.relay("A: " .. v .. "\r\n"), string.format("%q", v))
          assert.is_nil(hp.lines("A: " .. v .. "\r\n"), string.format("%q", v))
        end
      end
    end
    -- OWS: runs of SP/HTAB around and inside a long value; empty values
    local _, _, _, _, _, h = both("request", head .. "A: \t x y\t\tz" .. (" "):rep(9) .. "\t\r\n"
      .. "B:\r\nC: \t \t \t \t \t \r\nD:" .. ("\t"):rep(17) .. "d" .. ("\t"):rep(17) .. "\n\r\n")
    assert.are.same({ a = "x y\t\tz", b = "", c = "", d = "d" }, h)
    -- a value at the end of the buffer, no EOL: no field line (relay: nil)
    for len = 0, 17 do
      local v = ("x"):rep(len)
      assert.is_nil(hp.relay("A: " .. v), v)
      assert.is_nil(hp.lines("A: " .. v), v)
      assert.is_nil((both("request", head .. "A: " .. v)), v)
      assert.are.same({ "A: " .. v .. "\r\n", 0, 6 + len }, { hp.relay("A: " .. v .. "\r\n") })
      assert.are.equal(0, hp.lines("A: " .. v .. "\r\n"))
    end
    -- a long reason phrase: the same scan
    local _, _, _, reason = both("response", "HTTP/1.1 200 a\tlong \128\255 reason phrase \r\n\r\n")
    assert.are.equal("a\tlong \128\255 reason phrase ", reason)
  end)

  it("names a word at a time: any case, near misses, bytes around A..Z", function()
    local relay = hp.relay
    -- hop-by-hop names in odd cases are left out; one byte off, kept
    for _, name in ipairs({ "CoNtEnT-LeNgTh", "TRANSFER-ENCODING", "proxy-AUTHORIZATION", "tE",
      "kEEP-aLIVE", "UpGrAdE" }) do
      assert.are.equal("", (relay(name .. ": 1\r\n")), name)
      assert.is_nil(hp.lines(name .. ": 1\r\n"), name)
    end
    for _, name in ipairs({ "Content-Lengti", "Content-Lengt", "Transfer-Encodinh", "ue", "Keep-Alivf",
      "Proxy-Authorizatio", "Connectiom", "Xonnection", "Content-Length-" }) do
      assert.are.equal(name .. ": 1\r\n", (relay(name .. ": 1\r\n")), name)
      assert.are.equal(0, hp.lines(name .. ": 1\r\n"), name)
    end
    assert.are.same({ 1 | 2 | 4 | 8, 1 | 2 | 4 | 8 }, {
      select(2, relay("HOST: h\r\nuSER-aGENT: u\r\ncontent-TYPE: t\r\nDaTe: d\r\n")),
      hp.lines("HOST: h\r\nuSER-aGENT: u\r\ncontent-TYPE: t\r\nDaTe: d\r\n") })
    assert.are.same({ 0, 0 }, { select(2, relay("Hosu: h\r\nUser-Agenu: u\r\nContent-Typf: t\r\n")),
      hp.lines("Hosu: h\r\nUser-Agenu: u\r\nContent-Typf: t\r\n") })
    -- '@' '[' '^' sit next to A..Z, '`' '{' '~' next to a..z: no byte but
    -- A..Z is lowered (a Connection value, a drop set, in words and not)
    for _, n in ipairs({ 1, 2, 5, 9 }) do
      local tail = ("~"):rep(n)
      local grave = "X-" .. ("`"):rep(n) .. ": 3\r\n"
      local fields = "X-" .. tail .. ": 1\r\nX-" .. ("^"):rep(n) .. ": 2\r\n" .. grave
      assert.are.equal("X-" .. tail .. ": 1\r\n" .. grave,
        (relay("Connection: x-" .. ("^"):rep(n) .. ", x-" .. ("@"):rep(n) .. "\r\n" .. fields)))
      assert.are.equal(fields, (relay(fields, 1, "x-" .. ("[]"):rep(n) .. ",x-" .. ("@"):rep(n))))
      assert.are.equal("X-" .. ("^"):rep(n) .. ": 2\r\n" .. grave, (relay(fields, 1, "x-" .. tail)))
    end
    -- obs-text in a Connection value never names a field ("\193" & 0x7F is "A")
    assert.are.equal("XX-A: 1\r\n", (relay("Connection: XX-\193\r\nXX-A: 1\r\n")))
    assert.are.equal("", (relay("Connection: xX-a\r\nXX-A: 1\r\n")))
    -- the response's common names and the request's interned ones, any case
    local h = select(5, both("response", "HTTP/1.1 200 OK\r\nCONTENT-length: 2\r\nX-Forwarded-FOR: 1\r\n"
      .. "content-lengtx: 3\r\n\r\n"))
    assert.are.same({ ["content-length"] = "2", ["x-forwarded-for"] = "1", ["content-lengtx"] = "3" }, h)
  end)

  it("misuse raises", function()
    assert.has_error(function() hp.request(nil) end)
    assert.has_error(function() hp.request("x", 0) end)
    assert.has_error(function() hp.response("x", 1, -1) end)
  end)
end)

---------------------------------------------------------------------------
-- differential fuzz
---------------------------------------------------------------------------

-- pick(good, bad): mostly a valid piece, sometimes a hostile one
local function pick(good, bad)
  if bad and math.random(8) == 1 then good = bad end
  return good[math.random(#good)]
end

local TOKENS = { "GET", "POST", "Host", "X-A", "x-a", "Content-Length", "Transfer-Encoding",
  "a", "A1!#$%&'*+-.^_`|~", "Set-Cookie", "X-Forwarded-For", "CONNECTION", "Keep-Alive" }
local BAD_TOKENS = { "G(T", "", "X A", "X\0", "\128" }
local TARGETS = { "/", "/a/b", "/a?b", "/?", "*", "/a?b?c", "http://h/p" }
local BAD_TARGETS = { "?x", "/\0", "/\127", "/caf\233", "/a b", "" }
local VERSIONS = { "HTTP/1.1", "HTTP/1.0", "HTTP/2.0" }
local BAD_VERSIONS = { "HTTP/1", "HTTP/11.1", "http/1.1", "HTTP/1.1 " }
local EOLS = { "\r\n", "\r\n", "\n" }
local BAD_EOLS = { "\r", "\r\r\n", "", "\n\r" }
local VALUES = { "", "v", " v ", "a b", "a\tb", "\t", "caf\233", "chunked", "5", "5, 5",
  "x   ", "a long value of twenty-nine", "\tlong\128\255obs-text value\t ", ("w"):rep(16) .. "  " }
local BAD_VALUES = { "a\0b", "a\rb", "\127", "\1" }
local REASONS = { "OK", "", " ", "Not Found", "a\tb", "\233" }
local BAD_REASONS = { "\0", "a\rb" }

local function gen_fields(out)
  for _ = 1, math.random(0, 6) do
    out[#out + 1] = pick(TOKENS, BAD_TOKENS) .. pick({ ":" }, { " :", "" })
      .. pick({ "", " ", "\t" }) .. pick(VALUES, BAD_VALUES) .. pick(EOLS, BAD_EOLS)
    if math.random(30) == 1 then out[#out + 1] = pick({ " folded", "\tx" }) .. pick(EOLS) end
  end
  out[#out + 1] = pick(EOLS, BAD_EOLS)
  if math.random(4) == 1 then out[#out + 1] = "rest" end
end

local function gen_request()
  local out = { pick({ "", "", "\r\n", "\n", "\r" }) }
  out[#out + 1] = pick(TOKENS, BAD_TOKENS) .. pick({ " " }, { "  ", "\t" })
    .. pick(TARGETS, BAD_TARGETS) .. " " .. pick(VERSIONS, BAD_VERSIONS) .. pick(EOLS, BAD_EOLS)
  gen_fields(out)
  return table.concat(out)
end

local function gen_response()
  local out = { pick(VERSIONS, BAD_VERSIONS) .. " " .. pick({ "200", "404" }, { "20", "2000", "abc" })
    .. pick({ " ", "" }, { "  ", "\t" }) .. pick(REASONS, BAD_REASONS) .. pick(EOLS, BAD_EOLS) }
  gen_fields(out)
  return table.concat(out)
end

-- a few random byte edits: replace, insert, delete, truncate
local function mutate(s)
  for _ = 1, math.random(1, 3) do
    local i = math.random(#s + 1)
    local op = math.random(4)
    local b = string.char(pick({ 0, 9, 10, 13, 32, 58, 63, 127, 128, 255, math.random(0, 255) }))
    if op == 1 then s = s:sub(1, i - 1) .. b .. s:sub(i + 1)
    elseif op == 2 then s = s:sub(1, i - 1) .. b .. s:sub(i)
    elseif op == 3 then s = s:sub(1, i - 1) .. s:sub(i + 1)
    else s = s:sub(1, i) end
  end
  return s
end

describe("goluarun.httpparse differential fuzz against the LPeg grammar", function()
  local seed = tonumber(os.getenv("HTTPPARSE_SEED") or "") or os.time()
  local N = H.scale(20000, 5000)

  for _, kind in ipairs({ "request", "response" }) do
    it(kind .. " heads: same captures or no match from both (seed " .. seed .. ")", function()
      math.randomseed(seed)
      local gen = kind == "request" and gen_request or gen_response
      local matched = 0
      for _ = 1, N do
        local s = gen()
        if math.random(4) == 1 then s = mutate(s) end
        local pos = math.random(4) == 1 and math.random(#s + 1) or 1
        local n = math.random(3) == 1 and math.random(1, 4) or 100
        if both(kind, s, pos, n) ~= nil then matched = matched + 1 end
      end
      -- both outcomes are exercised
      assert.is_true(matched > N // 50, "matched " .. matched)
      assert.is_true(matched < N - N // 50, "matched " .. matched)
    end)
  end

  -- relay's reference, over a head the grammar matched: the field lines
  -- after the start line, trimmed, minus hop-by-hop, Connection-named and
  -- dropped names
  local HOP = { connection = true, ["keep-alive"] = true, ["proxy-connection"] = true, te = true,
    trailer = true, ["transfer-encoding"] = true, upgrade = true, ["content-length"] = true,
    ["proxy-authenticate"] = true, ["proxy-authorization"] = true }
  local function relay_ref(s, pos, nx, drop)
    local head = s:sub(pos, nx - 1):gsub("^[\r\n]*", "")
    local fields, named = {}, {}
    for line in head:gmatch("([^\n]*)\n") do fields[#fields + 1] = line:gsub("\r$", "") end
    table.remove(fields, 1) -- the start line
    fields[#fields] = nil -- the empty line
    for i, line in ipairs(fields) do
      local k, v = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
      fields[i] = { k, v }
      if k:lower() == "connection" then
        for t in v:gmatch("[^,%s]+") do named[t:lower()] = true end
      end
    end
    local out = {}
    for _, f in ipairs(fields) do
      local l = f[1]:lower()
      if not (HOP[l] or named[l] or drop[l]) then out[#out + 1] = f[1] .. ": " .. f[2] .. "\r\n" end
    end
    return table.concat(out)
  end

  it("relay and response's only: the grammar's fields, filtered (seed " .. seed .. ")", function()
    math.randomseed(seed + 1)
    local ONLY = { host = true, ["x-a"] = true, ["set-cookie"] = true }
    local checked = 0
    for i = 1, N // 2 do
      local kind = i % 2 == 0 and "request" or "response"
      local s = (kind == "request" and gen_request or gen_response)()
      if math.random(4) == 1 then s = mutate(s) end
      local pos = math.random(4) == 1 and math.random(#s + 1) or 1
      local r = { REF[kind](s, pos, 100) }
      if kind == "response" then
        local c = { hp.response(s, pos, 100, ONLY) }
        if r[1] then
          for k in pairs(r[5]) do if not ONLY[k] then r[5][k] = nil end end
        end
        assert.are.equal(dump(r), dump(c), string.format("only: %q", s))
      end
      -- (a request parsed first: relay takes its kept spans; a copy scans)
      if kind == "request" then hp.request(s, pos, 100) end
      local kept = { hp.relay(s, pos, ONLY, "T: 1\r\n") }
      assert.are.same({ hp.relay(other(s), pos, ONLY, "T: 1\r\n") }, kept)
      if r[1] then
        local nx = r[kind == "request" and 7 or 6]
        local lines, rnx = kept[1], kept[3]
        assert.are.equal(relay_ref(s, pos, nx, ONLY) .. "T: 1\r\n", lines, string.format("relay: %q", s))
        assert.are.equal(nx, rnx)
        assert.are.equal(hp.lines(other(lines)), hp.lines(lines))
        checked = checked + 1
      end
    end
    assert.is_true(checked > N // 50, "checked " .. checked)
  end)
end)

---------------------------------------------------------------------------
-- request smuggling shapes against a real server
---------------------------------------------------------------------------

describe("goluarun.http against request-smuggling shapes", function()
  local ln, addr
  setup(function()
    H.warmup()
    ln = assert(http.serve("127.0.0.1:0", function(req, res)
      local body, err = req:body()
      if not body then error(err) end -- answered with the body's status (400, 413, ...)
      res:send("len " .. #body .. "\n")
    end, { on_error = function() end }))
    addr = ln:addr()
  end)
  teardown(function() ln:close() end)

  -- the status of the first answer, and whether the connection then ends
  local function answer(raw)
    local c = assert(net.dial(addr, 5))
    c:settimeout(5)
    assert(c:write(raw))
    local line = assert(c:read("l"))
    local code = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
    local closed = false
    while true do
      local l = assert(c:read("l"))
      if l == "" then break end
      if l:lower() == "connection: close" then closed = true end
    end
    c:close()
    return code, closed
  end

  it("rejects and closes: CL+TE, two lengths, TE not chunked last, odd spellings", function()
    local P = "POST / HTTP/1.1\r\nHost: t\r\n"
    local bad = {
      P .. "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      P .. "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
      P .. "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
      P .. "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
      P .. "Content-Length: 4, 4\r\n\r\nabcd",
      P .. "Content-Length: +4\r\n\r\nabcd",
      P .. "Content-Length: 0x4\r\n\r\nabcd",
      P .. "Content-Length: 4 4\r\n\r\nabcd",
      P .. "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
      P .. "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
      P .. "Transfer-Encoding:\tchunked\r\n folded\r\n\r\n0\r\n\r\n",
      P .. " Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      P .. "Transfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\n",
      P .. "Transfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n",
    }
    H.no_fd_leak(function()
      for _, raw in ipairs(bad) do
        local code, closed = answer(raw)
        assert.are.equal(400, code, string.format("%q", raw))
        assert.is_true(closed, string.format("%q", raw))
      end
      -- chunked twice: "chunked" last after a coding it does not apply
      assert.are.same({ 501, true }, { answer(P .. "Transfer-Encoding: chunked\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") })
    end)
  end)

  it("accepts the legitimate shapes next to them", function()
    H.no_fd_leak(function()
      assert.are.same({ 200, false },
        { answer("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked \r\n\r\n0\r\n\r\n") })
      assert.are.same({ 200, false },
        { answer("POST / HTTP/1.1\nHost: t\nContent-Length: 3\n\nabc") })
      assert.are.same({ 505, true }, { answer("GET / HTTP/2.0\r\nHost: t\r\n\r\n") })
      local many = "GET / HTTP/1.1\r\nHost: t\r\n" .. string.rep("X: y\r\n", 101) .. "\r\n"
      assert.are.same({ 431, true }, { answer(many) })
      local huge = "GET / HTTP/1.1\r\nHost: t\r\nX: " .. string.rep("y", 20000) .. "\r\n\r\n"
      assert.are.same({ 431, true }, { answer(huge) })
    end)
  end)
end)
