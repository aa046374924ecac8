-- lookup_spec: net.lookup and host names in dial/listen resolve on the
-- worker pool (getaddrinfo) while the goroutine is parked, never blocking
-- its P. "LOCALHOST" skips the literal fast path ("localhost") but resolves
-- through /etc/hosts on any machine.
local go = require "go"
local net = require "net"
local H = require "support.helpers"

local function has(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

describe("net.lookup", function()
  it("resolves a name from /etc/hosts", function()
    local addrs = assert(net.lookup("LOCALHOST"))
    assert.is_true(has(addrs, "127.0.0.1"), table.concat(addrs, ","))
  end)

  it("returns IP literals as they are, without a worker", function()
    assert.are.same({ "127.0.0.1" }, net.lookup("127.0.0.1"))
    assert.are.same({ "::1" }, net.lookup("::1"))
  end)

  it("an unknown name gives nil, 'no such host'", function()
    local g = go(function() return net.lookup("no-such-host.invalid") end)
    local ok, r, err = go.wait(g, 30)
    assert.is_true(ok)
    assert.is_nil(r); H.assert_err(err, "no such host")
  end)

  it("other goroutines run while lookups are in flight", function()
    local done = 0
    local gs = {}
    for i = 1, 8 do gs[i] = go(function() return net.lookup("LOCALHOST") end) end
    local ticker = go(function() for _ = 1, 5 do go.sleep(0.001); done = done + 1 end end)
    for i = 1, 8 do
      local ok, r = go.wait(gs[i], 30)
      assert.is_true(ok); assert.is_true(has(r, "127.0.0.1"))
    end
    assert.is_true((go.wait(ticker, 5)))
    assert.are.equal(5, done)
  end)

  it("misuse raises", function()
    assert.has_error(function() net.lookup() end)
    assert.has_error(function() net.lookup(("x"):rep(300)) end)
  end)
end)

describe("host names in dial and listen", function()
  it("listen and dial by name", function()
    H.no_fd_leak(function()
      local ln = assert(net.listen("LOCALHOST:0"))
      local port = ln:addr():match(":(%d+)$")
      assert.matches("^127%.0%.0%.1:", ln:addr())
      local g = go(function() local s = ln:accept(); local l = s:read("l"); s:close(); return l end)
      local c = assert(net.dial("LOCALHOST:" .. port, 5))
      assert(c:write("by name\n"))
      assert.are.same({ true, "by name" }, { go.wait(g, 5) })
      c:close(); ln:close()
    end)
  end)

  it("a name that does not resolve fails dial and listen cleanly", function()
    H.no_fd_leak(function()
      local c, err = net.dial("no-such-host.invalid:80", 5)
      assert.is_nil(c); H.assert_err(err, "no such host")
      local l, lerr = net.listen("no-such-host.invalid:0")
      assert.is_nil(l); H.assert_err(lerr, "no such host")
    end)
  end)
end)
