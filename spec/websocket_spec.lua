-- websocket_spec: goluarun.websocket against a real implementation, Node's
-- `ws` package (Debian node-ws, run by Debian's or NodeSource's nodejs with
-- NODE_PATH=/usr/share/nodejs): spec/node/ws_peer.js as a client of our
-- server and as a server for our client (ws:// and wss://). Frames a peer
-- must not send (unmasked client frames, bad handshakes) are written raw
-- from Lua.
--
-- Our servers run in this VM (goluarun.http + websocket.upgrade); node runs
-- as a process through os.execute, which parks only the calling goroutine,
-- so our servers keep serving meanwhile. Every node process listens on or
-- dials a free 127.0.0.1 port, runs under `timeout -s KILL`, and is stopped
-- by PID; waits are bounded.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local websocket = require "goluarun.websocket"
local codec = require "goluarun.codec"
local H = require "support.helpers"
local P = require "support.tlspeers"

H.warmup()
H.require_tool("node", "nodejs")

local q = H.shquote
local NODE = "env NODE_PATH=/usr/share/nodejs node " .. q(H.root() .. "/spec/node/ws_peer.js")
local BIG = H.scale(16 * 1024 * 1024, 256 * 1024)
local T = H.scale(20, 60) -- generous: CI boxes run other suites beside this one

do -- node-ws present?
  local _, err, code = P.sh("NODE_PATH=/usr/share/nodejs node -e 'require(\"ws\")'", 30)
  if code ~= 0 then
    error("Node's ws package not found: apt-get install -y node-ws (" .. err .. ")", 0)
  end
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- an echo server in this VM: "close-me" makes it close with 4000; each
-- connection's end (recv's results) is sent on `ends`
local function echo_server(ends, opts)
  local ln = assert(http.serve("127.0.0.1:0", function(req, res)
    local ws, err = websocket.upgrade(req, res, opts)
    if not ws then
      ends:send({ "refused", err })
      return
    end
    while true do
      local msg, kind, code, reason = ws:recv(T)
      if not msg then
        ends:send({ kind, code, reason })
        return
      end
      if msg == "close-me" then ws:close(4000, "server bye") else ws:send(msg, kind) end
    end
  end))
  return ln, "ws://" .. ln:addr() .. "/"
end

-- node ws_peer.js server [cert key]: the process and its port
local function node_server(tls)
  local args = tls and (" " .. q(tls.cert) .. " " .. q(tls.key)) or ""
  local p = P.start(NODE .. " server" .. args, 120)
  local port = p:wait_output("listening (%d+)", 30)
  if not port then
    local out = p:output()
    p:stop()
    error("node ws server did not start:\n" .. out, 2)
  end
  return p, tonumber(port)
end

teardown(function() P.cleanup() end)

---------------------------------------------------------------------------
describe("our server with node's ws as the client", function()
  it("passes text, binary, 16 MiB, fragments, ping, close codes, subprotocol, 1009", function()
    H.no_fd_leak(function()
      local ends = go.chan(64)
      local ln, url = echo_server(ends, { protocols = { "chat" } })
      local ln2, small = echo_server(ends, { max_message = 1024 })
      local out, err, code = P.sh(NODE .. " client " .. url .. " " .. small .. " " .. BIG, 120)
      ln:close(); ln2:close()
      assert.are.equal(0, code, err)
      assert.matches("done", out, 1, true)
      for _, name in ipairs({ "text", "binary", "big", "fragments", "ping", "close_code",
        "server_close", "protocol", "oversized" }) do
        assert.matches("ok " .. name .. "\n", out, 1, true)
      end
      assert.not_matches("FAIL", out, 1, true)
      -- how each of the 9 connections ended on our side (a server goroutine
      -- may still be finishing its close handshake when node exits)
      local seen = {}
      for _ = 1, 9 do
        local v = P.recv(ends, T)
        seen[#seen + 1] = table.concat({ tostring(v[1]), tostring(v[2]), tostring(v[3]) }, " ")
      end
      local all = table.concat(seen, "\n")
      assert.matches("closed 4001 node bye", all, 1, true)
      assert.matches("closed 4000 server bye", all, 1, true)
      assert.matches("closed 1009 message too big", all, 1, true)
      assert.matches("closed 1005 ", all, 1, true) -- node's close() sends no code
    end)
  end)
end)

---------------------------------------------------------------------------
describe("our client against node's ws server", function()
  local srv, port
  setup(function() srv, port = node_server() end)
  teardown(function() srv:stop() end)

  local function expect(ws, want, kind)
    local msg, k = ws:recv(T)
    assert.are.equal(want, msg)
    assert.are.equal(kind or "text", k)
  end

  it("passes text, binary and a 16 MiB message (hash checked on both sides)", function()
    H.no_fd_leak(function()
      local ws = assert(websocket.dial("ws://127.0.0.1:" .. port .. "/chat?x=1",
        { protocols = { "chat" } }))
      assert.are.equal("chat", ws.protocol)
      assert.is_true(ws:send("h\u{e9}llo \u{4e16}"))
      expect(ws, "h\u{e9}llo \u{4e16}")
      assert.is_true(ws:send("\0\1\2\255", "binary"))
      expect(ws, "\0\1\2\255", "binary")
      local big = H.payload(BIG, 3)
      assert.is_true(ws:send(big, "binary"))
      if BIG >= 1 << 20 then expect(ws, "sha1:" .. hex(codec.sha1(big))) end
      local echo, kind = ws:recv(T)
      assert.are.equal("binary", kind)
      assert.are.equal(#big, #echo)
      assert.are.equal(hex(codec.sha1(big)), hex(codec.sha1(echo)))
      assert.is_true(ws:close())
      assert.is_true(ws:close()) -- idempotent
      assert.are.same({ nil, "closed" }, { ws:send("late") })
    end)
  end)

  it("joins fragments, answers a ping between them, and sends pings", function()
    H.no_fd_leak(function()
      local ws = assert(websocket.dial("ws://127.0.0.1:" .. port .. "/"))
      assert.is_true(ws:send("frag:5"))
      local parts = {}
      for i = 0, 4 do parts[#parts + 1] = "part" .. i .. "-\u{e9}\u{4e16};" end
      expect(ws, table.concat(parts))
      expect(ws, "pong:mid") -- node got our answer to its ping
      assert.is_true(ws:ping("abc"))
      expect(ws, "ping:abc")
      assert.is_true(ws:send("ping:xyz")) -- node pings us; recv answers inside
      expect(ws, "pong:xyz")
      ws:close()
    end)
  end)

  it("reports the server's close code and reason, and sends its own", function()
    H.no_fd_leak(function()
      local ws = assert(websocket.dial("ws://127.0.0.1:" .. port .. "/"))
      assert.is_true(ws:send("close:4005:node closes"))
      assert.are.same({ nil, "closed", 4005, "node closes" }, { ws:recv(T) })
      assert.are.same({ nil, "closed", 4005, "node closes" }, { ws:recv(T) })
      ws:close()
      local ws2 = assert(websocket.dial("ws://127.0.0.1:" .. port .. "/"))
      assert.is_true(ws2:close(4321, "ciao \u{e9}"))
      assert.truthy(srv:wait_output("(close 4321 ciao \u{e9})", T), srv:output())
    end)
  end)

  it("closes with 1009 when a message exceeds max_message", function()
    H.no_fd_leak(function()
      local ws = assert(websocket.dial("ws://127.0.0.1:" .. port .. "/", { max_message = 1000 }))
      assert.is_true(ws:send("big:1001"))
      assert.are.same({ nil, "closed", 1009, "message too big" }, { ws:recv(T) })
      assert.truthy(srv:wait_output("(close 1009 message too big)", T), srv:output())
    end)
  end)

  it("times out a recv without losing the stream", function()
    H.no_fd_leak(function()
      local ws = assert(websocket.dial("ws://127.0.0.1:" .. port .. "/"))
      assert.are.same({ nil, "timeout" }, { ws:recv(0.05) })
      assert.is_true(ws:send("after"))
      expect(ws, "after")
      ws:close()
    end)
  end)

  it("refuses a server that does not speak WebSocket", function()
    H.no_fd_leak(function()
      local ln = assert(http.serve("127.0.0.1:0", function(_, res) res:status(403):send("no\n") end))
      local ws, err = websocket.dial("ws://" .. ln:addr() .. "/")
      assert.is_nil(ws)
      assert.are.equal("bad handshake: status 403", err)
      local ws2, err2 = websocket.dial("ws://127.0.0.1:1/")
      assert.is_nil(ws2)
      H.assert_err(err2, "connection refused")
      ln:close()
    end)
    assert.has_error(function() websocket.dial("http://x/") end)
    assert.has_error(function() websocket.dial("ws://x/#frag") end)
  end)
end)

describe("wss:// against node's ws over https", function()
  it("verifies the certificate and echoes", function()
    local pki = P.pki("ec")
    local srv, port = node_server(pki)
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local ws = assert(websocket.dial("wss://localhost:" .. port .. "/", { tls = { ca = pki.ca } }))
      assert.are.equal("TLSv1.3", ws.conn:tlsinfo().version)
      assert.is_true(ws:send("over tls"))
      local msg = ws:recv(T)
      assert.are.equal("over tls", msg)
      ws:close()
      local bad, err = websocket.dial("wss://localhost:" .. port .. "/")
      assert.is_nil(bad)
      H.assert_err(err, "certificate verify failed")
    end)
  end)
end)

---------------------------------------------------------------------------
-- raw peers: what node would never send
---------------------------------------------------------------------------

local HANDSHAKE = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

local function raw_upgrade(addr, head)
  local c = assert(net.dial(addr, T))
  c:settimeout(T)
  assert(c:write(head or HANDSHAKE))
  local resp = assert(c:readuntil("\r\n\r\n"))
  return c, resp
end

describe("our server against raw clients", function()
  it("answers the RFC's example key and takes frames sent with the head", function()
    H.no_fd_leak(function()
      local ends = go.chan(4)
      local ln = echo_server(ends)
      local key = "\1\2\3\4"
      local frame = "\129\133" .. key .. codec.mask("hello", key)
      local c, resp = raw_upgrade(ln:addr(), HANDSHAKE .. frame)
      assert.matches("^HTTP/1.1 101 Switching Protocols\r\n", resp)
      assert.matches("\r\nSec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=\r?\n?", resp)
      assert.are.equal("\129\5hello", c:read(7)) -- unmasked from the server
      c:close()
      ln:close()
      assert.are.equal("eof", P.recv(ends, T)[1])
    end)
  end)

  it("fails a client that does not mask with close 1002", function()
    H.no_fd_leak(function()
      local ends = go.chan(4)
      local ln = echo_server(ends)
      local c = raw_upgrade(ln:addr())
      assert(c:write("\129\5hello")) -- FIN text, no mask bit
      local h = assert(c:read(2))
      assert.are.equal(0x88, h:byte(1)) -- close
      local body = assert(c:read(h:byte(2)))
      assert.are.equal(1002, string.unpack(">I2", body))
      assert.are.equal("unmasked frame from the client", body:sub(3))
      local none, eof = c:read(1)
      assert.are.same({ nil, "eof" }, { none, eof }) -- and the TCP close
      c:close() -- the server waits (close_timeout) for it
      local v = P.recv(ends, T)
      assert.are.same({ "closed", 1002, "unmasked frame from the client" }, v)
      ln:close()
    end)
  end)

  it("fails invalid UTF-8 text with 1007 and an oversized frame header with 1009", function()
    H.no_fd_leak(function()
      local ends = go.chan(4)
      local ln = echo_server(ends, { max_message = 100 })
      local key = "abcd"
      local c = raw_upgrade(ln:addr())
      assert(c:write("\129\130" .. key .. codec.mask("\xc3\x28", key)))
      local h = assert(c:read(2))
      assert.are.equal(1007, string.unpack(">I2", assert(c:read(h:byte(2)))))
      c:close()
      assert.are.equal(1007, P.recv(ends, T)[2])
      -- a 2^40-byte frame is refused from its header alone
      local c2 = raw_upgrade(ln:addr())
      assert(c2:write("\130\255" .. string.pack(">I8", 1 << 40) .. key))
      h = assert(c2:read(2))
      assert.are.equal(1009, string.unpack(">I2", assert(c2:read(h:byte(2)))))
      c2:close(); ln:close()
      assert.are.equal(1009, P.recv(ends, T)[2])
    end)
  end)

  it("fails other protocol violations with 1002, each with its reason", function()
    H.no_fd_leak(function()
      local ends = go.chan(8)
      local ln = echo_server(ends)
      local key = "\0\0\0\0" -- XOR with zeros: payloads read as written
      local cases = {
        { "\128\130" .. key .. "ab", "continuation without a message" },
        { "\1\129" .. key .. "a\1\129" .. key .. "b", "new message inside a fragmented one" },
        { "\9\129" .. key .. "p", "bad control frame" },    -- a ping without FIN
        { "\131\128" .. key, "unknown opcode" },
        { "\193\128" .. key, "reserved bits set" },
        { "\136\130" .. key .. "\3\237", "bad close code" }, -- 1005 on the wire
        { "\136\129" .. key .. "x", "bad close frame" },
      }
      for _, case in ipairs(cases) do
        local c = raw_upgrade(ln:addr())
        assert(c:write(case[1]))
        local h = assert(c:read(2))
        assert.are.equal(0x88, h:byte(1))
        local body = assert(c:read(h:byte(2)))
        assert.are.same({ 1002, case[2] }, { string.unpack(">I2", body), body:sub(3) })
        c:close()
        assert.are.same({ "closed", 1002, case[2] }, P.recv(ends, T))
      end
      ln:close()
    end)
  end)

  it("resumes a frame cut by a recv timeout", function()
    H.no_fd_leak(function()
      local first, ends = go.chan(1), go.chan(1)
      local ln = assert(http.serve("127.0.0.1:0", function(req, res)
        local ws = assert(websocket.upgrade(req, res))
        first:send({ ws:recv(0.1) })
        ends:send({ ws:recv(T) })
      end))
      local key = "wxyz"
      local frame = "\129\134" .. key .. codec.mask("resume", key)
      local c = raw_upgrade(ln:addr(), HANDSHAKE .. frame:sub(1, 4))
      assert.are.same({ nil, "timeout" }, P.recv(first, T))
      assert(c:write(frame:sub(5)))
      assert.are.same({ "resume", "text" }, P.recv(ends, T))
      c:close(); ln:close()
    end)
  end)

  it("answers bad handshakes with 400 and 426", function()
    H.no_fd_leak(function()
      local ends = go.chan(8)
      local ln = echo_server(ends)
      local function status(head)
        local c, resp = raw_upgrade(ln:addr(), head)
        c:close()
        return tonumber(resp:match("^HTTP/1.1 (%d+)")), resp
      end
      local nokey = HANDSHAKE:gsub("Sec%-WebSocket%-Key: [^\r]*\r\n", "")
      assert.are.equal(400, status(nokey))
      local badkey = HANDSHAKE:gsub("dGhlIHNhbXBsZSBub25jZQ==", "short")
      assert.are.equal(400, status(badkey))
      local v8 = HANDSHAKE:gsub("Version: 13", "Version: 8")
      local code, resp = status(v8)
      assert.are.equal(426, code)
      assert.matches("\nSec%-WebSocket%-Version: 13", resp)
      local noup = HANDSHAKE:gsub("Upgrade: websocket\r\n", "")
      code, resp = status(noup)
      assert.are.equal(426, code)
      assert.matches("\nUpgrade: websocket", resp)
      assert.are.equal(400, status((HANDSHAKE:gsub("^GET", "POST"))))
      for _ = 1, 5 do
        local v = P.recv(ends, T)
        assert.are.equal("refused", v[1])
        assert.matches("^bad handshake: ", v[2])
      end
      ln:close()
    end)
  end)

  it("rejects misuse with errors", function()
    local ends = go.chan(1)
    local ln = assert(http.serve("127.0.0.1:0", function(req, res)
      local ws = assert(websocket.upgrade(req, res))
      local results = {
        pcall(ws.send, ws, "\xff"),
        pcall(ws.send, ws, "x", "json"),
        pcall(ws.ping, ws, ("x"):rep(126)),
        pcall(ws.close, ws, 1005),
        (pcall(ws.close, ws, 1000, ("x"):rep(124))),
      }
      ends:send(results)
    end))
    local c = raw_upgrade(ln:addr())
    local r = P.recv(ends, T)
    c:close(); ln:close()
    for _, ok in ipairs(r) do assert.is_false(ok) end
    assert.has_error(function() websocket.upgrade({}, {}) end)
    assert.has_error(function() websocket.dial("ws://x/", { max_message = 0 }) end)
  end)
end)

---------------------------------------------------------------------------
describe("goroutines sharing a ws", function()
  it("a reader goroutine finishes the handshake that close() started elsewhere", function()
    H.no_fd_leak(function()
      local ends = go.chan(4)
      local ln, url = echo_server(ends)
      local ws = assert(websocket.dial(url, { close_timeout = 40 }))
      local got = go.chan(4)
      go(function()
        while true do
          local msg, err, code = ws:recv()
          got:send({ msg, err, code })
          if not msg then return end
        end
      end)
      for i = 1, 20 do assert.is_true(ws:send("m" .. i)) end
      for i = 1, 20 do assert.are.equal("m" .. i, P.recv(got, T)[1]) end
      local t0 = go.now()
      assert.is_true(ws:close(4002, "done"))
      assert.are.same({ nil, "closed", 4002 }, P.recv(got, T))
      assert.is_true(go.now() - t0 < 20, "the close handshake waited for close_timeout")
      assert.are.same({ "closed", 4002, "done" }, P.recv(ends, T))
      ln:close()
    end)
  end)

  it("serves wss:// from goluarun.http with TLS", function()
    local pki = P.pki("ec")
    H.no_fd_leak(function()
      local ln = assert(http.serve("127.0.0.1:0", function(req, res)
        local ws = websocket.upgrade(req, res)
        if not ws then return end
        local msg, kind = ws:recv(T)
        if msg then ws:send(msg:upper(), kind) end
        ws:recv(T)
      end, { tls = P.server_tls(pki) }))
      local port = ln:addr():match(":(%d+)$")
      local ws = assert(websocket.dial("wss://localhost:" .. port .. "/", { tls = { ca = pki.ca } }))
      assert.is_true(ws:send("secret"))
      assert.are.equal("SECRET", ws:recv(T))
      assert.is_true(ws:close())
      ln:close()
    end)
  end)
end)

describe("scripts/ws_chat.lua (the docs example)", function()
  it("broadcasts a message to every client", function()
    local p, addr = H.start_script("ws_chat.lua", nil, { wait = 30 })
    finally(function() p:cleanup() end)
    H.no_fd_leak(function()
      local url = "ws://" .. addr .. "/chat"
      local a = assert(websocket.dial(url, { protocols = { "chat" } }))
      local b = assert(websocket.dial(url, { protocols = { "chat" } }))
      assert.are.equal("chat", a.protocol)
      assert.is_true(a:send("hello"))
      local from = a.conn:localaddr()
      assert.are.equal(from .. ": hello", a:recv(T))
      assert.are.equal(from .. ": hello", b:recv(T))
      assert.is_true(a:close(1000, "bye"))
      assert.are.same({ nil, "closed", 1000, "bye" }, { a:recv() })
      assert.is_true(b:send("still here"))
      assert.matches(": still here$", b:recv(T))
      b:close()
    end)
  end)
end)
