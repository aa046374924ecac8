-- tls_peers_spec: TLS against real peers, not goluarun talking to itself
-- (issue "TLS on every connection", section Tests): openssl s_server for
-- our client, openssl s_client / curl / wrk / Python's ssl module for our
-- server. Certificates come from support.certs (made with `openssl req`
-- per run, never committed). Debian packages: openssl, curl, wrk, python3.
--
-- Our servers run in this VM (net.serve with {tls = T}); the peers run as
-- processes through os.execute, which parks only the calling goroutine, so
-- the server goroutines keep serving while a peer runs. Every peer process
-- listens on or dials a free 127.0.0.1 port, runs under `timeout -s KILL`
-- and is stopped by PID; waits are bounded (channels with timeouts,
-- H.wait_until), never sleeps that hope.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"
local H = require "support.helpers"
local P = require "support.tlspeers"

H.warmup()
P.require_tools("openssl", "curl", "wrk", P.PYTHON)

local pki = P.pki("ec")

local function client_tls(extra)
  local t = { ca = pki.ca }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function dial(addr, extra)
  return net.dial(addr, { timeout = H.scale(10, 30), tls = client_tls(extra) })
end

-- a server in this VM: reads one line, reports {line, err, info} on
-- `results`, answers "reply:LINE\n" and returns (the conn closes)
local function line_server(T, results)
  return P.tls_server(T, function(conn)
    conn:settimeout(H.scale(10, 30))
    local line, err = conn:read("l")
    results:send({ line = line, err = err, info = conn:tlsinfo() })
    if line then conn:write("reply:", line, "\n") end
  end)
end

local S_CLIENT = { "-CAfile", pki.ca, "-verify_return_error", "-ign_eof" }

local function s_client_args(extra)
  local a = {}
  for _, v in ipairs(S_CLIENT) do a[#a + 1] = v end
  for _, v in ipairs(extra or {}) do a[#a + 1] = v end
  return a
end

teardown(function() P.cleanup() end)

---------------------------------------------------------------------------
describe("our client against openssl s_server", function()
  it("handshakes TLS 1.3, verifies chain and host name, and moves data", function()
    local srv = P.s_server(pki, { "-rev" })
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local c, err = dial("localhost:" .. srv.port)
      assert.truthy(c, "dial: " .. tostring(err))
      c:settimeout(H.scale(10, 30))
      assert(c:write("hello tls\n"))
      assert.are.equal("slt olleh", c:read("l"))
      local info = c:tlsinfo()
      assert.are.equal("TLSv1.3", info.version)
      assert.are.equal("string", type(info.cipher))
      assert.are.equal("localhost", info.servername)
      assert.is_false(info.resumed)
      assert.truthy(info.peer, "no peer certificate info")
      assert.is_true(info.peer.verified)
      assert.matches("localhost", info.peer.subject)
      assert.matches("goluarun test ca", info.peer.issuer)
      c:close()
    end)
  end)

  it("verifies an IP literal against the IP SANs and sends no SNI for it", function()
    local srv = P.s_server(pki, { "-rev", "-tlsextdebug" })
    finally(function() srv:stop() end)
    local function sni_sent()
      local _, k = srv:output():gsub('extension "server name"', "")
      return k
    end
    H.no_fd_leak(function()
      local c, err = dial(srv.addr)
      assert.truthy(c, "dial: " .. tostring(err))
      assert.is_true(c:tlsinfo().peer.verified)
      c:settimeout(H.scale(10, 30))
      assert(c:write("ip\n"))
      assert.are.equal("pi", c:read("l"))
      c:close()
      -- s_server has printed that ClientHello's extensions: no SNI
      assert.are.equal(0, sni_sent(), srv:output())
      local c2, err2 = dial("localhost:" .. srv.port)
      assert.truthy(c2, "dial: " .. tostring(err2))
      c2:settimeout(H.scale(10, 30))
      assert(c2:write("name\n"))
      assert.are.equal("eman", c2:read("l"))
      c2:close()
      assert.are.equal(1, sni_sent(), srv:output())
    end)
  end)

  it("speaks TLS 1.2 to a TLS 1.2-only server, and refuses it with min_version 1.3", function()
    local srv = P.s_server(pki, { "-rev", "-tls1_2" })
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local c, err = dial("localhost:" .. srv.port)
      assert.truthy(c, "dial: " .. tostring(err))
      c:settimeout(H.scale(10, 30))
      assert(c:write("abc\n"))
      assert.are.equal("cba", c:read("l"))
      assert.are.equal("TLSv1.2", c:tlsinfo().version)
      c:close()
      local c2, err2 = dial("localhost:" .. srv.port, { min_version = "1.3" })
      assert.is_nil(c2)
      H.assert_err(err2, "tls handshake failed")
    end)
  end)

  it("sends SNI: the server picks the certificate of the name asked for", function()
    local srv = P.s_server(pki, { "-rev", "-servername", "other.test",
      "-cert2", pki.other_cert, "-key2", pki.other_key })
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local c, err = dial(srv.addr, { servername = "other.test" })
      assert.truthy(c, "dial: " .. tostring(err))
      local info = c:tlsinfo()
      assert.are.equal("other.test", info.servername)
      assert.matches("other%.test", info.peer.subject)
      assert.is_true(info.peer.verified)
      c:close()
      local c2, err2 = dial("localhost:" .. srv.port)
      assert.truthy(c2, "dial: " .. tostring(err2))
      assert.matches("localhost", c2:tlsinfo().peer.subject)
      c2:close()
    end)
  end)

  it("negotiates ALPN", function()
    local srv = P.s_server(pki, { "-rev", "-alpn", "foo,bar" })
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local c, err = dial(srv.addr, { alpn = { "baz", "bar" } })
      assert.truthy(c, "dial: " .. tostring(err))
      assert.are.equal("bar", c:tlsinfo().alpn)
      c:close()
      local c2, err2 = dial(srv.addr)
      assert.truthy(c2, "dial: " .. tostring(err2))
      assert.is_nil(c2:tlsinfo().alpn)
      c2:close()
    end)
  end)

  it("presents a client certificate to a server that requires one", function()
    local srv = P.s_server(pki, { "-rev", "-Verify", "2", "-CAfile", pki.ca,
      "-verify_return_error" })
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local c, err = dial(srv.addr, { cert = pki.client_cert, key = pki.client_key })
      assert.truthy(c, "dial: " .. tostring(err))
      c:settimeout(H.scale(10, 30))
      assert(c:write("mtls\n"))
      assert.are.equal("sltm", c:read("l"))
      c:close()
      -- without one: the dial fails, or (TLS 1.3: the server checks after
      -- the client's Finished) the first read does
      local c2, err2 = dial(srv.addr)
      if c2 then
        c2:settimeout(H.scale(10, 30))
        c2:write("x\n")
        local r, rerr = c2:read("l")
        assert.is_nil(r, "server accepted a client without a certificate")
        assert.are.equal("string", type(rerr))
        assert.is_false(H.is_err(rerr, "timeout"), rerr)
        c2:close()
      else
        assert.are.equal("string", type(err2))
      end
    end)
  end)

  for _, v in ipairs({ { "1.3", {} }, { "1.2", { "-tls1_2" } } }) do
    it("resumes its session on the next dial (TLS " .. v[1] .. ")", function()
      local args = { "-rev" }
      for _, a in ipairs(v[2]) do args[#args + 1] = a end
      local srv = P.s_server(pki, args)
      finally(function() srv:stop() end)
      H.no_fd_leak(function()
        local seen = {}
        for i = 1, 3 do
          local c, err = dial("localhost:" .. srv.port)
          assert.truthy(c, "dial " .. i .. ": " .. tostring(err))
          c:settimeout(H.scale(10, 30))
          -- a round trip, so that a TLS 1.3 ticket (sent after the
          -- handshake) has arrived before the conn closes
          assert(c:write("ab\n"))
          assert.are.equal("ba", c:read("l"))
          seen[i] = c:tlsinfo().resumed
          c:close()
        end
        assert.are.same({ false, true, true }, seen)
      end)
    end)
  end
end)

---------------------------------------------------------------------------
describe("openssl s_client against our server", function()
  local T = P.server_tls(pki)

  it("handshakes TLS 1.3 and is verified, with SNI localhost", function()
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = line_server(T, results)
      local out = P.s_client(port, s_client_args({ "-servername", "localhost",
        "-verify_hostname", "localhost" }), "hello\n")
      local r = P.recv(results, 10, "server result")
      ln:close()
      assert.matches("Verify return code: 0 %(ok%)", out)
      assert.matches("New, TLSv1%.3", out)
      assert.matches("reply:hello", out)
      assert.are.equal("hello", r.line, tostring(r.err))
      assert.are.equal("TLSv1.3", r.info.version)
      assert.are.equal("localhost", r.info.servername)
      assert.is_nil(r.info.peer)
    end)
  end)

  it("speaks TLS 1.2 with a chosen cipher, and min_version 1.3 refuses 1.2", function()
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = line_server(P.server_tls(pki,
        { ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" }), results)
      local out = P.s_client(port, s_client_args({ "-tls1_2" }), "v12\n")
      local r = P.recv(results, 10, "server result")
      ln:close()
      assert.matches("New, TLSv1%.2, Cipher is ECDHE%-ECDSA%-AES128%-GCM%-SHA256", out)
      assert.matches("reply:v12", out)
      assert.are.equal("TLSv1.2", r.info.version)
      assert.are.equal("ECDHE-ECDSA-AES128-GCM-SHA256", r.info.cipher)

      local ln13, port13 = line_server(P.server_tls(pki, { min_version = "1.3" }), results)
      local out13 = P.s_client(port13, s_client_args({ "-tls1_2" }), "v12\n")
      local r13 = P.recv(results, 10, "server result")
      assert.is_nil(r13.line)
      H.assert_err(r13.err, "tls handshake failed")
      assert.is_nil(out13:match("reply:"), out13)
      -- the same listener still serves TLS 1.3
      local out2 = P.s_client(port13, s_client_args(), "again\n")
      assert.matches("reply:again", out2)
      P.recv(results, 10, "server result")
      ln13:close()
    end)
  end)

  it("chooses the certificate by SNI (sni map, '*.domain' too), default for other names", function()
    H.no_fd_leak(function()
      local results = go.chan(8)
      local other = { cert = pki.other_cert, key = pki.other_key }
      local ln, port = line_server(P.server_tls(pki, {
        sni = { ["other.test"] = other, ["*.other.test"] = other },
      }), results)
      local out = P.s_client(port, s_client_args({ "-servername", "other.test",
        "-verify_hostname", "other.test" }), "sni\n")
      local r = P.recv(results, 10, "server result")
      assert.matches("subject=CN = other%.test", out)
      assert.matches("Verify return code: 0 %(ok%)", out)
      assert.matches("reply:sni", out)
      assert.are.equal("other.test", r.info.servername)

      local outw = P.s_client(port, s_client_args({ "-servername", "api.other.test",
        "-verify_hostname", "api.other.test" }), "w\n")
      local rw = P.recv(results, 10, "server result")
      assert.matches("subject=CN = other%.test", outw)
      assert.matches("Verify return code: 0 %(ok%)", outw)
      assert.are.equal("api.other.test", rw.info.servername)

      local out2 = P.s_client(port, s_client_args({ "-servername", "nomatch.test" }), "d\n")
      local r2 = P.recv(results, 10, "server result")
      assert.matches("subject=CN = localhost", out2)
      assert.matches("reply:d", out2)
      assert.are.equal("nomatch.test", r2.info.servername)
      ln:close()
    end)
  end)

  it("selects ALPN by the server's preference order", function()
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = line_server(P.server_tls(pki, { alpn = { "h2", "http/1.1" } }), results)
      local out = P.s_client(port, s_client_args({ "-alpn", "http/1.1" }), "a\n")
      local r = P.recv(results, 10, "server result")
      assert.matches("ALPN protocol: http/1%.1", out)
      assert.are.equal("http/1.1", r.info.alpn)

      local out2 = P.s_client(port, s_client_args({ "-alpn", "http/1.1,h2" }), "b\n")
      local r2 = P.recv(results, 10, "server result")
      assert.matches("ALPN protocol: h2", out2)
      assert.are.equal("h2", r2.info.alpn)

      local out3 = P.s_client(port, s_client_args(), "c\n")
      local r3 = P.recv(results, 10, "server result")
      assert.matches("No ALPN negotiated", out3)
      assert.is_nil(r3.info.alpn)
      ln:close()
    end)
  end)

  it("requires a client certificate (verify = 'require')", function()
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = line_server(P.server_tls(pki, { verify = "require", ca = pki.ca }),
        results)
      local out = P.s_client(port, s_client_args({ "-cert", pki.client_cert,
        "-key", pki.client_key }), "mtls\n")
      local r = P.recv(results, 10, "server result")
      assert.matches("reply:mtls", out)
      assert.truthy(r.info.peer, "no peer info for a client certificate")
      assert.matches("client", r.info.peer.subject)
      assert.matches("goluarun test ca", r.info.peer.issuer)
      assert.is_true(r.info.peer.verified)

      -- without a certificate: that handshake fails, on the server too
      local out2 = P.s_client(port, s_client_args(), "none\n")
      local r2 = P.recv(results, 10, "server result")
      assert.is_nil(out2:match("reply:none"), out2)
      assert.is_nil(r2.line)
      H.assert_err(r2.err, "tls handshake failed")

      -- a certificate from an unknown CA: refused as well
      local out3 = P.s_client(port, s_client_args({ "-cert", pki.rogue_cert,
        "-key", pki.rogue_key }), "rogue\n")
      local r3 = P.recv(results, 10, "server result")
      assert.is_nil(out3:match("reply:rogue"), out3)
      H.assert_err(r3.err, { "tls handshake failed", "certificate verify failed" })
      ln:close()
    end)
  end)

  it("accepts a client without a certificate when verify = 'optional'", function()
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = line_server(P.server_tls(pki, { verify = "optional", ca = pki.ca }),
        results)
      local out = P.s_client(port, s_client_args(), "anon\n")
      local r = P.recv(results, 10, "server result")
      assert.matches("reply:anon", out)
      assert.is_nil(r.info.peer)
      local out2 = P.s_client(port, s_client_args({ "-cert", pki.client_cert,
        "-key", pki.client_key }), "named\n")
      local r2 = P.recv(results, 10, "server result")
      assert.matches("reply:named", out2)
      assert.is_true(r2.info.peer.verified)
      ln:close()
    end)
  end)

  it("resumes s_client's TLS 1.3 session (-sess_out / -sess_in: 'Reused')", function()
    local sess = H.tmpname(".pem")
    finally(function() os.remove(sess) end)
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = line_server(T, results)
      local out1 = P.s_client(port, s_client_args({ "-sess_out", sess }), "one\n")
      local r1 = P.recv(results, 10, "server result")
      assert.matches("New, TLSv1%.3", out1)
      assert.is_false(r1.info.resumed)
      assert.truthy((H.read_file(sess) or ""):match("BEGIN SSL SESSION"),
        "s_client got no session ticket:\n" .. out1)
      local out2 = P.s_client(port, s_client_args({ "-sess_in", sess }), "two\n")
      local r2 = P.recv(results, 10, "server result")
      assert.matches("Reused, TLSv1%.3", out2)
      assert.matches("reply:two", out2)
      assert.is_true(r2.info.resumed)
      ln:close()
    end)
  end)

  it("resumes TLS 1.2 sessions (-reconnect)", function()
    H.no_fd_leak(function()
      local results = go.chan(64)
      local ln, port = line_server(T, results)
      local out = P.s_client(port, s_client_args({ "-tls1_2", "-reconnect" }), "re\n")
      -- one result per connection: five reconnects and the last one
      H.wait_until(function() return #results >= 6 end, 10)
      ln:close()
      local _, reused = out:gsub("Reused, TLSv1%.2", "")
      assert.is_true(reused >= 5, "resumed " .. reused .. " of 5 reconnects:\n" .. out)
      assert.matches("reply:re", out)
      local resumed = 0
      while #results > 0 do
        local r = results:recv()
        if r.info and r.info.resumed then resumed = resumed + 1 end
      end
      assert.is_true(resumed >= 5, "server saw " .. resumed .. " resumptions")
    end)
  end)

  it("refuses a TLS 1.2 renegotiation without crashing, and keeps serving", function()
    local flag1, flag2 = H.tmpname(), H.tmpname()
    os.remove(flag1); os.remove(flag2)
    finally(function() os.remove(flag1); os.remove(flag2) end)
    H.no_fd_leak(function()
      local results = go.chan(8)
      local ln, port = P.tls_server(T, function(conn)
        conn:settimeout(H.scale(10, 30))
        local first = conn:read("l")
        H.write_file(flag1, "1")
        conn:write("reply:", tostring(first), "\n")
        -- the check after the refusal: answered, then closed (s_client
        -- runs with -ign_eof, so it waits for the server to end)
        if first == "after" then return end
        local second, err = conn:read("l")
        H.write_file(flag2, "1")
        results:send({ first = first, second = second, err = err })
      end)
      -- s_client's "R" command renegotiates; it is sent once the server has
      -- read the first line (flag1); stdin then stays open until the
      -- server's second read has ended (flag2), bounded to 10 s each
      local function wait_flag(f)
        return "i=0; while [ ! -e " .. H.shquote(f) .. " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
      end
      local feed = "printf 'hello\\n'; " .. wait_flag(flag1) .. "printf 'R\\n'; " .. wait_flag(flag2)
      local out = P.sh("( " .. feed .. ") | openssl s_client -connect 127.0.0.1:" .. port
        .. " -tls1_2 -CAfile " .. H.shquote(pki.ca) .. " 2>&1", 40)
      local r = P.recv(results, 20, "server result")
      assert.are.equal("hello", r.first)
      assert.matches("RENEGOTIATING", out)
      local _, handshakes = out:gsub("depth=0", "")
      assert.are.equal(1, handshakes, "a second handshake completed:\n" .. out)
      assert.is_nil(r.second, "the conn went on after a renegotiation")
      -- the refusal (our alert, then the client's) ends the read, also when
      -- the alert met EAGAIN inside SSL_read (GOLUA_MOCKEAGAIN): held and
      -- sent by the read, not left for a write that never comes
      assert.matches("^tls error", tostring(r.err))
      -- the listener still serves
      local out2 = P.s_client(port, s_client_args(), "after\n")
      assert.matches("reply:after", out2)
      ln:close()
    end)
  end)
end)

---------------------------------------------------------------------------
describe("RSA 2048 certificates", function()
  it("our client with s_server, and s_client with our server", function()
    local rsa = P.pki("rsa")
    local srv = P.s_server(rsa, { "-rev" })
    finally(function() srv:stop() end)
    H.no_fd_leak(function()
      local c, err = net.dial("localhost:" .. srv.port,
        { timeout = H.scale(10, 30), tls = { ca = rsa.ca } })
      assert.truthy(c, "dial: " .. tostring(err))
      c:settimeout(H.scale(10, 30))
      assert(c:write("rsa\n"))
      assert.are.equal("asr", c:read("l"))
      assert.is_true(c:tlsinfo().peer.verified)
      c:close()

      local results = go.chan(8)
      local ln, port = line_server(P.server_tls(rsa), results)
      for _, v in ipairs({ {}, { "-tls1_2" } }) do
        local args = { "-CAfile", rsa.ca, "-verify_return_error", "-ign_eof" }
        for _, a in ipairs(v) do args[#args + 1] = a end
        local out = P.s_client(port, args, "rsa\n")
        local r = P.recv(results, 10, "server result")
        assert.matches("Verify return code: 0 %(ok%)", out)
        assert.matches("reply:rsa", out)
        assert.are.equal(v[1] and "TLSv1.2" or "TLSv1.3", r.info.version)
      end
      ln:close()
    end)
  end)
end)

---------------------------------------------------------------------------
describe("curl against goluarun.http over net.serve with tls", function()
  local ln, port, base, resolve
  local alpns = {}
  local tmpfiles = {}

  setup(function()
    local app = http.router()
    app:get("/", function(req, res)
      alpns[#alpns + 1] = req.conn:tlsinfo().alpn or "none"
      res:send("Hello, TLS!\n")
    end)
    app:post("/echo", function(req, res) res:send(req:body()) end)
    ln, port = P.tls_server(P.server_tls(pki, { alpn = { "http/1.1" } }), function(conn)
      http.handle(conn, app, { max_body = 8 * 1024 * 1024 })
    end)
    base = "https://localhost:" .. port
    resolve = " --resolve localhost:" .. port .. ":127.0.0.1 --cacert " .. H.shquote(pki.ca)
  end)

  teardown(function()
    if ln then ln:close() end
    for _, f in ipairs(tmpfiles) do os.remove(f) end
  end)

  it("GET over HTTPS, verified, HTTP/1.1 chosen by ALPN", function()
    local out, err, code = P.sh("curl -sS -v --max-time 30" .. resolve .. " " .. base .. "/")
    assert.are.equal(0, code, err)
    assert.are.equal("Hello, TLS!\n", out)
    assert.matches("SSL certificate verify ok", err)
    assert.matches("ALPN[^\n]*server accepted[^\n]*http/1%.1", err)
    assert.matches("< HTTP/1%.1 200 OK", err)
    assert.are.equal("http/1.1", alpns[#alpns])
  end)

  it("two URLs in one curl command reuse one keep-alive TLS connection", function()
    local _, err, code = P.sh("curl -sS -v --max-time 30" .. resolve
      .. " -o /dev/null -o /dev/null " .. base .. "/ " .. base .. "/")
    assert.are.equal(0, code, err)
    assert.matches("Re%-using existing connection", err)
    local _, connects = err:gsub("\n%* Connected to ", "")
    assert.are.equal(1, connects, err)
    local _, handshakes = err:gsub("SSL connection using", "")
    assert.are.equal(1, handshakes, err)
  end)

  it("echoes a POST body over HTTPS identically", function()
    local size = H.scale(4 * 1024 * 1024 + 3, 64 * 1024)
    local f, o = H.tmpname(".bin"), H.tmpname(".out")
    tmpfiles[#tmpfiles + 1] = f; tmpfiles[#tmpfiles + 1] = o
    H.write_file(f, H.payload(size, 5))
    local res, err, code = P.sh("curl -sS --max-time 120" .. resolve
      .. " --data-binary @" .. H.shquote(f) .. " -w '%{http_code} %{size_download}' -o "
      .. H.shquote(o) .. " " .. base .. "/echo", 150)
    assert.are.equal(0, code, err)
    assert.are.equal("200 " .. size, res)
    assert.is_true(H.read_file(o) == H.read_file(f), "echoed body differs")
  end)

  it("rejects the server when curl does not trust its CA", function()
    local _, err, code = P.sh("curl -sS --max-time 30 --resolve localhost:" .. port
      .. ":127.0.0.1 --cacert " .. H.shquote(pki.rogue_ca) .. " " .. base .. "/")
    assert.are_not.equal(0, code)
    assert.matches("certificate", err)
    -- and the server goes on
    local out, err2, code2 = P.sh("curl -sS --max-time 30" .. resolve .. " " .. base .. "/")
    assert.are.equal(0, code2, err2)
    assert.are.equal("Hello, TLS!\n", out)
  end)
end)

---------------------------------------------------------------------------
describe("wrk over https", function()
  it("runs a few seconds against an HTTPS hello server with zero errors", function()
    H.no_fd_leak(function()
      local app = function(_, res) res:send("Hello, World!\n") end
      local ln, port = P.tls_server(P.server_tls(pki, { alpn = { "http/1.1" } }),
        function(conn) http.handle(conn, app) end, { backlog = 1024 })
      local conns, secs = H.scale(50, 4), H.scale(3, 2)
      local out, err, code = P.sh("wrk -t1 -c" .. conns .. " -d" .. secs .. "s --timeout 10s "
        .. "https://127.0.0.1:" .. port .. "/", 60)
      ln:close()
      assert.are.equal(0, code, err .. out)
      local n = tonumber(out:match("(%d+) requests in"))
      assert.truthy(n, out)
      assert.is_true(n >= conns, "only " .. n .. " requests:\n" .. out)
      assert.is_nil(out:match("Socket errors"), out)
      assert.is_nil(out:match("Non%-2xx"), out)
    end)
    -- the server's goroutines and pollDescs are gone once wrk has closed
  end)
end)

---------------------------------------------------------------------------
describe("Python's ssl module against our server", function()
  -- reads the "hello" line, answers, then reports how the next read ends
  local function eof_server(results)
    return P.tls_server(P.server_tls(pki), function(conn)
      conn:settimeout(H.scale(10, 30))
      local line, err = conn:read("l")
      if line then conn:write("reply:", line, "\n") end
      local more, err2 = conn:read("l")
      results:send({ line = line, err = err, more = more, err2 = err2 })
    end)
  end

  for _, mode in ipairs({ "notify", "abrupt" }) do
    it("a client that closes " .. (mode == "notify" and "with close_notify" or
      "without close_notify (bare FIN)") .. " reads as 'eof'", function()
      H.no_fd_leak(function()
        local results = go.chan(4)
        local ln, port = eof_server(results)
        local out, perr, code = P.python("close", { port, pki.ca, mode })
        local r = P.recv(results, 20, "server result")
        ln:close()
        assert.are.equal(0, code, perr)
        assert.are.equal("reply:hello", P.kv(out).reply)
        assert.are.equal("hello", r.line, tostring(r.err))
        assert.is_nil(r.more)
        assert.are.equal("eof", r.err2)
      end)
    end)
  end

  it("closewrite sends close_notify: Python sees a clean end, not a ragged EOF", function()
    H.no_fd_leak(function()
      local results = go.chan(4)
      local ln, port = P.tls_server(P.server_tls(pki), function(conn)
        conn:settimeout(H.scale(10, 30))
        local line, err = conn:read("l")
        conn:write("bye:", tostring(line), "\n")
        local ok, cerr = conn:closewrite()
        local more, err2 = conn:read("l")
        results:send({ line = line, err = err, cw = ok, cwerr = cerr, more = more, err2 = err2 })
      end)
      local out, perr, code = P.python("peerclose", { port, pki.ca })
      local r = P.recv(results, 20, "server result")
      ln:close()
      assert.are.equal(0, code, perr)
      local kv = P.kv(out)
      assert.are.equal("bye:hello", kv.got)
      assert.are.equal("clean", kv["end"], out)
      assert.truthy(r.cw, tostring(r.cwerr))
      assert.is_nil(r.more)
      assert.are.equal("eof", r.err2)
    end)
  end)

  it("moves a 16 MiB body both ways at once, checked by SHA-256", function()
    local size = H.scale(16 * 1024 * 1024, 256 * 1024)
    local up, down = H.payload(size, 21), H.payload(size, 22)
    local upf, downf = H.tmpname(".bin"), H.tmpname(".bin")
    finally(function() os.remove(upf); os.remove(downf) end)
    H.write_file(upf, up); H.write_file(downf, down)
    local want = P.sh("sha256sum " .. H.shquote(downf)):match("^(%x+)")
    H.no_fd_leak(function()
      local results = go.chan(4)
      local ln, port = P.tls_server(P.server_tls(pki), function(conn)
        conn:settimeout(H.scale(60, 240))
        -- write the download while reading the upload (two goroutines on
        -- one conn: one reader, one writer)
        local w = go(function() return conn:write(down) end)
        local got, err = conn:read(size)
        local ok, n, werr = go.wait(w, H.scale(60, 240))
        results:send({ same = got == up, got = got and #got, err = err, ok = ok, n = n,
          werr = werr })
      end)
      local out, perr, code = P.python("big", { port, pki.ca, size, upf }, H.scale(120, 280))
      local r = P.recv(results, 30, "server result")
      ln:close()
      assert.are.equal(0, code, perr)
      local kv = P.kv(out)
      assert.are.equal("", kv.sent_error)
      assert.are.equal(tostring(size), kv.received)
      assert.are.equal(want, kv.sha256, "download differs")
      assert.is_true(r.same, "upload differs: got " .. tostring(r.got) .. " bytes, "
        .. tostring(r.err))
      assert.is_true(r.ok)
      assert.are.equal(size, r.n, tostring(r.werr))
    end)
  end)
end)
