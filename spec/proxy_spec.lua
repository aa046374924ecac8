-- proxy_spec: scripts/proxy.lua in front of scripts/redis_lite.lua (both
-- subprocesses on free ports), driven by redis-benchmark and redis-cli, and
-- in front of backends of this process to check half-close propagation,
-- errors and fd hygiene.
local go = require "go"
local net = require "net"
local resp = require "goluarun.resp"
local H = require "support.helpers"

local here = debug.getinfo(1, "S").source:gsub("^@", "")
local root = here:match("^(.*)/spec/[^/]*$") or "."
local q = H.shquote

H.warmup()

local require_tool, sh = H.require_tool, H.sh
local function start(script, args) return H.start_script(script, args) end

-- open fds of process pid
local function proc_nfds(pid)
  local f = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(f:read("a"))
  f:close()
  return n
end

local function proxy_fds_settle(p, before)
  local n
  local ok = H.wait_until(function()
    n = proc_nfds(p.pid)
    return n <= before
  end, 10, 0.02)
  return ok, n
end

-- reads everything until EOF: data, err
local function read_all(c)
  local parts = {}
  while true do
    local d, err = c:read()
    if not d then return table.concat(parts), err end
    parts[#parts + 1] = d
  end
end

describe("scripts/proxy.lua", function()
  local redis, raddr, proxy, paddr, pport

  setup(function()
    require_tool("redis-cli", "redis-tools")
    require_tool("redis-benchmark", "redis-tools")
    redis, raddr = start("redis_lite.lua", { "127.0.0.1:0" })
    proxy, paddr = start("proxy.lua", { "127.0.0.1:0", raddr })
    pport = paddr:match(":(%d+)$")
  end)

  teardown(function()
    if proxy then proxy:cleanup() end
    if redis then redis:cleanup() end
  end)

  after_each(function()
    assert.is_true(proxy:alive(), "proxy died:\n" .. proxy:stderr())
    assert.is_true(redis:alive(), "redis_lite died:\n" .. redis:stderr())
  end)

  local function cli(...)
    local args = {}
    for i = 1, select("#", ...) do args[i] = q((select(i, ...))) end
    return (sh("redis-cli -h 127.0.0.1 -p " .. pport .. " " .. table.concat(args, " ")))
  end

  it("prints exactly one 'listening on' line", function()
    local _, n = proxy:stdout():gsub("listening on", "")
    assert.are.equal(1, n)
  end)

  it("usage error without arguments", function()
    local r = H.run(root .. "/scripts/proxy.lua", {}, { file = true })
    assert.are.equal(2, r.status, H.describe_run(r))
    assert.matches("usage", r.stderr)
  end)

  it("redis-cli through the proxy", function()
    assert.are.equal("PONG\n", cli("PING"))
    assert.are.equal("OK\n", cli("SET", "px:k", "through the proxy"))
    assert.are.equal("through the proxy\n", cli("GET", "px:k"))
    assert.are.equal("1\n", cli("INCR", "px:n"))
    assert.are.equal("through the proxy\n\n", cli("MGET", "px:k", "px:none"))
  end)

  it("redis-benchmark -t set,get through the proxy, without errors", function()
    local n = H.scale(20000, 1000)
    local out, code = sh("redis-benchmark -h 127.0.0.1 -p " .. pport .. " -t set,get -n " .. n .. " -q")
    assert.are.equal(0, code, out)
    assert.matches("SET: [%d.]+ requests per second", out)
    assert.matches("GET: [%d.]+ requests per second", out)
    assert.is_nil(out:lower():match("error"), out)
    assert.is_nil(out:match("WARNING"), out)
    local out2, code2 = sh("redis-benchmark -h 127.0.0.1 -p " .. pport .. " -t set,get -P 16 -n " .. n .. " -q")
    assert.are.equal(0, code2, out2)
    assert.matches("GET: [%d.]+ requests per second", out2)
  end)

  it("1000 pipelined commands in one write come back in order", function()
    H.no_fd_leak(function()
      local c = assert(net.dial(paddr, 5))
      c:settimeout(20)
      local rd = resp.reader(c, { inline = false })
      local n = H.scale(1000, 200)
      local parts = {}
      for i = 1, n do parts[#parts + 1] = resp.command("SET", "px:p" .. i, i) end
      for i = 1, n do parts[#parts + 1] = resp.command("GET", "px:p" .. i) end
      assert(c:write(table.concat(parts)))
      for _ = 1, n do assert.are.equal("OK", rd:read()) end
      for i = 1, n do assert.are.equal(tostring(i), rd:read()) end
      c:close()
    end)
  end)

  it("half-close: a client that sends then closewrite()s gets the full reply", function()
    H.no_fd_leak(function()
      -- a big value set directly on the backend
      local big = H.payload(H.scale(1024 * 1024, 100 * 1024), 5)
      local d = assert(net.dial(raddr, 5))
      d:settimeout(20)
      local w = go(function() return d:write(resp.command("SET", "px:big", big)) end)
      assert.are.equal("+OK\r\n", d:read(5))
      assert.is_true((go.wait(w, 20)))
      d:close()
      -- through the proxy: commands, FIN, then read until EOF
      local c = assert(net.dial(paddr, 5))
      c:settimeout(20)
      assert(c:write("PING\r\n" .. resp.command("GET", "px:big") .. resp.command("ECHO", "last")))
      assert(c:closewrite())
      local all, err = read_all(c)
      assert.are.equal("eof", err)
      local expect = "+PONG\r\n" .. resp.encode(big) .. "$4\r\nlast\r\n"
      assert.are.equal(#expect, #all)
      assert.is_true(all == expect, "reply differs")
      c:close()
    end)
  end)

  describe("with a backend in this process", function()
    -- starts a proxy in front of net.serve(handler) here; returns proxy, its addr, listener
    local function proxy_for(handler)
      local ln = assert(net.serve("127.0.0.1:0", handler))
      local p, a = start("proxy.lua", { "127.0.0.1:0", ln:addr() })
      return p, a, ln
    end

    it("the backend sees EOF after the client's closewrite, and its late reply arrives", function()
      local got = go.chan(1)
      local p, a, ln = proxy_for(function(conn)
        conn:settimeout(20)
        local data, err = read_all(conn) -- waits for the FIN the proxy passes on
        got:send({ #data, err })
        -- reply only after EOF, in several writes
        local reply = H.payload(H.scale(2 * 1024 * 1024, 100 * 1024), 2)
        for i = 1, #reply, 65536 do assert(conn:write(reply:sub(i, i + 65535))) end
      end)
      local ok, err = pcall(function()
        H.no_fd_leak(function()
          local c = assert(net.dial(a, 5))
          c:settimeout(20)
          local sent = H.payload(H.scale(1024 * 1024, 50 * 1024), 1)
          local w = go(function() return c:write(sent) end)
          assert.is_true((go.wait(w, 20)))
          assert(c:closewrite())
          local r = got:recv()
          assert.are.same({ #sent, "eof" }, r)
          local all, rerr = read_all(c)
          assert.are.equal("eof", rerr)
          assert.is_true(all == H.payload(H.scale(2 * 1024 * 1024, 100 * 1024), 2), "reply differs")
          c:close()
        end)
      end)
      ln:close(); p:cleanup()
      if not ok then error(err, 0) end
    end)

    it("the backend half-closing first: the client gets EOF and can still send", function()
      local got = go.chan(1)
      local p, a, ln = proxy_for(function(conn)
        conn:settimeout(20)
        assert(conn:write("bye"))
        assert(conn:closewrite())
        got:send((read_all(conn)))
      end)
      local ok, err = pcall(function()
        H.no_fd_leak(function()
          local c = assert(net.dial(a, 5))
          c:settimeout(20)
          assert.are.same({ "bye", "eof" }, { read_all(c) })
          assert(c:write("still talking"))
          assert(c:closewrite())
          assert.are.equal("still talking", got:recv())
          c:close()
        end)
      end)
      ln:close(); p:cleanup()
      if not ok then error(err, 0) end
    end)

    it("clean ends and errors close both sides; no fd leak in the proxy", function()
      local p, a, ln = proxy_for(function(conn)
        conn:settimeout(20)
        local d = conn:read(5)
        if d == "reset" then
          H.testutil().linger0(conn:fd())
          conn:close() -- RST from the backend
          return
        end
        if not d or not conn:write(d) then return end
        while true do -- echo until the other side goes away
          local x = conn:read()
          if not x or not conn:write(x) then return end
        end
      end)
      local ok, err = pcall(function()
        -- the fresh proxy is idle: its fd count now is the baseline
        local before = proc_nfds(p.pid)
        assert.is_true(before > 3, "cannot count the proxy fds")
        -- clean sessions: both directions end with EOF
        for _ = 1, 10 do
          local c = assert(net.dial(a, 5))
          c:settimeout(20)
          assert(c:write("hello"))
          assert(c:closewrite())
          assert.are.same({ "hello", "eof" }, { read_all(c) })
          c:close()
        end
        -- clients that vanish mid-stream (the backend keeps echoing)
        for _ = 1, 10 do
          local c = assert(net.dial(a, 5))
          assert(c:write("hello"))
          c:close()
        end
        -- backends that reset the connection
        for _ = 1, 10 do
          local c = assert(net.dial(a, 5))
          c:settimeout(20)
          assert(c:write("reset"))
          local _, rerr = read_all(c)
          assert.is_truthy(rerr == "eof" or H.is_err(rerr, "connection reset"), rerr)
          c:close()
        end
        local settled, n = proxy_fds_settle(p, before)
        assert.is_true(settled, "proxy fds: " .. before .. " before, " .. tostring(n) .. " after")
      end)
      ln:close(); p:cleanup()
      if not ok then error(err, 0) end
    end)

    it("a backend that cannot be dialled: the client is closed at once", function()
      local l = assert(net.listen("127.0.0.1:0"))
      local dead = l:addr()
      l:close()
      local p, a = start("proxy.lua", { "127.0.0.1:0", dead })
      local ok, err = pcall(function()
        H.no_fd_leak(function()
          for _ = 1, 3 do
            local c = assert(net.dial(a, 5))
            c:settimeout(10)
            local d, rerr = c:read()
            assert.is_nil(d)
            assert.is_truthy(rerr == "eof" or H.is_err(rerr, "connection reset"), rerr)
            c:close()
          end
        end)
        assert.is_true(p:alive())
        assert.matches("connection refused", p:stderr())
      end)
      p:cleanup()
      if not ok then error(err, 0) end
    end)

    it("many clients at once, each with its own stream", function()
      local p, a, ln = proxy_for(function(conn)
        conn:settimeout(20)
        while true do
          local x = conn:read()
          if not x or not conn:write(x) then return end
        end
      end)
      local ok, err = pcall(function()
        H.no_fd_leak(function()
          local nclients, size = H.scale(50, 10), H.scale(64 * 1024, 4 * 1024)
          local gs = {}
          for ci = 1, nclients do
            gs[ci] = go(function()
              local c = assert(net.dial(a, 5))
              c:settimeout(30)
              local data = H.payload(size, ci)
              local w = go(function() return c:write(data) end)
              local back = c:read(size)
              go.wait(w, 30)
              c:close()
              return back == data
            end)
          end
          for ci = 1, nclients do
            assert.are.same({ true, true }, { go.wait(gs[ci], 60) })
          end
        end)
      end)
      ln:close(); p:cleanup()
      if not ok then error(err, 0) end
    end)
  end)
end)
