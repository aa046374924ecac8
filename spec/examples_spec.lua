-- examples_spec: scripts/echo.lua, scripts/chat.lua, scripts/http_hello.lua
-- started as subprocesses on free ports ("127.0.0.1:0"; each prints the
-- address it got) and exercised through net.dial.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

-- the repository root: two levels above this file
local here = debug.getinfo(1, "S").source:gsub("^@", "")
local root = here:match("^(.*)/spec/[^/]*$") or "."

-- starts a script, waits for "listening on ADDR"; returns proc, addr
local function start(script)
  local p = H.spawn(root .. "/scripts/" .. script, { "127.0.0.1:0" },
    { file = true, timeout = 120 })
  local addr = p:wait_output("listening on (%S+)", 10)
  if not addr then
    local msg = "no 'listening on' from " .. script .. ":\n" .. p:stdout()
      .. "\n" .. p:stderr()
    p:cleanup()
    error(msg, 2)
  end
  -- the port really accepts
  local ok = H.wait_until(function()
    local c = net.dial(addr, 1)
    if c then c:close() return true end
    return false
  end, 10)
  if not ok then p:cleanup(); error("port " .. addr .. " does not accept", 2) end
  return p, addr
end

describe("scripts/echo.lua", function()
  local p, addr
  setup(function() p, addr = start("echo.lua") end)
  teardown(function() if p then p:cleanup() end end)

  it("prints exactly one 'listening on' line", function()
    local _, n = p:stdout():gsub("listening on", "")
    assert.are.equal(1, n)
  end)

  it("echoes bytes back exactly", function()
    local c = assert(net.dial(addr, 5))
    for _, size in ipairs({ 1, 10, 1000, H.scale(1024 * 1024, 20000) }) do
      local data = H.payload(size, size % 7)
      local w = go(function() return c:write(data) end)
      local back, err = c:read(size)
      assert.are.equal(size, back and #back or tostring(err))
      assert.is_true(back == data, "echo differs for size " .. size)
      assert.are.same({ true, size }, { go.wait(w, 30) })
    end
    c:closewrite()
    local r, err = c:read()
    assert.is_nil(r); H.assert_err(err, "eof")
    c:close()
  end)

  it("serves several clients at once", function()
    local gs = {}
    for k = 1, 20 do
      gs[k] = go(function()
        local c = assert(net.dial(addr, 5))
        for i = 1, 10 do
          local msg = ("client %d line %d\n"):format(k, i)
          assert(c:write(msg))
          local back = c:read(#msg)
          if back ~= msg then c:close() return false end
        end
        c:close()
        return true
      end)
    end
    for k = 1, 20 do
      assert.are.same({ true, true }, { go.wait(gs[k], 30) })
    end
  end)
end)

describe("scripts/chat.lua", function()
  local p, addr
  setup(function() p, addr = start("chat.lua") end)
  teardown(function() if p then p:cleanup() end end)

  -- connects, waits for the welcome line, sets the nick
  local function join(nick)
    local c = assert(net.dial(addr, 5))
    local line, err = H.read_line_matching(c, "^%* welcome ", 5)
    assert.truthy(line, "no welcome: " .. tostring(err))
    assert(c:write("/nick ", nick, "\n"))
    line, err = H.read_line_matching(c, "is now known as " .. nick .. "$", 5)
    assert.truthy(line, "nick not confirmed: " .. tostring(err))
    return c
  end

  it("two clients see each other's lines; others' lines only", function()
    local a = join("alice")
    local b = join("bob")
    assert(a:write("hello from alice\n"))
    assert.truthy(H.read_line_matching(b, "^alice: hello from alice$", 5))
    assert(b:write("hi alice\n"))
    local line, lines = H.read_line_matching(a, "^bob: ", 5)
    assert.are.equal("bob: hi alice", line)
    -- alice never got her own line back
    for _, l in ipairs(lines) do
      assert.is_nil(l:find("^alice: "), "echoed own line: " .. l)
    end
    a:close(); b:close()
  end)

  it("/quit closes the connection and the others are told", function()
    local a = join("carol")
    local b = join("dave")
    assert(b:write("/quit\n"))
    -- dave's connection ends
    b:settimeout(5)
    while true do
      local l, err = b:read("l")
      if not l then H.assert_err(err, { "eof", "connection reset" }) break end
    end
    assert.truthy(H.read_line_matching(a, "dave left", 5))
    b:close()
    a:close()
  end)

  it("/quit: the client gets its '* bye' line before the close, every time", function()
    for i = 1, 5 do
      local b = join("quitter" .. i)
      assert(b:write("/quit\n"))
      local line, err = H.read_line_matching(b, "^%* bye$", 5)
      assert.truthy(line, "no bye: " .. tostring(err))
      b:settimeout(5)
      local l, e = b:read("l")
      assert.is_nil(l)
      H.assert_err(e, { "eof", "connection reset" })
      b:close()
    end
  end)

  it("a client that disconnects is removed", function()
    local a = join("erin")
    local b = join("frank")
    b:close()
    assert.truthy(H.read_line_matching(a, "frank left", 5))
    -- the room still works for the rest
    local c = join("grace")
    assert(c:write("still here\n"))
    assert.truthy(H.read_line_matching(a, "^grace: still here$", 5))
    a:close(); c:close()
  end)
end)

describe("scripts/chat.lua timeouts", function()
  -- its own server: idle timeout 1 s, write timeout 0.3 s
  local p, addr
  setup(function()
    p = H.spawn(root .. "/scripts/chat.lua", { "127.0.0.1:0", "1", "0.3" },
      { file = true, timeout = 120, unsetenv = { "GOLUA_MOCKEAGAIN" } })
    addr = p:wait_output("listening on (%S+)", 10)
    assert.is_string(addr, p:stderr())
  end)
  teardown(function() if p then p:cleanup() end end)

  local function server_fds()
    local n = 0
    local d = io.popen("ls /proc/" .. p.pid .. "/fd")
    for _ in d:lines() do n = n + 1 end
    d:close()
    return n
  end

  it("an idle client is disconnected after the idle timeout", function()
    local c = assert(net.dial(addr, 5))
    c:settimeout(10)
    local t0 = go.now()
    while true do
      local l, err = c:read("l")
      if not l then H.assert_err(err, { "eof", "connection reset" }) break end
    end
    assert.is_true(go.now() - t0 >= 0.9, "dropped after " .. (go.now() - t0) .. " s")
    c:close()
  end)

  it("a client that never reads is dropped and its fd freed; the room goes on", function()
    if H.mock() then
      pending("filling socket buffers one byte per call takes too long")
      return
    end
    local slow = assert(net.dial(addr, 5)) -- never reads again after this
    assert.truthy(H.read_line_matching(slow, "^%* welcome ", 5))
    local stop = false
    local keep = go(function() -- empty lines: not idle, so only writes can drop it
      while not stop and slow:write("\n") do go.sleep(0.2) end
    end)
    local talker = assert(net.dial(addr, 5))
    talker:settimeout(20)
    local name = assert(H.read_line_matching(talker, "^%* welcome ", 5)):match("welcome (%S+)")
    local before = server_fds()
    local line = ("x"):rep(4000) .. "\n"
    local w = go(function() -- talk until the slow one is gone (bounded)
      for _ = 1, 20000 do
        if stop or not talker:write(line) then break end
      end
    end)
    local left = H.read_line_matching(talker, " left$", 20)
    stop = true
    go.wait(w, 20)
    go.wait(keep, 5)
    assert.truthy(left, "the slow client was never dropped")
    assert.is_nil(left:find(name, 1, true))
    assert.is_true(H.wait_until(function() return server_fds() == before - 1 end, 5),
      "server fds: " .. server_fds() .. ", before: " .. before)
    -- the room still works
    local c = assert(net.dial(addr, 5))
    assert.truthy(H.read_line_matching(c, "^%* welcome ", 5))
    assert(talker:write("still here\n"))
    assert.truthy(H.read_line_matching(c, ": still here$", 5))
    c:close(); talker:close(); slow:close()
  end)
end)

describe("example timeouts", function()
  local start_with = H.start_script

  local function expect_closed(c, within)
    c:settimeout(within + 5)
    local t0 = go.now()
    while true do
      local l, err = c:read()
      if not l then H.assert_err(err, { "eof", "connection reset" }) break end
    end
    return go.now() - t0
  end

  it("echo.lua drops an idle client after --timeout", function()
    local p, addr = start_with("echo.lua", { "127.0.0.1:0", "--timeout", "0.5" })
    finally(function() p:cleanup() end)
    local c = assert(net.dial(addr, 5))
    assert(c:write("x"))
    local dt = expect_closed(c, 0.5)
    assert.is_true(dt >= 0.4 and dt < 5, "closed after " .. dt .. " s")
    c:close()
  end)

  it("echo.lua drops a client that never reads after --timeout, freeing its fd", function()
    if H.mock() then
      pending("filling socket buffers one byte per call takes too long")
      return
    end
    local p, addr = start_with("echo.lua", { "127.0.0.1:0", "--timeout", "0.5" })
    finally(function() p:cleanup() end)
    local c = assert(net.dial(addr, 5))
    c:settimeout(20)
    local chunk = ("y"):rep(64 * 1024)
    local sent, werr = 0, nil
    while sent < 64 * 1024 * 1024 do -- the server's writes block: it stops reading
      local ok, e = c:write(chunk)
      if not ok then werr = e break end
      sent = sent + #chunk
    end
    assert.is_not_nil(werr, "the server never gave up on a client that does not read")
    H.assert_err(werr, { "connection reset", "broken pipe" })
    c:close()
  end)

  it("http_hello.lua drops a client that drips its head past --head-timeout", function()
    local p, addr = start_with("http_hello.lua", { "127.0.0.1:0", "--head-timeout", "0.5" })
    finally(function() p:cleanup() end)
    local c = assert(net.dial(addr, 5))
    assert(c:write("GET / HTTP/1.1\r\nHost: t\r\n"))
    local stop = false
    local drip = go(function() -- a header line every 0.2 s: never idle for long
      for i = 1, 100 do
        if stop or not c:write("X-Drip-" .. i .. ": 1\r\n") then break end
        go.sleep(0.2)
      end
    end)
    local dt = expect_closed(c, 0.5)
    stop = true
    go.wait(drip, 5)
    assert.is_true(dt >= 0.4 and dt < 5, "closed after " .. dt .. " s")
    c:close()
    -- a well-behaved client is still served, with keep-alive
    local k = assert(net.dial(addr, 5))
    k:settimeout(5)
    for _ = 1, 2 do
      assert(k:write("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
      assert.are.equal("HTTP/1.1 200 OK", k:read("l"))
      repeat local l = k:read("l") until l == ""
      assert.are.equal("Hello, World!\n", k:read(14))
    end
    k:close()
  end)
end)

describe("scripts/http_hello.lua", function()
  local p, addr
  setup(function() p, addr = start("http_hello.lua") end)
  teardown(function() if p then p:cleanup() end end)

  -- reads one response: status line, headers (lower-case names), body
  local function response(c)
    c:settimeout(5)
    local status, err = c:read("l")
    if not status then return nil, err end
    local headers = {}
    while true do
      local h = assert(c:read("l"))
      if h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.-)%s*$")
      assert.truthy(k, "bad header line " .. h)
      headers[k:lower()] = v
    end
    local body = ""
    local len = tonumber(headers["content-length"])
    if len and len > 0 then body = assert(c:read(len)) end
    return status, headers, body
  end

  it("keeps the connection alive for two requests, then Connection: close closes", function()
    local c = assert(net.dial(addr, 5))
    for i = 1, 2 do
      assert(c:write("GET /", i, " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local status, h, body = response(c)
      assert.are.equal("HTTP/1.1 200 OK", status)
      assert.are.equal("14", h["content-length"])
      assert.are.equal("Hello, World!\n", body)
      assert.is_nil(h["connection"] and h["connection"]:lower():find("close"))
    end
    assert(c:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    local status, h, body = response(c)
    assert.are.equal("HTTP/1.1 200 OK", status)
    assert.are.equal("Hello, World!\n", body)
    assert.are.equal("close", h["connection"]:lower())
    local r, err = c:read()
    assert.is_nil(r); H.assert_err(err, "eof")
    c:close()
  end)

  it("pipelined requests are answered in order", function()
    local c = assert(net.dial(addr, 5))
    assert(c:write("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"))
    for _ = 1, 2 do
      local status, _, body = response(c)
      assert.are.equal("HTTP/1.1 200 OK", status)
      assert.are.equal("Hello, World!\n", body)
    end
    c:close()
  end)

  it("HTTP/1.0 closes after the response", function()
    local c = assert(net.dial(addr, 5))
    assert(c:write("GET / HTTP/1.0\r\n\r\n"))
    local status, _, body = response(c)
    assert.matches("^HTTP/1%.[01] 200 OK$", status)
    assert.are.equal("Hello, World!\n", body)
    local r, err = c:read()
    assert.is_nil(r); H.assert_err(err, "eof")
    c:close()
  end)

  it("garbage gets a 400 and the connection is closed", function()
    local c = assert(net.dial(addr, 5))
    -- one line only: the server answers and closes after it, so anything
    -- written later could meet a reset
    assert(c:write("THIS IS NOT HTTP\r\n"))
    local status = response(c)
    assert.matches("^HTTP/1%.1 400", status)
    local r, err = c:read()
    assert.is_nil(r); H.assert_err(err, { "eof", "connection reset" })
    c:close()
  end)

  it("a request body is skipped", function()
    local c = assert(net.dial(addr, 5))
    assert(c:write("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde",
      "GET / HTTP/1.1\r\n\r\n"))
    for _ = 1, 2 do
      local status, _, body = response(c)
      assert.are.equal("HTTP/1.1 200 OK", status)
      assert.are.equal("Hello, World!\n", body)
    end
    c:close()
  end)
end)
