-- examples_tls_spec: the examples' --tls CERT KEY flag (scripts/echo.lua,
-- scripts/http_hello.lua, scripts/http_server.lua) and goluarun.http's
-- tls option, checked by real clients: curl --cacert, openssl s_client,
-- Python's ssl module, and net.dial{tls = ...}. Certificates come from
-- spec/support/certs.lua (made by openssl in a temporary folder, removed
-- at the end); every server is a subprocess on a free port, stopped by PID.
local go = require "go"
local net = require "net"
local H = require "support.helpers"
local certs = require "support.certs"

H.require_tool("openssl", "openssl")
H.require_tool("curl", "curl")
H.require_tool("python3", "python3")

local q = H.shquote

-- starts scripts/NAME with args (address first) and --tls CERT KEY;
-- returns the process and its address
local function start(name, pki, args, flags)
  local argv = { "127.0.0.1:0" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = "--tls"
  argv[#argv + 1] = pki.cert
  argv[#argv + 1] = pki.key
  return H.start_script(name, argv, { flags = flags })
end

local function port_of(addr) return addr:match(":(%d+)$") end

-- curl over HTTPS, verifying against the test CA; returns output, exit code
local function curl(pki, args)
  return H.sh("curl -sS --max-time 20 --cacert " .. q(pki.ca) .. " " .. args)
end

-- openssl s_client: handshake, then EOF on stdin; returns its output
local function s_client(pki, addr, extra)
  return H.sh("openssl s_client -connect " .. q(addr) .. " -CAfile " .. q(pki.ca)
    .. " -verify_return_error " .. (extra or ""))
end

-- a Python ssl client that sends `chunks` pieces of `size` bytes, reads
-- each back and prints "OK <version> <alpn>"
local PY_ECHO = [[
import socket, ssl, sys
host, port, ca, size, chunks = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["echo"])
with socket.create_connection((host, port), timeout=20) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        for i in range(chunks):
            data = bytes((j * 7 + i) % 251 for j in range(size))
            t.sendall(data)
            got = b""
            while len(got) < size:
                d = t.recv(size - len(got))
                if not d:
                    sys.exit("early EOF after %d bytes" % len(got))
                got += d
            if got != data:
                sys.exit("echo differs in chunk %d" % i)
        print("OK", t.version(), t.selected_alpn_protocol())
]]

describe("TLS examples", function()
  local pki
  setup(function() pki = certs.make{ key = "ec" } end)
  teardown(function() if pki then pki.cleanup() end end)

  describe("scripts/echo.lua --tls", function()
    local p, addr
    setup(function() p, addr = start("echo.lua", pki) end)
    teardown(function() if p then p:cleanup() end end)

    it("echoes to net.dial with tls, verified against the CA", function()
      local c = assert(net.dial(addr, { timeout = 10, tls = { ca = pki.ca, servername = "localhost" } }))
      local info = assert(c:tlsinfo())
      assert.matches("^TLSv1%.[23]$", info.version)
      assert.is_true(info.peer.verified)
      for _, size in ipairs({ 1, 1000, H.scale(1024 * 1024, 20000) }) do
        local data = H.payload(size, size % 7)
        local w = go(function() return c:write(data) end)
        local back, err = c:read(size)
        assert.are.equal(size, back and #back or tostring(err))
        assert.is_true(back == data, "echo differs for size " .. size)
        assert.are.same({ true, size }, { go.wait(w, 30) })
      end
      c:close()
    end)

    it("echoes to Python's ssl module (a real peer)", function()
      local script = H.write_file(H.tmpname(".py"), PY_ECHO)
      local out, code = H.sh("python3 " .. q(script) .. " 127.0.0.1 " .. port_of(addr) .. " "
        .. q(pki.ca) .. " " .. H.scale(65536, 4096) .. " " .. H.scale(16, 2))
      os.remove(script)
      assert.are.equal(0, code, out)
      assert.matches("^OK TLSv1%.3 None", out)
    end)

    it("a plaintext client gets no echo, and the server still serves", function()
      local c = assert(net.dial(addr, 5))
      c:settimeout(10)
      -- the server may fail the handshake at the first byte and close while
      -- the rest is still being sent (one byte per call under mockeagain)
      local ok, werr = c:write("hello in clear\r\n")
      if not ok then H.assert_err(werr, { "broken pipe", "connection reset" }) end
      local r, err = c:read()
      -- the server's handshake fails: whatever comes back is a TLS alert,
      -- never the bytes sent, and the connection ends
      assert.is_true(r ~= "hello in clear\r\n")
      if r then r, err = c:read() end
      while r do r, err = c:read() end
      H.assert_err(err, { "eof", "connection reset" })
      c:close()
      local out = s_client(pki, addr, "-servername localhost")
      assert.matches("Verify return code: 0 %(ok%)", out)
    end)
  end)

  describe("scripts/http_hello.lua --tls", function()
    for _, case in ipairs({
      { flags = { "-p", "1" }, args = {}, what = "-p 1" },
      { flags = { "-p", "2" }, args = { "every" }, what = "-p 2, accepting on every P" },
      { flags = { "-p", "2" }, args = { "one" }, what = "-p 2, one acceptor" },
    }) do
      describe(case.what, function()
        local p, addr
        setup(function() p, addr = start("http_hello.lua", pki, case.args, case.flags) end)
        teardown(function() if p then p:cleanup() end end)

        it("curl --cacert gets the hello twice over one connection, HTTP/1.1 over ALPN", function()
          local url = "https://localhost:" .. port_of(addr) .. "/"
          local out, code = curl(pki, "-v --resolve localhost:" .. port_of(addr) .. ":127.0.0.1 "
            .. q(url) .. " " .. q(url))
          assert.are.equal(0, code, out)
          local _, n = out:gsub("Hello, World!", "")
          assert.are.equal(2, n, out)
          assert.matches("ALPN: server accepted http/1%.1", out)
          assert.matches("[Rr]e%-?using existing connection", out)
          assert.matches("SSL connection using TLSv1%.3", out)
        end)

        it("openssl s_client sees the certificate verified and http/1.1 chosen", function()
          local out = s_client(pki, addr, "-alpn h2,http/1.1")
          assert.matches("Verify return code: 0 %(ok%)", out)
          assert.matches("ALPN protocol: http/1%.1", out)
        end)

        it("every connection is TLS (a plaintext request gets no HTTP answer)", function()
          local out = H.sh("curl -sS --max-time 10 " .. q("http://" .. addr .. "/"))
          assert.is_nil(out:find("Hello, World!", 1, true), out)
        end)
      end)
    end
  end)

  describe("scripts/http_server.lua --tls", function()
    local p, addr, url
    setup(function()
      p, addr = start("http_server.lua", pki)
      url = "https://127.0.0.1:" .. port_of(addr)
    end)
    teardown(function() if p then p:cleanup() end end)

    it("answers GET / to curl --cacert, verified against the IP SAN", function()
      local out, code = curl(pki, "-v " .. q(url .. "/"))
      assert.are.equal(0, code, out)
      assert.matches("Hello, World!", out)
      assert.matches("ALPN: server accepted http/1%.1", out)
    end)

    it("echoes a POST body both ways", function()
      local size = H.scale(4 * 1024 * 1024, 50000)
      local file = H.write_file(H.tmpname(), H.payload(size, 3))
      local got = H.tmpname()
      local out, code = curl(pki, "-o " .. q(got) .. " -H 'Content-Type: application/octet-stream'"
        .. " --data-binary @" .. q(file) .. " " .. q(url .. "/echo"))
      assert.are.equal(0, code, out)
      local back = H.read_file(got)
      os.remove(file); os.remove(got)
      assert.are.equal(size, back and #back or -1)
      assert.is_true(back == H.payload(size, 3), "echoed body differs")
    end)

    it("an unknown CA makes curl refuse (the server is not trusted by default)", function()
      local out, code = H.sh("curl -sS --max-time 10 " .. q(url .. "/"))
      assert.are_not.equal(0, code, out)
      assert.matches("certificate", out)
    end)
  end)

  describe("goluarun.http's tls option", function()
    it("serves HTTPS with ALPN http/1.1 by default; a non-table tls raises", function()
      local http = require "goluarun.http"
      assert.has_error(function() http.serve("127.0.0.1:0", function() end, { tls = "x" }) end,
        "http: opts.tls must be a table")
      local ln = assert(http.serve("127.0.0.1:0", function(req, res)
        local info = req.conn:tlsinfo()
        res:send(info and (info.version .. " " .. tostring(info.alpn)) or "plain")
      end, { tls = { cert = pki.cert, key = pki.key } }))
      local c = assert(net.dial(ln:addr(), { timeout = 10,
        tls = { ca = pki.ca, servername = "localhost", alpn = { "h2", "http/1.1" } } }))
      assert.are.equal("http/1.1", c:tlsinfo().alpn)
      assert(c:write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
      c:settimeout(10)
      local resp = {}
      while true do
        local d = c:read()
        if not d then break end
        resp[#resp + 1] = d
      end
      c:close()
      ln:close()
      assert.matches("\r\n\r\nTLSv1%.3 http/1%.1$", table.concat(resp))
    end)

    it("a missing certificate file is an error at listen, not a plaintext server", function()
      local p = H.spawn(H.root() .. "/scripts/http_server.lua",
        { "127.0.0.1:0", "--tls", "/nonexistent/cert.pem", "/nonexistent/key.pem" },
        { file = true, timeout = 30 })
      local st = p:wait(20)
      local out, err = p:stdout(), p:stderr()
      p:cleanup()
      assert.is_not_nil(st, "still running with a missing certificate")
      assert.are_not.equal(0, st)
      assert.is_nil(out:find("listening on", 1, true), out)
      assert.are_not.equal("", err)
    end)
  end)

  describe("RSA 2048", function()
    local rsa, p, addr
    setup(function()
      rsa = certs.make{ key = "rsa" }
      p, addr = start("echo.lua", rsa)
    end)
    teardown(function()
      if p then p:cleanup() end
      if rsa then rsa.cleanup() end
    end)

    it("echo.lua serves with an RSA certificate", function()
      local c = assert(net.dial(addr, { timeout = 10, tls = { ca = rsa.ca } }))
      assert(c:write("ping\n"))
      assert.are.equal("ping\n", c:read("L"))
      assert.is_true(c:tlsinfo().peer.verified)
      c:close()
    end)
  end)
end)
