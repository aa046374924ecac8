-- httpread_answer_spec: readresponse's `answer` (its 9th argument,
-- http.proxy's fast path: the answer after its status line made from the
-- head's spans, no headers table) against its table path, on the same
-- hand-written answers sent over a real loopback conn twice: where the
-- 12th result is given it is the table path's relayed lines, a
-- Content-Length line and its body; status and close agree; the same
-- bytes are consumed (a pipelined tail byte is still there to read).
-- Under GOLUA_MOCKEAGAIN reads move a byte at a time, so a body is never
-- buffered with its head: the fast path is only required outside it.
local go = require "go"
local net = require "net"
local httpread = require "goluarun.httpread"
local H = require "support.helpers"

H.warmup()

local T = H.scale(10, 60)
local ONLY = "connection,content-length,location,transfer-encoding"
local DROP = "date,server"
local CAP = 64
local TAIL = "X" -- a pipelined byte after each answer

local ln

setup(function() ln = assert(net.listen("127.0.0.1:0")) end)
teardown(function() ln:close() end)

-- sends the pieces of one answer (pausing between them) on an accepted
-- conn, held open until done receives (the reader is done)
local function serve(pieces, done)
  local s = assert(ln:accept(T))
  for i, p in ipairs(pieces) do
    if i > 1 then go.sleep(0.05) end
    s:write(p) -- (unchecked: after a bad head the reader closes before the end)
  end
  done:recv()
  s:close()
end

-- what the table path's results make of the answer: the relayed lines,
-- the Content-Length line and the body (read on when not buffered whole)
local function table_answer(c, r)
  if r[6] ~= "length" and r[6] ~= "none" then return nil end
  local body = r[9] or ""
  if r[6] == "length" and not r[9] then body = assert(c:read(r[7])) end
  return r[10] .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end

-- one exchange of the pieces: readresponse with answer (true or nil);
-- the outcome { n, status, close, answer, err, rest } where rest is the
-- bytes left to read after the answer (and its body, read on)
local function exchange(pieces, head, answer, after)
  local done = go.chan(1)
  local h = go(serve, pieces, done)
  local c = assert(net.dial(ln:addr()))
  c:settimeout(T)
  local r = table.pack(httpread.readresponse(c, 16384, 100, ONLY, head, CAP, DROP, nil, answer))
  local o = { n = r.n, status = r[1], close = r[8], err = r[1] == nil and r[2] or nil }
  if r.n == 12 then
    o.answer = r[12]
    assert.are.equal("boolean", type(r[8]))
    for i = 2, 11 do
      if i ~= 8 then assert.is_nil(r[i]) end
    end
  elseif r[1] then
    o.answer, o.mode = table_answer(c, r), r[6]
  end
  if r[1] then o.rest = assert(c:read(after)) end
  done:send(true)
  c:close()
  assert(go.wait(h))
  return o
end

-- the same answer both ways: the outcomes agree; fast: the 12th result is
-- required (outside GOLUA_MOCKEAGAIN), false: refused, nil: either
local function both(case)
  local after = case.rest and #case.rest or #TAIL
  local pieces = { table.unpack(case.pieces) }
  pieces[#pieces] = pieces[#pieces] .. TAIL
  local t = exchange(pieces, case.head or false, nil, after)
  local f = exchange(pieces, case.head or false, true, after)
  assert.is_true(t.n ~= 12, "the table path gave an answer string")
  if case.fast and not H.mock() then assert.are.equal(12, f.n, "no fast answer") end
  if case.fast == false then assert.are_not.equal(12, f.n, "a fast answer") end
  assert.are.equal(t.status, f.status)
  assert.are.equal(t.close, f.close)
  assert.are.equal(t.err, f.err)
  assert.are.equal(t.answer, f.answer)
  assert.are.equal(t.rest, f.rest)
  if t.status then assert.are.equal(case.rest or TAIL, t.rest) end
  return t, f
end

local NGINX = "HTTP/1.1 200 OK\r\n"
  .. "Server: nginx/1.22.1\r\n"
  .. "Date: Mon, 07 Dec 2026 10:00:00 GMT\r\n"
  .. "Content-Type: text/plain\r\n"
  .. "Content-Length: 5\r\n"
  .. "Last-Modified: Mon, 07 Dec 2026 09:00:00 GMT\r\n"
  .. "Connection: keep-alive\r\n"
  .. 'ETag: "abc-5"\r\n'
  .. "Accept-Ranges: bytes\r\n\r\n"

describe("readresponse's answer", function()
  it("gives the table path's lines, Content-Length and body for nginx's 200", function()
    local t = both { pieces = { NGINX .. "hello" }, fast = true }
    assert.are.equal(200, t.status)
    assert.is_false(t.close)
    assert.are.equal("Content-Type: text/plain\r\nLast-Modified: Mon, 07 Dec 2026 09:00:00 GMT\r\n"
      .. 'ETag: "abc-5"\r\nAccept-Ranges: bytes\r\nContent-Length: 5\r\n\r\nhello', t.answer)
  end)

  it("agrees on close: Connection: close, HTTP/1.0 with and without keep-alive", function()
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok" },
      fast = true }
    assert.is_true(t.close)
    t = both { pieces = { "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok" }, fast = true }
    assert.is_true(t.close)
    t = both { pieces = { "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok" },
      fast = true }
    assert.is_false(t.close)
  end)

  it("makes Content-Length 0 an empty body", function()
    local t = both { pieces = { "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" }, fast = true }
    assert.are.equal("Content-Length: 0\r\n\r\n", t.answer)
  end)

  it("takes a body of the cap and leaves one past it to the table path", function()
    local at = ("a"):rep(CAP)
    both { pieces = { "HTTP/1.1 200 OK\r\nContent-Length: " .. #at .. "\r\n\r\n" .. at }, fast = true }
    local body = ("b"):rep(CAP + 1)
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body },
      fast = false }
    assert.are.equal("length", t.mode)
  end)

  it("ends the same when the body comes after a pause", function()
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 6\r\n\r\nabc", "def" } }
    assert.are.equal("X-A: 1\r\nContent-Length: 6\r\n\r\nabcdef", t.answer)
  end)

  it("refuses a transfer coding and a repeated Content-Length", function()
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
      rest = "0\r\n\r\nX", fast = false }
    assert.are.equal("chunked", t.mode)
    t = both { pieces = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok" },
      rest = "okX", fast = false }
    assert.is_nil(t.answer)
  end)

  it("refuses 204, 304, a status past 599 and an answer to HEAD", function()
    both { pieces = { "HTTP/1.1 600 Odd\r\nContent-Length: 1\r\n\r\n!" }, fast = false }
    both { pieces = { "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n" }, fast = false }
    both { pieces = { "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n" }, fast = false }
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" }, head = true,
      fast = false }
    assert.are.equal("Content-Length: 0\r\n\r\n", t.answer) -- (mode "none")
  end)

  it("skips 100 Continue and answers the 200 after it", function()
    local t = both { pieces = { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
      .. "Location: /x\r\nContent-Length: 3\r\n\r\nnew" }, fast = true }
    assert.are.equal(201, t.status)
    assert.are.equal("Location: /x\r\nContent-Length: 3\r\n\r\nnew", t.answer)
  end)

  it("drops the field a Connection field names, in any case", function()
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nconnection: X-Secret, keep-alive\r\n"
      .. "x-secret: 1\r\nX-KEPT: 2\r\nDATE: today\r\nServer: s\r\ncontent-LENGTH: 1\r\n\r\n!" },
      fast = true }
    assert.is_false(t.close)
    assert.are.equal("X-KEPT: 2\r\nContent-Length: 1\r\n\r\n!", t.answer)
  end)

  it("fails a malformed head with the same error", function()
    local t = both { pieces = { "HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 1\r\n\r\n!" } }
    assert.are.equal("bad response: malformed header", t.err)
    t = both { pieces = { "HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\n!" } }
    assert.are.equal("bad response: malformed status line", t.err)
  end)
end)
