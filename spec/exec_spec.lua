-- exec_spec: go.exec (bindings/lexec.c): child processes with pipes as
-- conns, p:wait parking on a pidfd (no thread per child), p:kill, env, cwd,
-- stdio modes, listeners passed as LISTEN_FDS, and misuse.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

local function threads()
  local s = H.read_file("/proc/self/status")
  return tonumber(s:match("Threads:%s*(%d+)"))
end

local function mypid()
  return tonumber(H.read_file("/proc/self/stat"):match("^(%d+)"))
end

-- zombie children of this process (state Z with our pid as parent)
local function zombies()
  local me, n = mypid(), 0
  local p = io.popen("cat /proc/[0-9]*/stat 2>/dev/null")
  for line in p:lines() do
    local state, ppid = line:match("%) (%a) (%d+)")
    if state == "Z" and tonumber(ppid) == me then n = n + 1 end
  end
  p:close()
  return n
end

describe("go.exec", function()
  it("talks to a child through stdin and stdout pipes", function()
    H.no_fd_leak(function()
      local p = assert(go.exec({ "cat" }))
      assert.is_true(p.pid > 0)
      local data = H.payload(H.scale(200000, 3000), 7)
      local reader = go(function() return p.stdout:read("a") end)
      assert(p.stdin:write(data))
      p.stdin:close()
      assert.are.equal(data, select(2, go.wait(reader, 20)))
      assert.are.equal(0, p:wait(10))
      p.stdout:close()
      p.stderr:close()
    end)
  end)

  it("returns the exit code and the stderr pipe", function()
    local p = assert(go.exec({ "sh", "-c", "echo oops >&2; exit 3" }, { stdin = "null" }))
    assert.are.equal("oops\n", p.stderr:read("a"))
    assert.are.equal(3, p:wait(10))
    assert.are.equal(3, p:wait(), "a second wait returns the same status")
  end)

  it("reports a child killed by a signal, by p:kill or by itself", function()
    local p = assert(go.exec({ "sleep", "30" }, { stdout = "null", stderr = "null" }))
    assert.is_true(p:kill("SIGKILL"))
    local code, err = p:wait(10)
    assert.is_nil(code)
    assert.are.equal("signal: 9", err)
    local _, e2 = p:kill()
    assert.are.equal("process already finished", e2)
    local q = assert(go.exec({ "sh", "-c", "kill -TERM $$" }))
    local c2, err2 = q:wait(10)
    assert.is_nil(c2)
    assert.are.equal("signal: 15", err2)
  end)

  it("p:wait(timeout) times out without reaping, and waits again", function()
    local p = assert(go.exec({ "sleep", "30" }, { stdout = "null" }))
    local t0 = go.now()
    local code, err = p:wait(0.1)
    assert.is_nil(code)
    assert.are.equal("timeout", err)
    assert.is_true(go.now() - t0 < 2)
    assert.is_true(p:kill(15))
    assert.are.equal("signal: 15", select(2, p:wait(10)))
  end)

  it("runs 100 short children in parallel with no thread per child and no zombie left", function()
    local before = threads()
    local most = before
    local hs = {}
    for i = 1, 100 do
      hs[i] = go(function()
        local p = assert(go.exec({ "sh", "-c", "sleep 0.3; exit " .. (i % 7) },
          { stdin = "null", stdout = "null", stderr = "null" }))
        return p:wait(30)
      end)
    end
    local sampler = go(function()
      for _ = 1, 20 do
        most = math.max(most, threads())
        go.sleep(0.02)
      end
    end)
    for i = 1, 100 do assert.are.equal(i % 7, select(2, go.wait(hs[i], 60))) end
    go.wait(sampler, 10)
    assert.is_true(most - before < 10,
      string.format("threads went from %d to %d for 100 children", before, most))
    assert.are.equal(0, zombies())
  end)

  it("returns nil, err for a program that does not exist, leaking nothing", function()
    H.no_fd_leak(function()
      local p, err = go.exec({ "no-such-program-goluarun" })
      assert.is_nil(p)
      assert.are.equal("executable file not found in $PATH: no-such-program-goluarun", err)
      p, err = go.exec({ "/nonexistent/dir/prog" })
      assert.is_nil(p)
      assert.are.equal("No such file or directory: /nonexistent/dir/prog", err)
      p, err = go.exec({ "true" }, { cwd = "/nonexistent/dir" })
      assert.is_nil(p)
      assert.are.equal("No such file or directory: /nonexistent/dir", err)
    end)
    assert.are.equal(0, zombies())
  end)

  it("gives the child opts.env as its whole environment and opts.cwd", function()
    local dir = H.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.shquote(dir)))
    local p = assert(go.exec({ "/bin/sh", "-c", 'pwd; echo "$FOO"; echo "${HOME-unset}"' },
      { env = { FOO = "bar", N = 1 }, cwd = dir }))
    local out = p.stdout:read("a")
    assert.are.equal(0, p:wait(10))
    os.remove(dir)
    assert.are.equal(dir .. "\nbar\nunset\n", out)
  end)

  it("connects stdio to null, to our own, or to a conn", function()
    local client, server, ln = H.pair()
    local p = assert(go.exec({ "sh", "-c", "echo via-conn" }, { stdout = server, stderr = "inherit" }))
    assert.are.equal(0, p:wait(10))
    server:close()
    assert.are.equal("via-conn\n", client:read("l", 10) .. "\n")
    client:close(); ln:close()
    local q = assert(go.exec({ "cat" }, { stdin = "null" }))
    assert.are.equal(nil, (q.stdout:read("a")) ~= "" and "non-empty" or nil)
    assert.are.equal(0, q:wait(10))
    assert.is_nil(q.stdin)
  end)

  it("passes listeners as LISTEN_FDS (fds 3..) that a goluarun child adopts", function()
    local ln = assert(net.listen("127.0.0.1:0"))
    local addr = ln:addr()
    local p = assert(go.exec({ "sh", "-c",
      'echo "$LISTEN_FDS $LISTEN_FDNAMES"; [ "$LISTEN_PID" = "$$" ] && echo pid-ok' },
      { files = { ln } }))
    assert.are.equal("1 unknown\npid-ok\n", p.stdout:read("a"))
    assert.are.equal(0, p:wait(10))
    local child = assert(go.exec({ H.bin(), "-e", [[
      local net = require "net"
      local l = assert(net.listen("]] .. addr .. [["))
      print(l:fd(), tostring(os.getenv("LISTEN_FDS")))
      io.stdout:flush()
      local c = assert(l:accept(10))
      c:write("adopted\n")
      c:close()
    ]] }, { files = { ln }, stderr = "inherit" }))
    assert.are.equal("3\tnil", child.stdout:read("l", 10))
    ln:close() -- the child's copy still listens
    local c = assert(net.dial(addr, 5))
    assert.are.equal("adopted", c:read("l", 10))
    c:close()
    assert.are.equal(0, child:wait(10))
  end)

  it("binds a new socket when no inherited listener matches the address", function()
    local ln = assert(net.listen("127.0.0.1:0"))
    local other = assert(net.listen("127.0.0.1:0"))
    local other_addr = other:addr()
    other:close()
    local child = assert(go.exec({ H.bin(), "-e", [[
      local net = require "net"
      local a = assert(net.listen("]] .. other_addr .. [["))
      local b = assert(net.listen("127.0.0.1:0"))
      print(a:fd() ~= 3 and b:fd() ~= 3, a:addr())
    ]] }, { files = { ln }, stderr = "inherit" }))
    assert.are.equal("true\t" .. other_addr, child.stdout:read("l", 10))
    assert.are.equal(0, child:wait(10))
    ln:close()
  end)

  it("raises for bad arguments", function()
    local cases = {
      { {}, "argv must name a program" },
      { { "" }, "must not be empty" },
      { { "true", {} }, "argv[2] must be a string" },
      { { "true" }, "unknown option 'stdni'", { stdni = "null" } },
      { { "true" }, "\"pipe\", \"inherit\", \"null\" or a conn expected", { stdout = "file" } },
      { { "true" }, "files[1] must be an open listener", { files = { 3 } } },
      { { "true" }, "names without '='", { env = { [1] = "x" } } },
      { { "true" }, "'cwd'", { cwd = 5 } },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(go.exec, c[1], c[3])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), tostring(err))
    end
    assert.has_error(function() go.exec("true") end)
    local p = assert(go.exec({ "true" }))
    assert.has_error(function() p:kill("SIGNOPE") end, "bad argument #1 to 'kill' (unknown signal 'SIGNOPE')")
    assert.has_error(function() p:wait("soon") end)
    assert.are.equal(0, p:wait(10))
    assert.are.equal(0, zombies())
  end)
end)
