-- json_spec: lua/goluarun/json.lua, the encoder and the LPeg decoder.
local json = require "goluarun.json"

describe("json.encode", function()
  it("encodes scalars", function()
    assert.are.equal("null", json.encode(nil))
    assert.are.equal("null", json.encode(json.null))
    assert.are.equal("true", json.encode(true))
    assert.are.equal("false", json.encode(false))
    assert.are.equal("42", json.encode(42))
    assert.are.equal("-7", json.encode(-7))
    assert.are.equal("1.5", json.encode(1.5))
    assert.are.equal("0.1", json.encode(0.1))
    assert.are.equal("0.30000000000000004", json.encode(0.1 + 0.2))
    assert.are.equal("9223372036854775807", json.encode(math.maxinteger))
    assert.are.equal('"hi"', json.encode("hi"))
  end)

  it("escapes strings", function()
    assert.are.equal([["a\"b\\c\n\r\t\b\f\u0001\u001f\u007f/"]],
      json.encode('a"b\\c\n\r\t\b\f\1\31\127/'))
    assert.are.equal('"héllo 😀"', json.encode("héllo 😀"))
  end)

  it("encodes arrays and objects", function()
    assert.are.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
    assert.are.equal('{"a":1,"b":[true,false],"c":{"d":"e"}}',
      json.encode({ a = 1, b = { true, false }, c = { d = "e" } }, { sort = true }))
    assert.are.equal("{}", json.encode({}))
    assert.are.equal("[]", json.encode(json.array()))
    assert.are.equal("{}", json.encode(json.object()))
    -- sparse / non-sequence integer keys become an object with string keys
    assert.are.equal('{"1":"a","3":"c"}', json.encode({ [1] = "a", [3] = "c" }, { sort = true }))
    assert.are.equal('[null,1]', json.encode({ json.null, 1 }))
  end)

  it("pretty prints with opts.indent", function()
    assert.are.equal('{\n  "a": [\n    1,\n    2\n  ]\n}',
      json.encode({ a = { 1, 2 } }, { indent = "  " }))
  end)

  it("raises on values JSON cannot hold", function()
    assert.has_error(function() json.encode(print) end)
    assert.has_error(function() json.encode({ f = print }) end)
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode(math.huge) end)
    assert.has_error(function() json.encode({ [true] = 1 }) end)
    assert.has_error(function() json.encode("\255\254") end)
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end, "json.encode: circular reference")
    assert.has_error(function() json.encode({}, "x") end)
  end)

  it("encodes a shared (non-cyclic) subtable twice", function()
    local s = { 1 }
    assert.are.equal('[[1],[1]]', json.encode({ s, s }))
  end)
end)

describe("json.decode", function()
  it("decodes scalars", function()
    assert.are.equal(json.null, json.decode("null"))
    assert.are.equal(true, json.decode("true"))
    assert.are.equal(false, json.decode(" false "))
    assert.are.equal(12, json.decode("12"))
    assert.are.equal("integer", math.type(json.decode("12")))
    assert.are.equal("integer", math.type(json.decode("-0")))
    assert.are.equal("float", math.type(json.decode("1.0")))
    assert.are.equal(1000.0, json.decode("1e3"))
    assert.are.equal(-2.5e-3, json.decode("-2.5E-3"))
    assert.are.equal("float", math.type(json.decode("123456789012345678901234")))
    assert.are.equal("", json.decode('""'))
  end)

  it("decodes escapes and UTF-8", function()
    assert.are.equal('a"b\\c/\b\f\n\r\t', json.decode([["a\"b\\c\/\b\f\n\r\t"]]))
    assert.are.equal("é", json.decode([["\u00e9"]]))
    assert.are.equal("😀", json.decode([["\ud83d\ude00"]]))
    assert.are.equal("héllo", json.decode('"héllo"'))
  end)

  it("decodes containers", function()
    local v = assert(json.decode(' { "a" : [1, 2, {"b": null}], "c": {}, "d": [] } '))
    assert.are.equal(1, v.a[1])
    assert.are.equal(json.null, v.a[3].b)
    assert.are.same({}, v.c)
    assert.is_true(json.isarray(v.d))
    assert.is_true(json.isarray(v.a))
    assert.are.equal('{"a":[1,2,{"b":null}],"c":{},"d":[]}', json.encode(v, { sort = true }))
  end)

  it("round-trips", function()
    local v = { n = 1, f = 2.25, s = "x\0y\n", t = { 1, 2, { z = false } }, e = json.array() }
    assert.are.same(v, json.decode(json.encode(v)))
  end)

  it("returns nil, err on malformed text", function()
    for _, s in ipairs({ "", " ", "[1,2", "[1,]", "{\"a\"}", "{a:1}", "01", "1.",
      ".5", "+1", "tru", "nul", "'x'", '"abc', '"\\x"', '"\\u12"', '"a\nb"',
      '"\\ud800"', '"\\udc00x"', "[1] 2", "{}{}", "NaN", "Infinity" }) do
      local v, err = json.decode(s)
      assert.is_nil(v, "accepted " .. s)
      assert.matches("^json: ", err)
    end
  end)

  it("rejects too deep nesting instead of overflowing", function()
    local v, err = json.decode(("["):rep(100000) .. ("]"):rep(100000))
    assert.is_nil(v)
    assert.matches("too deep", err)
    assert.truthy(json.decode(("["):rep(90) .. ("]"):rep(90)))
    assert.is_nil(json.decode(("["):rep(91) .. ("]"):rep(91)))
    assert.truthy(json.decode(('{"a":'):rep(90) .. "1" .. ("}"):rep(90)))
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() json.decode(42) end)
    assert.has_error(function() json.decode(nil) end)
  end)

  it("encodes go.stats() into valid JSON with its keys", function()
    local go = require "go"
    local s = json.encode(go.stats())
    local v = assert(json.decode(s))
    for _, k in ipairs({ "goroutines", "runnable", "threads", "procs", "netpoll_waiters",
      "spawned", "coroutines_created", "steals", "preemptions", "handoffs" }) do
      assert.is_not_nil(v[k], "missing " .. k)
    end
    assert.is_true(json.isarray(v.procs))
  end)
end)
