-- chaos_spec: the example servers (scripts/echo.lua, http_server.lua,
-- redis_lite.lua, proxy.lua) run under GOLUA_CHAOS=SEED:RATE (random
-- EINTR, short reads and writes, spurious EAGAIN, ECONNRESET, EPIPE, EMFILE
-- on accept; runtime/sockio.c) with two seeds, while clients of this
-- process (no chaos here: the switch is the server's) do bounded work.
-- Invariants that hold whatever is injected:
--   * every answer a client gets is right, and every error it sees is one
--     of the contract's strings a dying connection gives ("eof",
--     "connection reset", "broken pipe"); never a timeout (a hang);
--   * the server survives and still serves a client (retried: the faults
--     go on, so one attempt may meet one);
--   * its fd count comes back to the baseline taken after a warm-up;
--   * its stderr has no Lua error, crash, sanitizer or "fatal" line.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

local here = debug.getinfo(1, "S").source:gsub("^@", "")
local root = here:match("^(.*)/spec/[^/]*$") or "."

local SEEDS = { 1, 7 }
-- the fault rate per system call; under mockeagain this process writes one
-- byte per call, so the server makes a call per byte: a smaller rate keeps
-- the faults per exchange about the same
local RATE = H.scale("0.05", "0.003")
local CLIENTS = 6
local ROUNDS = H.scale(15, 6)    -- exchanges per client (one byte per call under mockeagain)
local OP_TIMEOUT = 10            -- no single operation may take longer: a hang
local DYING = { "eof", "connection reset", "broken pipe" }

-- the server's open fds
local function nfds(pid)
  local n = 0
  local d = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null")
  for _ in d:lines() do n = n + 1 end
  d:close()
  return n
end

-- starts scripts/NAME with args under env; returns proc, addr
local function start(name, args, env)
  local p = H.spawn(root .. "/scripts/" .. name, args,
    { file = true, timeout = 120, env = env, unsetenv = { "GOLUA_MOCKEAGAIN" } })
  local addr = p:wait_output("listening on (%S+)", 10)
  if not addr then
    local msg = name .. " did not listen:\n" .. p:stdout() .. "\n" .. p:stderr()
    p:cleanup()
    error(msg, 2)
  end
  return p, addr
end

-- is err a dying connection's contract error?
local function dying(err)
  for _, class in ipairs(DYING) do
    if H.is_err(err, class) then return true end
  end
  return false
end

-- Each client kind: fn(addr, k) -> "ok" | "cut" (the connection died with a
-- contract error: fine) | raises with what broke the contract.
local clients = {}

local function dial(addr)
  local c, err = net.dial(addr, OP_TIMEOUT)
  if not c then
    if dying(err) then return nil end
    error("dial: " .. tostring(err))
  end
  c:settimeout(OP_TIMEOUT)
  return c
end

-- fails unless err is a dying connection's; closes c
local function cut(c, what, err)
  c:close()
  if not dying(err) then error(what .. ": " .. tostring(err)) end
  return "cut"
end

function clients.echo(addr, k)
  local c = dial(addr)
  if not c then return "cut" end
  for i = 1, ROUNDS do
    local msg = ("client %d line %d %s\n"):format(k, i, ("x"):rep(i * 37 % 300))
    local ok, err = c:write(msg)
    if not ok then return cut(c, "write", err) end
    local back, rerr = c:read(#msg)
    if not back then return cut(c, "read", rerr) end
    if back ~= msg then c:close() error("echo differs: " .. back) end
  end
  c:close()
  return "ok"
end
clients.proxy = clients.echo

-- reads an HTTP/1.1 response (Content-Length): status, body | nil, err
local function http_response(c)
  local status, err = c:read("l")
  if not status then return nil, err end
  local len
  while true do
    local line, lerr = c:read("l")
    if not line then return nil, lerr end
    line = line:gsub("\r$", "")
    if line == "" then break end
    local n = line:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  local body, berr = c:read(assert(len, "no Content-Length"))
  if not body then return nil, berr end
  return status:gsub("\r$", ""), body
end

function clients.http(addr, k)
  local c = dial(addr)
  if not c then return "cut" end
  for i = 1, ROUNDS do
    local req, want
    if i % 2 == 0 then
      req = "GET / HTTP/1.1\r\nHost: chaos\r\n\r\n"
      want = "Hello, World!\n"
    else
      want = ("body %d %d "):format(k, i) .. ("y"):rep(i * 53 % 700)
      req = ("POST /echo HTTP/1.1\r\nHost: chaos\r\nContent-Length: %d\r\n\r\n%s"):format(#want, want)
    end
    local ok, err = c:write(req)
    if not ok then return cut(c, "write", err) end
    local status, body = http_response(c)
    if not status then return cut(c, "response", body) end
    if status ~= "HTTP/1.1 200 OK" or body ~= want then
      c:close()
      error(("bad response %q %q"):format(status, body))
    end
  end
  c:close()
  return "ok"
end

local function bulk(s) return ("$%d\r\n%s\r\n"):format(#s, s) end
local function command(...)
  local t = { ("*%d\r\n"):format(select("#", ...)) }
  for _, a in ipairs({ ... }) do t[#t + 1] = bulk(a) end
  return table.concat(t)
end

function clients.redis(addr, k)
  local c = dial(addr)
  if not c then return "cut" end
  for i = 1, ROUNDS do
    local key, val = ("k%d.%d"):format(k, i), ("v%d "):format(i) .. ("z"):rep(i * 71 % 900)
    local ok, err = c:write(command("SET", key, val), command("GET", key))
    if not ok then return cut(c, "write", err) end
    local r1, e1 = c:read("l")
    if not r1 then return cut(c, "read", e1) end
    local r2, e2 = c:read("l")
    if not r2 then return cut(c, "read", e2) end
    local got, e3 = c:read(#val + 2)
    if not got then return cut(c, "read", e3) end
    r1, r2 = r1:gsub("\r$", ""), r2:gsub("\r$", "")
    if r1 ~= "+OK" or r2 ~= ("$%d"):format(#val) or got ~= val .. "\r\n" then
      c:close()
      error(("bad reply %q %q %q"):format(r1, r2, got))
    end
  end
  c:close()
  return "ok"
end

-- runs CLIENTS clients of `kind` at once; returns the number that ended "ok"
local function load(kind, addr)
  local gs = {}
  for k = 1, CLIENTS do gs[k] = go(clients[kind], addr, k) end
  local oks = 0
  for k = 1, CLIENTS do
    local r = table.pack(go.wait(gs[k], 60))
    assert(r[1] ~= nil, kind .. " client " .. k .. " did not end within 60 s")
    assert(r[1] == true, kind .. " client " .. k .. " broke the contract: " .. tostring(r[2]))
    if r[2] == "ok" then oks = oks + 1 end
  end
  return oks
end

-- one clean exchange, retried while the injected faults cut it
local function still_serves(kind, addr)
  for _ = 1, 20 do
    local ok, res = pcall(clients[kind], addr, 0)
    assert(ok, kind .. " client broke the contract: " .. tostring(res))
    if res == "ok" then return true end
  end
  return false
end

local BAD_STDERR = { "traceback", "fatal", "panic", "AddressSanitizer", "runtime error",
  "LeakSanitizer", "Assertion", "attempt to", "goroutine %d+" }

local function check_stderr(p, name)
  local err = p:stderr()
  for line in err:gmatch("[^\n]+") do
    for _, pat in ipairs(BAD_STDERR) do
      assert.is_nil(line:find(pat), name .. " stderr: " .. line .. "\n" .. err)
    end
  end
end

local SERVERS = {
  { name = "echo.lua", kind = "echo" },
  { name = "http_server.lua", kind = "http" },
  { name = "redis_lite.lua", kind = "redis" },
  { name = "proxy.lua", kind = "proxy", backend = "echo.lua" },
}

for _, seed in ipairs(SEEDS) do
  local chaos = seed .. ":" .. RATE
  describe("GOLUA_CHAOS=" .. chaos, function()
    for _, s in ipairs(SERVERS) do
      it(s.name .. " survives, serves, and leaks no fd", function()
        local backend, baddr, p, addr
        local ok, err = pcall(function()
          local args = { "127.0.0.1:0" }
          if s.backend then -- a clean backend: the faults are the proxy's
            backend, baddr = start(s.backend, { "127.0.0.1:0" }, {})
            args[2] = baddr
          end
          p, addr = start(s.name, args, { GOLUA_CHAOS = chaos })
          -- warm up (threads, pollers, caches), then take the baseline
          assert.is_true(still_serves(s.kind, addr), "no clean exchange at all")
          assert.is_true(H.wait_until(function() return nfds(p.pid) <= 64 end, 5))
          local base
          assert.is_true(H.wait_until(function()
            local a = nfds(p.pid)
            go.sleep(0.05)
            base = nfds(p.pid)
            return a == base
          end, 5))
          -- (under GOLUA_MOCKEAGAIN an exchange takes a syscall per byte,
          -- so the faults may cut every client of a round: 1 run in 25
          -- here; up to three rounds for one that finishes)
          local oks = load(s.kind, addr)
          for _ = 1, 2 do
            if oks >= 1 then break end
            oks = oks + load(s.kind, addr)
          end
          assert.is_true(p:alive(), s.name .. " died:\n" .. p:stderr())
          assert.is_true(still_serves(s.kind, addr), s.name .. " no longer serves")
          local now
          assert.is_true(H.wait_until(function()
            now = nfds(p.pid)
            return now <= base
          end, 10), ("%s: %d fds, baseline %d"):format(s.name, now, base))
          check_stderr(p, s.name)
          -- the run was not trivially clean: some clients finished
          assert.is_true(oks >= 1, "no client finished its work")
        end)
        if p then p:cleanup() end
        if backend then backend:cleanup() end
        assert(ok, err)
      end)
    end
  end)
end

describe("GOLUA_CHAOS values", function()
  it("a malformed value is reported and ignored", function()
    for _, v in ipairs({ "x", "1:0", "1:2", "1:", "-3" }) do
      local r = H.run("print('ran')", {}, { env = { GOLUA_CHAOS = v } })
      assert.are.equal(0, r.status, H.describe_run(r))
      assert.are.equal("ran\n", r.stdout)
      assert.truthy(r.stderr:find("GOLUA_CHAOS=" .. v:gsub("%p", "%%%0") .. ": must be SEED"),
        r.stderr)
    end
  end)

  it("EINTR, short and spurious EAGAIN faults are invisible to a clean exchange", function()
    -- a pair inside one process under heavy chaos: every fault kind is
    -- drawn; the bytes that arrive are exact and a failure is a contract one
    local r = H.run([[
      local go, net = require "go", require "net"
      local ln = assert(net.listen("127.0.0.1:0"))
      local srv = go(function()
        local n = 0
        while n < 40 do
          local c = ln:accept(10)
          if c then
            n = n + 1
            go(function()
              c:settimeout(10)
              while true do
                local d = c:read()
                if not d or not c:write(d) then break end
              end
              c:close()
            end)
          end
        end
      end)
      local ok, cut = 0, 0
      for i = 1, 40 do
        local c, e = net.dial(ln:addr(), 10)
        local msg = ("m"):rep(100 + i * 7)
        local w
        if c then w, e = c:write(msg) end
        local back, re
        if w then back, re = c:read(#msg) end
        if back == msg then ok = ok + 1
        else
          local err = e or re
          assert(err == "eof" or err == "connection reset" or err == "broken pipe", err)
          cut = cut + 1
        end
        if c then c:close() end
      end
      print("ok", ok, "cut", cut)
      os.exit(0)
    ]], {}, { env = { GOLUA_CHAOS = "3:0.3" }, unsetenv = { "GOLUA_MOCKEAGAIN" }, timeout = 60 })
    assert.are.equal(0, r.status, H.describe_run(r))
    local ok = tonumber(r.stdout:match("ok%s+(%d+)"))
    assert.truthy(ok and ok >= 1, H.describe_run(r))
  end)
end)
