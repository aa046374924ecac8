-- support.tlspeers: real TLS peers for tls_peers_spec and tls_hostile_spec
-- (openssl s_server / s_client, Debian's python3 ssl module) and the
-- small pieces both specs share.
--
--   local P = require "support.tlspeers"
--   local pki = P.pki()                     -- support.certs PKI (EC P-256),
--                                           -- one per spec file; P.cleanup()
--   local srv = P.s_server(pki, {"-rev"})   -- openssl s_server on a free
--   srv.port, srv:output(), srv:stop()      -- loopback port, stopped by PID
--   local out, code = P.s_client(port, {"-servername", "x"}, "stdin text")
--   local out, code = P.python("cmd", {args...})   -- P.PY subcommands
--   P.client_hello()                        -- a real ClientHello (bytes)
--   P.recv(ch, timeout)                     -- channel receive, raises on
--                                           -- timeout
--   P.rss_kib(), P.polldescs(), P.goroutines()
--   P.tls_server(T, handler) -> ln, port    -- net.serve with {tls = T}
--
-- Rules (spec/support/helpers.lua): every peer runs on a free 127.0.0.1
-- port, under `timeout -s KILL`, and is stopped by its PID; waits are
-- bounded condition polls. Tools missing fail the spec with the Debian
-- package to install (openssl, python3, curl, wrk).
local go = require "go"
local net = require "net"
local H = require "support.helpers"
local certs = require "support.certs"

local M = {}
local q = H.shquote

M.PYTHON = "/usr/bin/python3" -- Debian's, whose ssl links the system OpenSSL

---------------------------------------------------------------------------
-- PKI
---------------------------------------------------------------------------

local pkis = {}

--- A throw-away PKI (support.certs), made once per kind ("ec" default).
function M.pki(kind)
  kind = kind or "ec"
  if not pkis[kind] then pkis[kind] = certs.make { key = kind } end
  return pkis[kind]
end

--- Removes the PKIs and the temp files this module made.
function M.cleanup()
  for k, pki in pairs(pkis) do pki.cleanup(); pkis[k] = nil end
  if M.pyfile then os.remove(M.pyfile); M.pyfile = nil end
end

--- The server config of `pki` ({cert, key}) merged with `extra`.
function M.server_tls(pki, extra)
  local t = { cert = pki.cert, key = pki.key }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

---------------------------------------------------------------------------
-- Background processes (like H.spawn, for any command)
---------------------------------------------------------------------------

local Proc = {}
Proc.__index = Proc

--- Starts the shell command `cmd` in the background with stdin from
--- /dev/null and stdout+stderr to one file, killed after `limit` seconds
--- (default 120). Returns a handle: pid, output(), alive(), stop().
function M.start(cmd, limit)
  local p = setmetatable({ out = H.tmpname(), pidf = H.tmpname(), statf = H.tmpname() }, Proc)
  os.remove(p.pidf); os.remove(p.statf)
  local inner = "echo $$ > " .. q(p.pidf) .. "; exec " .. cmd
  os.execute("( timeout -s KILL " .. tostring(limit or 120) .. " sh -c " .. q(inner)
    .. " < /dev/null > " .. q(p.out) .. " 2>&1; echo $? > " .. q(p.statf)
    .. " ) > /dev/null 2>&1 &")
  local ok = H.wait_until(function()
    local s = H.read_file(p.pidf)
    p.pid = s and tonumber(s:match("%d+"))
    return p.pid ~= nil
  end, 10)
  if not ok then error("could not start: " .. cmd, 2) end
  return p
end

function Proc:output() return H.read_file(self.out) or "" end
function Proc:status()
  local s = H.read_file(self.statf)
  return s and tonumber(s:match("%d+"))
end
function Proc:alive() return self:status() == nil and H.alive(self.pid) end

--- Waits (bounded) until the output matches `pattern`; its captures or nil.
function Proc:wait_output(pattern, timeout)
  local caps
  H.wait_until(function()
    caps = table.pack(self:output():match(pattern))
    return caps[1] ~= nil or not self:alive()
  end, timeout or 10, 0.01)
  caps = table.pack(self:output():match(pattern))
  return table.unpack(caps, 1, caps.n)
end

--- Kills the process by PID (TERM, then KILL) and removes its files.
function Proc:stop()
  if self.pid and self:status() == nil then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not H.wait_until(function() return self:status() ~= nil end, 3) then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
      H.wait_until(function() return self:status() ~= nil end, 5)
    end
  end
  os.remove(self.out); os.remove(self.pidf); os.remove(self.statf)
end

---------------------------------------------------------------------------
-- openssl s_server / s_client
---------------------------------------------------------------------------

local function have(tool)
  return os.execute("command -v " .. tool .. " >/dev/null 2>&1")
end

function M.require_tools(...)
  for _, t in ipairs({ ... }) do
    local pkg = ({ openssl = "openssl", curl = "curl", wrk = "wrk",
                   [M.PYTHON] = "python3" })[t] or t
    H.require_tool(t, pkg)
  end
end

local function join(args)
  local parts = {}
  for _, a in ipairs(args or {}) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

--- Starts `openssl s_server` on 127.0.0.1:<free port> with pki's server
--- certificate (or opts.cert/opts.key) and the extra `args` (use "-rev" or
--- "-www": the default mode ends when its stdin, /dev/null, does).
--- Returns a handle with .port, :output(), :stop().
function M.s_server(pki, args, opts)
  opts = opts or {}
  local cmd = "openssl s_server -accept 127.0.0.1:0 -cert " .. q(opts.cert or pki.cert)
    .. " -key " .. q(opts.key or pki.key) .. " " .. join(args)
  local p = M.start(cmd, opts.limit)
  local port = p:wait_output("ACCEPT 127%.0%.0%.1:(%d+)", 10)
  if not port then
    local out = p:output()
    p:stop()
    error("s_server did not start: " .. cmd .. "\n" .. out, 2)
  end
  p.port = tonumber(port)
  p.addr = "127.0.0.1:" .. port
  return p
end

--- Runs `openssl s_client -connect 127.0.0.1:PORT ARGS` with `stdin` (a
--- string, default empty) and returns its output (stdout+stderr) and exit
--- code. The caller's goroutine parks (os.execute runs on the worker
--- pool), so an in-process server keeps serving meanwhile. Bounded to
--- `limit` seconds (default 30).
function M.s_client(port, args, stdin, limit)
  local inf = H.tmpname()
  H.write_file(inf, stdin or "")
  local out = H.tmpname()
  local _, how, code = os.execute("timeout -s KILL " .. tostring(limit or 30)
    .. " openssl s_client -connect 127.0.0.1:" .. port .. " " .. join(args)
    .. " < " .. q(inf) .. " > " .. q(out) .. " 2>&1")
  local s = H.read_file(out) or ""
  os.remove(inf); os.remove(out)
  if how == "signal" then code = 128 + code end
  return s, code
end

--- Runs a shell command line bounded to `limit` seconds (default 60);
--- returns stdout, stderr, exit code.
function M.sh(cmd, limit)
  local out, err = H.tmpname(), H.tmpname()
  local _, how, code = os.execute("timeout -s KILL " .. tostring(limit or 60) .. " sh -c "
    .. q(cmd) .. " > " .. q(out) .. " 2> " .. q(err) .. " < /dev/null")
  local o, e = H.read_file(out) or "", H.read_file(err) or ""
  os.remove(out); os.remove(err)
  if how == "signal" then code = 128 + code end
  return o, e, code
end

---------------------------------------------------------------------------
-- Python's ssl module
---------------------------------------------------------------------------

-- Subcommands: python3 FILE CMD ARGS...; each prints "key=value" lines.
M.PY = [=[
import hashlib, os, socket, ssl, sys, threading, time

def ctx_for(ca, tls12=False):
    c = ssl.create_default_context(cafile=ca)
    if tls12:
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    return c

def connect(port, ca, tls12=False, ragged=True):
    raw = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    s = ctx_for(ca, tls12).wrap_socket(raw, server_hostname="localhost",
                                      suppress_ragged_eofs=ragged)
    print("version=%s" % s.version(), flush=True)
    return s

def readline(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            break
        buf += d
    return buf

def client_hello():
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    t = ssl.create_default_context().wrap_bio(i, o, server_hostname="localhost")
    try:
        t.do_handshake()
    except ssl.SSLWantReadError:
        pass
    sys.stdout.buffer.write(o.read())

def close(port, ca, mode):
    # sends "hello\n", reads the reply line, then ends the connection with
    # close_notify ("notify": unwrap) or without it ("abrupt")
    s = connect(port, ca)
    s.sendall(b"hello\n")
    print("reply=%s" % readline(s).decode().strip(), flush=True)
    if mode == "notify":
        try:
            s.unwrap()
            print("unwrap=ok")
        except (ssl.SSLError, OSError) as e:
            print("unwrap=%s" % type(e).__name__)
        s.close()
    else:
        socket.socket.shutdown(s, socket.SHUT_RDWR)  # FIN, no close_notify
        socket.socket.close(s)
    print("done=1")

def peerclose(port, ca):
    # sends "hello\n" and reads to the end, telling a close_notify ("clean")
    # from a bare FIN ("ragged")
    s = connect(port, ca, ragged=False)
    s.sendall(b"hello\n")
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                print("end=clean")
                break
            got += d
    except ssl.SSLEOFError:
        print("end=ragged")
    except (ssl.SSLError, OSError) as e:
        print("end=error:%s" % e)
    print("got=%s" % got.decode(errors="replace").strip())
    s.close()

def big(port, ca, n, infile):
    # sends infile (n bytes) while reading n bytes; prints the received
    # bytes' sha256. One thread and a select loop: an SSL socket used from
    # two threads at once races inside OpenSSL (seen as a spurious "EOF
    # occurred in violation of protocol" on the sender under a slow server)
    import select
    s = connect(port, ca)
    data = memoryview(open(infile, "rb").read())
    s.setblocking(False)
    err = []
    h, got, sent = hashlib.sha256(), 0, 0
    n = int(n)
    while got < n or (sent < len(data) and not err):
        want_w = sent < len(data) and not err
        r, w, _ = select.select([s], [s] if want_w else [], [], 60)
        if not r and not w and not s.pending():
            err.append("stalled")
            break
        if want_w and w:
            try:
                sent += s.send(data[sent:sent + 65536])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except Exception as e:
                err.append(e)
        while got < n:
            try:
                d = s.recv(min(1 << 20, n - got))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not d:
                n = got  # the peer closed early: report what came
                break
            h.update(d)
            got += len(d)
    print("sent_error=%s" % (err and err[0] or ""))
    print("received=%d" % got)
    print("sha256=%s" % h.hexdigest())
    s.close()

def garbage(port, ca):
    # a good handshake and one echoed line, then raw bytes that are no TLS
    # record on the same socket; reports how the server ended it
    s = connect(port, ca)
    s.sendall(b"hello\n")
    print("reply=%s" % readline(s).decode().strip(), flush=True)
    os.write(s.fileno(), b"\x17\x03\x03\x00\x10" + b"garbage-garbage!" + b"\xff" * 64)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                print("end=eof")
                break
    except (ssl.SSLError, OSError) as e:
        print("end=%s" % type(e).__name__)
    s.close()

cmd = sys.argv[1]
globals()[cmd](*sys.argv[2:])
]=]

--- Runs `python3 tlspeers.py CMD ARGS...` (Debian's python3); returns
--- stdout (bytes), stderr and the exit code. Bounded to `limit` s.
function M.python(cmd, args, limit)
  if not M.pyfile then
    M.pyfile = H.tmpname(".py")
    H.write_file(M.pyfile, M.PY)
  end
  local line = q(M.PYTHON) .. " " .. q(M.pyfile) .. " " .. q(cmd) .. " " .. join(args)
  return M.sh(line, limit or 60)
end

--- key=value lines of a python run as a table.
function M.kv(out)
  local t = {}
  for k, v in out:gmatch("([%w_]+)=([^\n]*)") do t[k] = v end
  return t
end

local hello
--- A real TLS ClientHello as Python's ssl module sends it (bytes).
function M.client_hello()
  if not hello then
    local out, err, code = M.python("client_hello", {})
    assert(code == 0 and #out > 100, "client_hello: " .. err)
    hello = out
  end
  return hello
end

---------------------------------------------------------------------------
-- Runtime bookkeeping
---------------------------------------------------------------------------

--- Receives from channel `ch` within `timeout` s (default 10); raises
--- with `what` if nothing came.
function M.recv(ch, timeout, what)
  local i, v = go.select({ { ch, "recv" } }, timeout or 10)
  if not i then error((what or "channel") .. ": nothing within " .. (timeout or 10) .. " s", 2) end
  return v
end

function M.rss_kib()
  return tonumber(H.read_file("/proc/self/status"):match("VmRSS:%s*(%d+)"))
end
--- Is this process built with AddressSanitizer (or ThreadSanitizer)? Their
--- allocators keep freed memory, so RSS says nothing about leaks there
--- (LeakSanitizer, at exit, does).
function M.asan()
  return (H.read_file("/proc/self/maps") or ""):find("libasan", 1, true) ~= nil
    or os.getenv("GOLUA_TSAN") ~= nil
end
function M.polldescs() return go.stats().polldescs end
function M.goroutines() return go.stats().goroutines end

--- Waits (bounded) until the goroutine count is back to `n` or below.
function M.wait_goroutines(n, timeout)
  return H.wait_until(function() return M.goroutines() <= n end, timeout or 10)
end

--- net.serve on 127.0.0.1:0 with {tls = T}: ln, port.
function M.tls_server(T, handler, opts)
  local o = { tls = T }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ln, err = net.serve("127.0.0.1:0", handler, o)
  if not ln then error("net.serve with tls: " .. tostring(err), 2) end
  return ln, tonumber(ln:addr():match(":(%d+)$"))
end

return M
