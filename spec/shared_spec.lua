-- shared_spec: go.shared(name), the shared dictionaries (bindings/lshared.c,
-- runtime/shdict.c). Cross-thread behaviour is covered by spec/c/test_shdict.c;
-- here: the Lua surface, inside one VM (go.spawn does not exist yet).
local go = require "go"
local H = require "support.helpers"

local n = 0
-- a fresh dict for each test (dicts live as long as the process)
local function fresh()
  n = n + 1
  return go.shared("shared_spec." .. n)
end

describe("go.shared", function()
  it("the same name gives the same dict (and the same handle)", function()
    local a, b = go.shared("same"), go.shared("same")
    assert.are.equal(a, b)
    assert.is_true(rawequal(a, b))
    a:set("k", "v")
    assert.are.equal("v", b:get("k"))
    local g = go(function() return go.shared("same"):get("k") end)
    assert.are.same({ true, "v" }, { go.wait(g, 5) })
    assert.are_not.equal(go.shared("same"), go.shared("other"))
    assert.is_nil(go.shared("other"):get("k"))
  end)

  it("a dict outlives its handles", function()
    go.shared("outlive"):set("k", 42)
    collectgarbage(); collectgarbage()
    assert.are.equal(42, go.shared("outlive"):get("k"))
  end)

  it("names are strings (numbers converted, NULs kept)", function()
    assert.are.equal(go.shared(12), go.shared("12"))
    assert.are_not.equal(go.shared("a\0b"), go.shared("a\0c"))
    assert.has_error(function() go.shared() end)
    assert.has_error(function() go.shared({}) end)
    assert.has_error(function() go.shared(true) end)
  end)

  it("tostring names the dict", function()
    assert.are.equal("shared dict: named", tostring(go.shared("named")))
  end)

  describe("get/set", function()
    it("round-trips every value type, integer vs float kept", function()
      local d = fresh()
      local cases = {
        { "int", 42, "integer" }, { "neg", -7, "integer" },
        { "maxint", math.maxinteger, "integer" }, { "minint", math.mininteger, "integer" },
        { "float", 42.0, "float" }, { "pi", math.pi, "float" },
        { "huge", math.huge, "float" }, { "ninf", -math.huge, "float" },
        { "zero", 0, "integer" }, { "fzero", 0.0, "float" },
      }
      for _, c in ipairs(cases) do
        assert.is_true(d:set(c[1], c[2]))
      end
      for _, c in ipairs(cases) do
        local v = d:get(c[1])
        assert.are.equal(c[2], v, c[1])
        assert.are.equal(c[3], math.type(v), c[1])
      end
      d:set("nan", 0 / 0)
      local nan = d:get("nan")
      assert.is_true(nan ~= nan)
      d:set("t", true); d:set("f", false)
      assert.is_true(d:get("t"))
      assert.is_false(d:get("f"))
      d:set("s", "hello"); d:set("empty", "")
      assert.are.equal("hello", d:get("s"))
      assert.are.equal("", d:get("empty"))
    end)

    it("copies binary and long strings", function()
      local d = fresh()
      local bin = "a\0b\255\0"
      d:set("bin", bin)
      assert.are.equal(bin, d:get("bin"))
      for _, size in ipairs({ 255, 256, 257, 4096, 1024 * 1024 }) do
        local s = H.payload(size, size)
        d:set("long", s)
        assert.are.equal(s, d:get("long"), "size " .. size)
      end
    end)

    it("get of a missing key is nil", function()
      assert.is_nil(fresh():get("nope"))
    end)

    it("set replaces, also with another type", function()
      local d = fresh()
      d:set("k", "str")
      d:set("k", 1)
      assert.are.equal(1, d:get("k"))
      d:set("k", 1.5)
      assert.are.equal(1.5, d:get("k"))
      d:set("k", false)
      assert.is_false(d:get("k"))
      -- strings over strings: as long (copied in place), shorter, longer, empty
      for _, v in ipairs({ "abc", "xyz", "q", "", "", "a\0b", ("L"):rep(300), ("M"):rep(300), 7 }) do
        d:set("s", v)
        assert.are.equal(v, d:get("s"))
      end
    end)

    it("set of nil deletes", function()
      local d = fresh()
      d:set("k", 1)
      assert.is_true(d:set("k", nil))
      assert.is_nil(d:get("k"))
      assert.is_true(d:set("never", nil))
      assert.are.same({}, d:keys())
    end)

    it("keys are strings; numbers are converted as Lua does", function()
      local d = fresh()
      d:set(1, "one")
      assert.are.equal("one", d:get("1"))
      d:set("2", "two")
      assert.are.equal("two", d:get(2))
      d:set(1.5, "x")
      assert.are.equal("x", d:get("1.5"))
      d:set("a\0b", 1); d:set("a\0c", 2); d:set("", 3)
      assert.are.equal(1, d:get("a\0b"))
      assert.are.equal(2, d:get("a\0c"))
      assert.are.equal(3, d:get(""))
      assert.is_nil(d:get("a"))
    end)
  end)

  describe("add", function()
    it("adds a missing key, else nil, 'exists'", function()
      local d = fresh()
      assert.is_true(d:add("k", 1))
      local ok, err = d:add("k", 2)
      assert.is_nil(ok)
      assert.are.equal("exists", err)
      assert.are.equal(1, d:get("k"))
      d:delete("k")
      assert.is_true(d:add("k", 2))
      assert.are.equal(2, d:get("k"))
    end)

    it("a key set to false exists", function()
      local d = fresh()
      d:set("k", false)
      assert.are.same({ nil, "exists" }, { d:add("k", true) })
    end)
  end)

  describe("incr", function()
    it("adds integers and keeps them integers", function()
      local d = fresh()
      d:set("c", 10)
      assert.are.equal(11, d:incr("c", 1))
      assert.are.equal(6, d:incr("c", -5))
      local v = d:get("c")
      assert.are.equal(6, v)
      assert.are.equal("integer", math.type(v))
    end)

    it("gives a float when either side is a float", function()
      local d = fresh()
      d:set("c", 1)
      local v = d:incr("c", 0.5)
      assert.are.equal(1.5, v)
      assert.are.equal("float", math.type(v))
      d:set("f", 2.0)
      v = d:incr("f", 1)
      assert.are.equal(3.0, v)
      assert.are.equal("float", math.type(v))
      assert.are.equal("float", math.type(d:get("f")))
    end)

    it("wraps integers like Lua", function()
      local d = fresh()
      d:set("c", math.maxinteger)
      assert.are.equal(math.mininteger, d:incr("c", 1))
    end)

    it("a missing key gives nil, 'not found' unless init is given", function()
      local d = fresh()
      assert.are.same({ nil, "not found" }, { d:incr("c", 1) })
      assert.is_nil(d:get("c"))
      assert.are.equal(11, d:incr("c", 1, 10))
      assert.are.equal(12, d:incr("c", 1, 10))
      local v = d:incr("f", 1, 0.5)
      assert.are.equal(1.5, v)
      assert.are.equal("float", math.type(v))
    end)

    it("raises when the stored value is not a number", function()
      local d = fresh()
      d:set("s", "12")
      d:set("b", true)
      assert.has_error(function() d:incr("s", 1) end)
      assert.has_error(function() d:incr("b", 1, 0) end)
      local ok, err = pcall(d.incr, d, "s", 1)
      assert.is_false(ok)
      assert.matches("not a number", err)
      assert.are.equal("12", d:get("s"))
    end)

    it("n and init must be numbers", function()
      local d = fresh()
      d:set("c", 1)
      assert.has_error(function() d:incr("c") end)
      assert.has_error(function() d:incr("c", "1") end)
      assert.has_error(function() d:incr("c", {}) end)
      assert.has_error(function() d:incr("x", 1, "0") end)
      assert.is_nil(d:get("x"))
      assert.are.equal(1, d:get("c"))
    end)
  end)

  describe("delete and keys", function()
    it("delete removes a key (a missing key is fine)", function()
      local d = fresh()
      d:set("k", 1)
      assert.is_true(d:delete("k"))
      assert.is_nil(d:get("k"))
      assert.is_true(d:delete("k"))
    end)

    it("keys lists every live key, or at most max", function()
      local d = fresh()
      assert.are.same({}, d:keys())
      local want = {}
      for i = 1, 100 do
        d:set("k" .. i, i)
        want[#want + 1] = "k" .. i
      end
      d:set("gone", 1); d:delete("gone")
      local ks = d:keys()
      table.sort(ks); table.sort(want)
      assert.are.same(want, ks)
      assert.are.equal(10, #d:keys(10))
      assert.are.equal(100, #d:keys(0))
      assert.are.equal(100, #d:keys(1000))
      assert.has_error(function() d:keys(-1) end)
      assert.has_error(function() d:keys("x") end)
    end)
  end)

  describe("ttl", function()
    it("an entry disappears after its ttl", function()
      local d = fresh()
      assert.is_true(d:set("short", "v", 0.03))
      d:set("plain", "p")
      d:set("zero", "z", 0) -- 0: no expiry
      assert.are.equal("v", d:get("short"))
      assert.is_true(H.wait_until(function() return d:get("short") == nil end, 5))
      assert.are.equal("p", d:get("plain"))
      assert.are.equal("z", d:get("zero"))
      local ks = d:keys()
      table.sort(ks)
      assert.are.same({ "plain", "zero" }, ks)
    end)

    it("set without ttl clears a ttl; incr keeps it", function()
      local d = fresh()
      d:set("cleared", 1, 0.03)
      d:set("cleared", 2)
      d:set("ctr", 1, 0.03)
      assert.are.equal(2, d:incr("ctr", 1))
      d:set("sentinel", true, 0.03) -- set last: expires last
      assert.is_true(H.wait_until(function() return d:get("sentinel") == nil end, 5))
      assert.is_nil(d:get("ctr"))
      assert.are.equal(2, d:get("cleared"))
    end)

    it("add succeeds and incr reports 'not found' once an entry expired", function()
      local d = fresh()
      assert.is_true(d:add("k", 1, 0.02))
      d:set("c", 5, 0.02)
      assert.are.same({ nil, "exists" }, { d:add("k", 2) })
      assert.is_true(H.wait_until(function() return d:get("k") == nil end, 5))
      assert.is_true(H.wait_until(function() return d:get("c") == nil end, 5))
      assert.are.same({ nil, "not found" }, { d:incr("c", 1) })
      assert.is_true(d:add("k", 2))
      assert.are.equal(2, d:get("k"))
    end)

    it("ttl(k): the seconds left, 0 without one, nil, 'not found' when absent or expired", function()
      local d = fresh()
      d:set("t", "v", 100)
      d:set("forever", 1)
      d:set("short", 1, 0.03)
      local left = d:ttl("t")
      assert.is_true(left > 99 and left <= 100, tostring(left))
      assert.are.equal(0, d:ttl("forever"))
      assert.are.same({ nil, "not found" }, { d:ttl("none") })
      assert.is_true(H.wait_until(function() return d:ttl("short") == nil end, 5))
      assert.are.same({ nil, "not found" }, { d:ttl("short") })
      d:set("n", 1, 100)
      assert.are.equal(2, d:incr("n", 1)) -- incr keeps the ttl
      assert.is_true(d:ttl("n") > 99)
      d:set("t", "plain")
      assert.are.equal(0, d:ttl("t"))
      assert.has_error(function() d:ttl({}) end)
    end)

    it("huge ttls never expire; NaN, negative and non-number ttls raise", function()
      local d = fresh()
      assert.is_true(d:set("h", 1, math.huge))
      assert.is_true(d:set("b", 1, 1e300))
      assert.are.equal(1, d:get("h"))
      assert.are.equal(1, d:get("b"))
      assert.has_error(function() d:set("k", 1, 0 / 0) end)
      assert.has_error(function() d:set("k", 1, -1) end)
      assert.has_error(function() d:add("k", 1, -0.5) end)
      assert.has_error(function() d:set("k", 1, {}) end)
      assert.is_nil(d:get("k"))
    end)
  end)

  describe("misuse", function()
    it("keys must be strings or numbers", function()
      local d = fresh()
      for _, bad in ipairs({ {}, true, print, go.chan() }) do
        assert.has_error(function() d:get(bad) end)
        assert.has_error(function() d:set(bad, 1) end)
        assert.has_error(function() d:add(bad, 1) end)
        assert.has_error(function() d:incr(bad, 1) end)
        assert.has_error(function() d:delete(bad) end)
        assert.has_error(function() d:ttl(bad) end)
      end
      assert.has_error(function() d:get() end)
      assert.has_error(function() d:get(nil) end)
    end)

    it("values must be nil, booleans, numbers or strings", function()
      local d = fresh()
      for _, bad in ipairs({ {}, print, go.chan(), coroutine.create(print), d }) do
        local ok, err = pcall(d.set, d, "k", bad)
        assert.is_false(ok)
        assert.matches("shared dict values must be nil, booleans, numbers or strings", err,
          1, true)
        assert.has_error(function() d:add("k", bad) end)
      end
      assert.is_nil(d:get("k"))
    end)

    it("methods need a dict as self", function()
      local d = fresh()
      assert.has_error(function() d.get({}, "k") end)
      assert.has_error(function() d.set(nil, "k", 1) end)
      assert.has_error(function() d.keys(go.chan()) end)
    end)
  end)

  describe("concurrency", function()
    it("many goroutines incrementing give the exact total", function()
      local d = fresh()
      local ng, each = 50, 200
      local gs = {}
      for i = 1, ng do
        gs[i] = go(function()
          for j = 1, each do
            d:incr("hits", 1, 0)
            if j % 7 == 0 then go.yield() end
          end
        end)
      end
      for i = 1, ng do
        assert.are.same({ true }, { go.wait(gs[i], 10) })
      end
      assert.are.equal(ng * each, d:get("hits"))
      assert.are.equal("integer", math.type(d:get("hits")))
    end)

    it("add elects exactly one winner among goroutines", function()
      local d = fresh()
      local gs = {}
      for i = 1, 20 do
        gs[i] = go(function()
          go.yield()
          return d:add("leader", i) == true
        end)
      end
      local winners = 0
      for i = 1, 20 do
        local ok, won = go.wait(gs[i], 10)
        assert.is_true(ok)
        if won then winners = winners + 1 end
      end
      assert.are.equal(1, winners)
    end)
  end)
end)
