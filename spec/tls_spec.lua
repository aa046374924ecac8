-- tls_spec: net's TLS (docs/API.md, "TLS"): goluarun server <-> goluarun
-- client for every item of the contract, and a few runs against openssl
-- s_client / s_server as real peers. Certificates come from
-- support.certs (made here with openssl, removed at the end).
local go = require "go"
local net = require "net"
local H = require "support.helpers"
local certs = require "support.certs"

H.require_tool("openssl", "openssl")
H.warmup()

local pki = certs.make { key = "ec" }

local function server_cfg(extra)
  local t = { cert = pki.cert, key = pki.key }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function client_cfg(extra)
  local t = { ca = pki.ca }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function port_of(addr) return addr:match(":(%d+)$") end

-- tls_pair: a TLS listener, a dialled client and the accepted conn with its
-- handshake done (or the server's handshake error as 4th value)
local function tls_pair(scfg, ccfg)
  local ln = assert(net.listen("127.0.0.1:0", { tls = scfg or server_cfg() }))
  local s, serr
  local g = go(function()
    s = assert(ln:accept(5))
    local ok, err = s:handshake(5)
    if not ok then serr = err end
  end)
  local c, err = net.dial(ln:addr(), { timeout = 5, tls = ccfg or client_cfg() })
  assert(go.wait(g, 10))
  return c, s, ln, serr, err
end

-- a plain TCP client that connects and says nothing
local function silent_client(ln)
  return assert(net.dial(ln:addr(), 5))
end

describe("TLS basics", function()
  it("dial completes the handshake; the server's runs on its first read", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local g = go(function()
        local s = assert(ln:accept(5))
        local line = assert(s:read("l"))
        assert(s:write("echo: " .. line .. "\n"))
        s:close()
        return line
      end)
      local c = assert(net.dial(ln:addr(), { timeout = 5, tls = client_cfg() }))
      assert.are.equal(6, c:write("hello\n"))
      assert.are.equal("echo: hello", c:read("l"))
      local r, err = c:read()
      assert.is_nil(r); H.assert_err(err, "eof")
      assert.are.same({ true, "hello" }, { go.wait(g, 5) })
      c:close(); ln:close()
    end)
  end)

  it("accept is not held by a client that never handshakes", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local quiet = silent_client(ln)
      local s = H.must_return(2, function() return assert(ln:accept(1)) end)
      assert.is_truthy(s:tlsinfo())
      s:close(); quiet:close(); ln:close()
    end)
  end)

  it("every read form, readuntil and multi-string writes work over TLS", function()
    H.no_fd_leak(function()
      local c, s, ln = tls_pair()
      assert(c:write("line1\r\n", "line2\n", "abc", "def|rest", 42))
      assert.are.equal("line1", s:read("l"))
      assert.are.equal("line2\n", s:read("L"))
      assert.are.equal("abc", s:read(3))
      assert.are.equal("def", s:readuntil("|"))
      assert.are.equal("rest42", s:read(6))
      c:closewrite()
      assert.are.equal("", s:read("a"))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("tlsinfo: nil for plaintext, the contract's fields for TLS", function()
    H.no_fd_leak(function()
      local pc, ps, pl = H.pair()
      assert.is_nil(pc:tlsinfo())
      pc:close(); ps:close(); pl:close()
      local c, s, ln = tls_pair(server_cfg { alpn = { "h2", "http/1.1" } },
        client_cfg { alpn = { "http/1.1" }, servername = "localhost" })
      local ci, si = c:tlsinfo(), s:tlsinfo()
      assert.are.equal("TLSv1.3", ci.version)
      assert.is_string(ci.cipher)
      assert.are.equal(ci.cipher, si.cipher)
      assert.are.equal("http/1.1", ci.alpn)
      assert.are.equal("http/1.1", si.alpn)
      assert.are.equal("localhost", ci.servername)
      assert.are.equal("localhost", si.servername)
      assert.is_false(ci.resumed)
      assert.are.equal("CN=localhost", ci.peer.subject)
      assert.matches("goluarun test ca", ci.peer.issuer)
      assert.is_true(ci.peer.verified)
      assert.is_nil(si.peer) -- verify = "none": no client certificate asked
      c:close(); s:close(); ln:close()
    end)
  end)

  it("min_version 1.2 with ciphers negotiates TLS 1.2", function()
    local c, s, ln = tls_pair(server_cfg { ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" },
      client_cfg())
    assert.are.equal("TLSv1.3", c:tlsinfo().version)
    c:close(); s:close(); ln:close()
    local ln2 = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
    go(function()
      local s2 = ln2:accept(5)
      if s2 then s2:handshake(5); s2:read(); s2:close() end
    end)
    -- a TLS 1.2-only client through openssl's cipher string on our client
    local c2 = assert(net.dial(ln2:addr(), { timeout = 5, tls = client_cfg {
      ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256", min_version = "1.2" } }))
    assert.matches("^TLSv1%.[23]$", c2:tlsinfo().version)
    c2:close(); ln2:close()
    assert.has_error(function() net.listen("127.0.0.1:0", { tls = server_cfg { min_version = "1.1" } }) end)
  end)

  it("bad configs raise at once", function()
    assert.has_error(function() net.listen("127.0.0.1:0", { tls = {} }) end,
      "tls: cert and key are required on the server side")
    assert.has_error(function() net.listen("127.0.0.1:0", { tls = { cert = "/nonexistent", key = pki.key } }) end)
    assert.has_error(function() net.listen("127.0.0.1:0", { tls = { cert = pki.cert, key = pki.other_key } }) end)
    assert.has_error(function() net.listen("127.0.0.1:0", { tls = server_cfg { verify = "maybe" } }) end)
    assert.has_error(function() net.dial("127.0.0.1:1", { tls = { verify = "yes" } }) end)
    assert.has_error(function() net.dial("127.0.0.1:1", { tls = { alpn = "h2" } }) end)
  end)
end)

describe("TLS deadlines and close", function()
  it("a timeout bounds the server's handshake with a silent client, and frees the fd", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local quiet = silent_client(ln)
      local s = assert(ln:accept(5))
      s:settimeout(0.2)
      local t, r, err = H.timed(s.read, s, "l")
      assert.is_nil(r); H.assert_err(err, "timeout")
      assert.is_true(t >= 0.15 and t < 2, "took " .. t)
      local ok, herr = s:handshake(0.1)
      assert.is_nil(ok); H.assert_err(herr, "timeout")
      s:close(); quiet:close(); ln:close()
    end)
  end)

  it("a read deadline set while the handshake waits wakes it", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local quiet = silent_client(ln)
      local s = assert(ln:accept(5))
      go(function() go.sleep(0.1); s:setreaddeadline(go.now()) end)
      local r, err = H.must_return(3, function() return s:read() end)
      assert.is_nil(r); H.assert_err(err, "timeout")
      s:close(); quiet:close(); ln:close()
    end)
  end)

  it("dial's timeout bounds its handshake", function()
    H.no_fd_leak(function()
      local plain = assert(net.listen("127.0.0.1:0")) -- accepts, never answers
      local t, c, err = H.timed(net.dial, plain:addr(), { timeout = 0.3, tls = client_cfg() })
      assert.is_nil(c); H.assert_err(err, "timeout")
      assert.is_true(t >= 0.25 and t < 3, "took " .. t)
      local a = plain:accept(1)
      if a then a:close() end
      plain:close()
    end)
  end)

  it("close from another goroutine wakes goroutines parked mid-handshake with closed", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local quiet = silent_client(ln)
      local s = assert(ln:accept(5))
      local rd = go(function() return s:read() end)             -- drives the handshake
      local wr = go(function() return s:write("never sent") end) -- waits for it
      go.sleep(0.05)
      s:close()
      local ok1, r1, e1 = go.wait(rd, 3)
      local ok2, r2, e2 = go.wait(wr, 3)
      assert.is_true(ok1); assert.is_nil(r1); H.assert_err(e1, "closed")
      assert.is_true(ok2); assert.is_nil(r2); H.assert_err(e2, "closed")
      quiet:close(); ln:close()
    end)
  end)

  it("close from another goroutine wakes a TLS reader with closed", function()
    H.no_fd_leak(function()
      local c, s, ln = tls_pair()
      local rd = go(function() return c:read() end)
      go.sleep(0.05)
      c:close()
      local ok, r, err = go.wait(rd, 3)
      assert.is_true(ok); assert.is_nil(r); H.assert_err(err, "closed")
      s:close(); ln:close()
    end)
  end)

  it("a reader and a writer share one conn while the handshake runs", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local srv = go(function()
        local s = assert(ln:accept(5))
        local rd = go(function() return s:read("l") end)
        local wr = go(function() return s:write("from server\n") end)
        local _, line = go.wait(rd, 5)
        local _, n = go.wait(wr, 5)
        s:close()
        return line, n
      end)
      local c = assert(net.dial(ln:addr(), { timeout = 5, tls = client_cfg() }))
      assert(c:write("from client\n"))
      assert.are.equal("from server", c:read("l"))
      assert.are.same({ true, "from client", 12 }, { go.wait(srv, 5) })
      c:close(); ln:close()
    end)
  end)
end)

describe("TLS names, protocols and certificates", function()
  it("sni picks the certificate by name; other names get the default", function()
    H.no_fd_leak(function()
      local scfg = server_cfg { sni = { ["other.test"] = { cert = pki.other_cert, key = pki.other_key } } }
      local c, s, ln = tls_pair(scfg, client_cfg { servername = "other.test" })
      assert.are.equal("CN=other.test", c:tlsinfo().peer.subject)
      assert.are.equal("other.test", s:tlsinfo().servername)
      c:close(); s:close(); ln:close()
      c, s, ln = tls_pair(scfg, client_cfg())
      assert.are.equal("CN=localhost", c:tlsinfo().peer.subject)
      c:close(); s:close(); ln:close()
    end)
  end)

  it("alpn: the server's preference among the client's; none in common gives nil", function()
    local c, s, ln = tls_pair(server_cfg { alpn = { "h2", "http/1.1" } },
      client_cfg { alpn = { "http/1.1", "h2" } })
    assert.are.equal("h2", c:tlsinfo().alpn)
    c:close(); s:close(); ln:close()
    c, s, ln = tls_pair(server_cfg { alpn = { "h2" } }, client_cfg { alpn = { "x-other" } })
    assert.is_nil(c:tlsinfo().alpn)
    c:close(); s:close(); ln:close()
  end)

  it("client certificates: require", function()
    H.no_fd_leak(function()
      local scfg = server_cfg { verify = "require", ca = pki.ca }
      local c, s, ln = tls_pair(scfg, client_cfg { cert = pki.client_cert, key = pki.client_key })
      local peer = s:tlsinfo().peer
      assert.are.equal("CN=client", peer.subject)
      assert.is_true(peer.verified)
      c:close(); s:close(); ln:close()
      -- without one: the server's handshake fails; the client learns it at
      -- its first read (TLS 1.3 sends the verdict after the client finished)
      local c2, s2, ln2, serr = tls_pair(scfg, client_cfg())
      H.assert_err(serr, "tls handshake failed")
      s2:close() -- its alert may not have fit in the socket (mockeagain)
      if c2 then
        c2:settimeout(5)
        local r, err = c2:read()
        assert.is_nil(r)
        assert.is_string(err)
        c2:close()
      end
      ln2:close()
    end)
  end)

  it("client certificates: optional", function()
    local scfg = server_cfg { verify = "optional", ca = pki.ca }
    local c, s, ln = tls_pair(scfg, client_cfg())
    assert.is_nil(s:tlsinfo().peer)
    c:close(); s:close(); ln:close()
    c, s, ln = tls_pair(scfg, client_cfg { cert = pki.client_cert, key = pki.client_key })
    assert.are.equal("CN=client", s:tlsinfo().peer.subject)
    c:close(); s:close(); ln:close()
  end)

  it("verify failures: expired, unknown CA, wrong host name", function()
    H.no_fd_leak(function()
      local cases = {
        { server_cfg { cert = pki.expired_cert, key = pki.expired_key }, "expired" },
        { server_cfg { cert = pki.rogue_cert, key = pki.rogue_key }, "local issuer" },
        { server_cfg { cert = pki.other_cert, key = pki.other_key }, "mismatch" },
      }
      for _, case in ipairs(cases) do
        local c, s, ln, serr, cerr = tls_pair(case[1], client_cfg())
        assert.is_nil(c)
        H.assert_err(cerr, "certificate verify failed")
        assert.matches(case[2], cerr)
        H.assert_err(serr, "tls handshake failed")
        s:close(); ln:close()
      end
      -- verify = false skips both checks
      local c, s, ln = tls_pair(server_cfg { cert = pki.rogue_cert, key = pki.rogue_key },
        { verify = false })
      assert.is_false(c:tlsinfo().peer.verified)
      c:close(); s:close(); ln:close()
    end)
  end)

  it("an IP literal is verified against the IP SANs; a name against DNS", function()
    local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
    go(function()
      for _ = 1, 2 do
        local s = ln:accept(5)
        if s then s:handshake(5); s:close() end
      end
    end)
    local c = assert(net.dial(ln:addr(), { timeout = 5, tls = client_cfg() }))
    assert.are.equal("127.0.0.1", c:tlsinfo().servername)
    c:close()
    c = assert(net.dial("localhost:" .. port_of(ln:addr()), { timeout = 5, tls = client_cfg() }))
    assert.are.equal("localhost", c:tlsinfo().servername)
    c:close(); ln:close()
  end)

  it("ln:settls rotates the certificate for new handshakes; live conns keep theirs", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local conns = {}
      local acc = go(function()
        for i = 1, 2 do
          local s = assert(ln:accept(5))
          conns[i] = s
          go(function()
            while true do
              local l = s:read("l")
              if not l then return end
              s:write(l .. "\n")
            end
          end)
        end
      end)
      local c1 = assert(net.dial(ln:addr(), { timeout = 5, tls = client_cfg() }))
      assert.are.equal("CN=localhost", c1:tlsinfo().peer.subject)
      ln:settls { cert = pki.other_cert, key = pki.other_key }
      local c2 = assert(net.dial(ln:addr(), { timeout = 5, tls = client_cfg { servername = "other.test" } }))
      assert.are.equal("CN=other.test", c2:tlsinfo().peer.subject)
      c1:write("old\n"); assert.are.equal("old", c1:read("l"))
      c2:write("new\n"); assert.are.equal("new", c2:read("l"))
      assert(go.wait(acc, 5))
      c1:close(); c2:close(); ln:close()
      for _, s in ipairs(conns) do s:close() end
    end)
  end)

  it("a later dial to the same server resumes the session", function()
    local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
    go(function()
      while true do
        local s = ln:accept()
        if not s then return end
        go(function() s:write("hi\n"); s:read(); s:close() end)
      end
    end)
    local resumed = {}
    for i = 1, 3 do
      local c = assert(net.dial(ln:addr(), { timeout = 5, tls = { ca = pki.ca } }))
      assert.are.equal("hi", c:read("l")) -- the session tickets come with it
      resumed[i] = c:tlsinfo().resumed
      c:close()
    end
    assert.are.same({ false, true, true }, resumed)
    ln:close()
  end)
end)

describe("starttls", function()
  it("upgrades a plaintext conn on both sides", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      local srv = go(function()
        assert.are.equal("STARTTLS", s:read("l"))
        s:write("GO\n")
        assert(s:starttls(server_cfg { server = true }))
        local l = s:read("l")
        s:write("secret ok\n")
        return l, s:tlsinfo().version
      end)
      c:write("STARTTLS\n")
      assert.are.equal("GO", c:read("l"))
      assert.is_true(c:starttls(client_cfg { servername = "localhost" }))
      c:write("secret\n")
      assert.are.equal("secret ok", c:read("l"))
      assert.are.same({ true, "secret", "TLSv1.3" }, { go.wait(srv, 5) })
      assert.are.equal("localhost", c:tlsinfo().servername)
      c:close(); s:close(); ln:close()
    end)
  end)

  it("bytes buffered before starttls are an error", function()
    H.no_fd_leak(function()
      local c, s, ln = H.pair()
      c:write("STARTTLS\ninjected")
      assert.are.equal("STARTTLS", s:read("l"))
      local ok, err = s:starttls(server_cfg { server = true })
      -- (under mockeagain "l" reads byte by byte and nothing is buffered:
      -- then the handshake itself fails on the plaintext)
      assert.is_nil(ok); H.assert_err(err, "tls handshake failed")
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("TLS streams", function()
  it("closewrite sends close_notify (eof), and the other direction goes on", function()
    H.no_fd_leak(function()
      local c, s, ln = tls_pair()
      assert.is_true(s:closewrite())
      local r, err = c:read()
      assert.is_nil(r); H.assert_err(err, "eof")
      assert(c:write("after\n"))
      assert.are.equal("after", s:read("l"))
      c:close(); s:close(); ln:close()
    end)
  end)

  it("16 MiB each way at once", function()
    H.no_fd_leak(function()
      local n = H.scale(16 * 1024 * 1024, 96 * 1024)
      local up, down = H.payload(n, 1), H.payload(n, 2)
      local c, s, ln = tls_pair()
      local w1 = go(function() return c:write(up) end)
      local w2 = go(function() return s:write(down) end)
      local r1 = go(function() return s:read(n) end)
      local got_down = assert(c:read(n))
      local _, got_up = go.wait(r1, 60)
      assert.are.same({ true, n }, { go.wait(w1, 60) })
      assert.are.same({ true, n }, { go.wait(w2, 60) })
      assert.is_true(got_up == up, "upload corrupted")
      assert.is_true(got_down == down, "download corrupted")
      c:close(); s:close(); ln:close()
    end)
  end)

  it("a TLS conn moves to another goroutine's VM with go.spawn", function()
    H.no_fd_leak(function()
      local c, s, ln = tls_pair()
      local h = go.spawn("support.tls_work:echo_line", s)
      assert.are.equal("conn (closed)", tostring(s))
      c:write("over there\n")
      assert.are.equal("moved: over there", c:read("l"))
      assert.are.same({ true, "TLSv1.3" }, { table.unpack({ go.wait(h, 10) }, 1, 2) })
      c:close(); ln:close()
    end)
  end)

  it("more conns than keep slots exchange messages; a conn that kept its buffers moves", function()
    -- a server read that parks for the next message takes one of 64
    -- process-wide slots and keeps its record buffers; the rest release
    -- them as before: both kinds must carry every message, and a kept
    -- conn must carry its buffers to another VM
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local pairs_, servers = {}, {}
      for i = 1, 80 do
        local acc = go(function()
          local s = assert(ln:accept(5))
          assert(s:handshake(5))
          return s
        end)
        local c = assert(net.dial(ln:addr(), { timeout = 5, tls = client_cfg() }))
        local _, s = go.wait(acc, 5)
        pairs_[i] = { c = c, s = s }
        servers[i] = go(function()
          for _ = 1, 3 do
            local l = s:read("l")
            if not l then return false end
            assert(s:write(l .. "!\n"))
          end
          return true
        end)
      end
      for round = 1, 3 do
        for i, p in ipairs(pairs_) do assert(p.c:write(i .. "." .. round .. "\n")) end
        for i, p in ipairs(pairs_) do
          assert.are.equal(i .. "." .. round .. "!", p.c:read("l"))
        end
      end
      for i = 1, 80 do assert.are.same({ true, true }, { go.wait(servers[i], 5) }) end
      local h = go.spawn("support.tls_work:echo_line", pairs_[1].s)
      assert(pairs_[1].c:write("kept\n"))
      assert.are.equal("moved: kept", pairs_[1].c:read("l"))
      assert.are.same({ true, "TLSv1.3" }, { table.unpack({ go.wait(h, 10) }, 1, 2) })
      for i, p in ipairs(pairs_) do
        p.c:close()
        if i > 1 then p.s:close() end
      end
      ln:close()
    end)
  end)

  it("a TLS read works inside a table.sort comparator", function()
    do -- the blocking fallback makes its wake-up fd once: not a leak
      local pc, ps, pl = H.pair()
      go(function() go.sleep(0.02); ps:write("w") end)
      table.sort({ 2, 1 }, function(a, b) pc:read(1); return a < b end)
      pc:close(); ps:close(); pl:close()
    end
    H.no_fd_leak(function()
      local c, s, ln = tls_pair()
      go(function() go.sleep(0.05); s:write("x") end)
      local got
      local list = { 3, 1, 2 }
      table.sort(list, function(a, b)
        if not got then got = assert(c:read(1)) end
        return a < b
      end)
      assert.are.equal("x", got)
      assert.are.same({ 1, 2, 3 }, list)
      c:close(); s:close(); ln:close()
    end)
  end)

  it("garbage after the handshake fails that conn with a tls error", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg() }))
      local proxy = assert(net.listen("127.0.0.1:0"))
      local toserver
      go(function() -- a plain relay between our client and the TLS server
        local a = assert(proxy:accept(5))
        toserver = assert(net.dial(ln:addr(), 5))
        local b = toserver
        go(function()
          while true do
            local d = b:read()
            if not d or not a:write(d) then a:close(); return end
          end
        end)
        while true do
          local d = a:read()
          if not d or not b:write(d) then b:close(); return end
        end
      end)
      local shaken = go.chan(1)
      local srv = go(function()
        local s = assert(ln:accept(5))
        assert(s:handshake(5))
        shaken:send(true)
        local r, err = s:read()
        s:close()
        return r, err
      end)
      local c = assert(net.dial(proxy:addr(), { timeout = 5, tls = client_cfg { servername = "localhost" } }))
      assert.is_true(shaken:recv())
      -- an application-data record with a bad MAC, under the TLS layer
      assert(toserver:write("\23\3\3\0\32" .. string.rep("\0", 32)))
      local ok, r, err = go.wait(srv, 5)
      assert.is_true(ok)
      assert.is_nil(r)
      H.assert_err(err, "tls error")
      -- that failure left nothing in this thread's OpenSSL error queue:
      -- another conn's reads and writes (which do not clear it) still work
      local c2, s2, ln2 = tls_pair()
      assert(c2:write("still fine\n"))
      assert.are.equal("still fine", s2:read("l"))
      assert(s2:write("back\n"))
      assert.are.equal("back", c2:read("l"))
      c2:close(); s2:close(); ln2:close()
      c:close(); proxy:close(); ln:close()
    end)
  end)

  it("records OpenSSL read ahead are returned without waiting for the socket", function()
    H.no_fd_leak(function()
      -- three records in one burst: the first read takes all of them into
      -- OpenSSL (read-ahead) and drains the socket; the next reads must
      -- come from OpenSSL's buffer, not park for an edge that never comes
      local c, s, ln = tls_pair()
      s:settimeout(2)
      assert(c:write("one.."))
      assert(c:write("two.."))
      assert(c:write("three"))
      assert.are.equal("one..", s:read(5))
      assert.are.equal("two..", s:read(5))
      assert.are.equal("three", s:read(5))
      -- and a read with nothing anywhere parks until the next record
      go(function() go.sleep(0.05); c:write("late.") end)
      assert.are.equal("late.", s:read(5))
      c:close(); s:close(); ln:close()
    end)
  end)
end)

describe("real peers", function()
  local function free_port()
    local l = assert(net.listen("127.0.0.1:0"))
    local p = port_of(l:addr())
    l:close()
    return p
  end

  it("openssl s_client talks to our server (SNI, ALPN, resumption)", function()
    local ln = assert(net.listen("127.0.0.1:0", { tls = server_cfg { alpn = { "http/1.1" } } }))
    go(function()
      while true do
        local s = ln:accept()
        if not s then return end
        go(function()
          local l = s:read("l")
          if l then s:write("hello " .. l .. "\n") end
          s:close()
        end)
      end
    end)
    local input = H.write_file(H.tmpname(), "world\n")
    local sess = H.tmpname()
    local base = "openssl s_client -connect " .. ln:addr() .. " -CAfile " .. H.shquote(pki.ca)
      .. " -servername localhost -alpn http/1.1 -ign_eof "
    local out = H.sh(base .. "-sess_out " .. H.shquote(sess), input)
    assert.matches("hello world", out)
    assert.matches("ALPN protocol: http/1.1", out)
    assert.matches("Verify return code: 0", out)
    out = H.sh(base .. "-sess_in " .. H.shquote(sess), input)
    assert.matches("hello world", out)
    assert.matches("Reused, TLSv1.3", out)
    os.remove(input); os.remove(sess)
    ln:close()
  end)

  it("our client talks to openssl s_server; a killed server reads as eof", function()
    local port = free_port()
    local srv = H.tmpname()
    -- s_server in the background, stopped by PID
    local pidf = H.tmpname()
    os.execute("(openssl s_server -accept 127.0.0.1:" .. port .. " -cert " .. H.shquote(pki.cert)
      .. " -key " .. H.shquote(pki.key) .. " -rev -naccept 2 >" .. H.shquote(srv)
      .. " 2>&1 </dev/null & echo $! >" .. H.shquote(pidf) .. ")")
    local pid
    assert.is_true(H.wait_until(function()
      pid = tonumber(H.read_file(pidf) or "")
      return pid and (H.read_file(srv) or ""):match("ACCEPT") ~= nil
    end, 10), "s_server did not start: " .. (H.read_file(srv) or ""))
    local c = assert(net.dial("127.0.0.1:" .. port, { timeout = 5, tls = client_cfg { servername = "localhost" } }))
    assert(c:write("olleh\n"))
    assert.are.equal("hello", c:read("l"))
    c:close()
    local c2 = assert(net.dial("127.0.0.1:" .. port, { timeout = 5, tls = client_cfg { servername = "localhost" } }))
    assert.is_true(c2:tlsinfo().resumed)
    assert(c2:write("a\n"))
    assert.are.equal("a", c2:read("l"))
    os.execute("kill -9 " .. pid)
    local r, err = c2:read()
    assert.is_nil(r); H.assert_err(err, "eof")
    c2:close()
    os.remove(srv); os.remove(pidf)
  end)
end)

describe("cleanup", function()
  it("removes the certificates", function()
    pki.cleanup()
  end)
end)
