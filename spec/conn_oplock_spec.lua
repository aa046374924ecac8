-- conn_oplock_spec: a conn operation whose step raises (here: the push of
-- the bytes read fails under GOLUA_MEMLIMIT) must not keep its direction's
-- lock. Each case runs as a subprocess (-p 1, so the goroutines run in the
-- order they were started): a reader asks for more bytes than the limit
-- allows, so its read fails when it pushes them, with the bytes still
-- buffered. Then another goroutine's read on the same conn must complete
-- (bounded wait), and conn:close() must close the fd at once (not at the
-- conn's collection). GOLUA_MOCKEAGAIN is left out: its writes of a byte
-- at a time would take seconds per MiB, and the path under test is the
-- same.
local H = require "support.helpers"

local PRELUDE = [[
local go = require "go"
local net = require "net"
local BIG = 3 * 1024 * 1024 -- above the limit: its push fails
-- fd_open: is fd n open? (/proc/self/fd/n of a socket cannot be opened,
-- with another error than a missing entry's)
local function fd_open(n)
  local f, err = io.open("/proc/self/fd/" .. n)
  if f then f:close() return true end
  return not err:find("No such file", 1, true)
end
local ln = assert(net.listen("127.0.0.1:0"))
local a = assert(net.dial(ln:addr(), 2))
local b = assert(ln:accept(2))
go(function()
  local chunk = ("x"):rep(65536)
  for _ = 1, BIG // 65536 + 1 do assert(a:write(chunk)) end
end)
-- after: another goroutine reads 4 bytes, queued behind g1's read (g1,
-- just started, runs first: it holds the lock when g2 starts); then close
-- must close the fd
local function after(g1)
  go.yield()
  local g2 = go(function() return b:read(4) end)
  print("g1", go.wait(g1, 5))
  print("g2", go.wait(g2, 2))
  local fd = b:fd()
  b:close()
  print("fd open after close", fd_open(fd))
end
]]

local function run(body)
  local r = H.run(PRELUDE .. body, nil, {
    flags = { "-p", "1" }, timeout = 30, env = { GOLUA_MEMLIMIT = "2MiB" },
    unsetenv = { "GOLUA_MOCKEAGAIN" } })
  assert.are.equal(0, r.status, H.describe_run(r))
  return r
end

local function expect(r, ...)
  for _, s in ipairs({ ... }) do
    assert.truthy(r.stdout:find(s, 1, true), "want " .. s .. "\n" .. H.describe_run(r))
  end
end

describe("a conn operation whose step raises", function()
  it("kills its goroutine: the lock goes to the next reader; close closes the fd", function()
    local r = run([[after(go(function() return b:read(BIG) end))]])
    expect(r, "g1\tfalse\tnot enough memory", "g2\ttrue\txxxx", "fd open after close\tfalse")
  end)

  it("is caught, and the goroutine ends without touching the conn again", function()
    local r = run([[after(go(function() return pcall(b.read, b, BIG) end))]])
    expect(r, "g1\ttrue\tfalse\tnot enough memory", "g2\ttrue\txxxx",
      "fd open after close\tfalse")
  end)

  it("is caught, and the same goroutine reads again: its lock is balanced", function()
    local r = run([[after(go(function()
      local ok, err = pcall(b.read, b, BIG)
      return ok, err, b:read(2)
    end))]])
    expect(r, "g1\ttrue\tfalse\tnot enough memory\txx", "g2\ttrue\txxxx",
      "fd open after close\tfalse")
  end)

  it("is caught, then the conn is collected while its goroutine lives on", function()
    local r = run([[
      local a2 = assert(net.dial(ln:addr(), 2))
      local g = go(function()
        local c = assert(ln:accept(2))
        go(function()
          local chunk = ("y"):rep(65536)
          for _ = 1, BIG // 65536 + 1 do if not a2:write(chunk) then return end end
        end)
        local ok, err = pcall(c.read, c, BIG)
        local fd = c:fd()
        c = nil
        collectgarbage()
        collectgarbage()
        return ok, err, fd_open(fd)
      end)
      print("gc", go.wait(g, 5))
      os.exit(0, true) -- (the PRELUDE's writer waits on: b is not read)
    ]])
    expect(r, "gc\ttrue\tfalse\tnot enough memory\tfalse")
  end)
end)
