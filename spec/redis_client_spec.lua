-- redis_client_spec: goluarun.redis against Debian's real redis-server
-- (started here on free loopback ports with --save '' --appendonly no and a
-- temp dir, stopped by PID), against scripts/redis_lite.lua, and against
-- fake servers in this VM for what a real one never does (no answer, a
-- malformed reply). Debian packages: redis-server, openssl.
local go = require "go"
local net = require "net"
local redis = require "goluarun.redis"
local resp = require "goluarun.resp"
local H = require "support.helpers"
local P = require "support.tlspeers"

H.warmup()
H.require_tool("redis-server", "redis-server")

local null = redis.null
local T = H.scale(5, 20) -- seconds any single call may take

local tmpdirs = {}

-- redis-server on `port` (default a free one) with extra arguments; waits
-- until it answers. Returns the process handle (P.start) and "ip:port".
local function start_redis(extra, port)
  port = port or H.free_port()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. H.shquote(dir)))
  tmpdirs[#tmpdirs + 1] = dir
  local cmd = "redis-server --port " .. port .. " --bind 127.0.0.1 --save '' --appendonly no"
    .. " --dir " .. H.shquote(dir) .. " " .. (extra or "")
  local p = P.start(cmd, 250)
  local addr = "127.0.0.1:" .. port
  local up = H.wait_until(function()
    if not p:alive() then return true end
    local c = net.dial(addr, 1)
    if c then c:close() end
    return c ~= nil
  end, 10)
  if not up or not p:alive() then
    local out = p:output()
    p:stop()
    error("redis-server did not start:\n" .. out, 2)
  end
  return p, addr
end

teardown(function()
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf " .. H.shquote(d)) end
  P.cleanup()
end)

-- a server in this VM that runs `handler(conn)` for each conn; returns the
-- listener and its address
local function fake_server(handler)
  local ln = assert(net.listen("127.0.0.1:0"))
  go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      go(function()
        handler(c)
        c:close()
      end)
    end
  end)
  return ln, ln:addr()
end

local function connect(addr, opts)
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = T end
  return assert(redis.connect(addr, opts))
end

---------------------------------------------------------------------------
describe("goluarun.redis against redis-server", function()
  local srv, addr

  setup(function() srv, addr = start_redis() end)
  teardown(function() if srv then srv:stop() end end)
  after_each(function() assert.is_true(srv:alive(), "redis-server died:\n" .. srv:output()) end)

  it("maps every reply type", function()
    local r <close> = connect(addr)
    assert.are.equal("OK", r:call("SET", "t:s", "v")) -- simple string
    assert.are.equal("PONG", r:ping())
    assert.are.equal("v", r:get("t:s"))                 -- bulk string
    assert.are.equal(null, r:get("t:missing"))          -- nil bulk
    assert.are.equal("", (r:set("t:e", "")) and r:get("t:e")) -- empty bulk
    local bin = "a\r\nb\0c\255" .. H.payload(100000)
    assert.are.equal("OK", r:set("t:bin", bin))
    assert.are.equal(bin, r:get("t:bin"))
    assert.are.equal(math.maxinteger, r:call("INCRBY", "t:max", math.maxinteger)) -- integer
    assert.are.equal("integer", math.type(r:incr("t:n")))
    assert.are.equal(-5, r:decrby("t:neg", 5))
    assert.are.same({}, r:lrange("t:nolist", 0, -1))    -- empty array
    assert.are.equal(3, r:rpush("t:l", "a", 2, 3.5))
    assert.are.same({ "a", "2", "3.5" }, r:lrange("t:l", 0, -1)) -- array
    assert.are.equal(null, r:blpop("t:empty", 0.01))    -- nil array
    local scan = r:scan(0, "MATCH", "t:l", "COUNT", 1000) -- nested array
    assert.are.equal("0", scan[1])
    assert.are.same({ "t:l" }, scan[2])
    assert.are.same({ "v", null, "" }, r:mget("t:s", "t:missing", "t:e"))
    -- MULTI/EXEC: an error inside EXEC's array stays in place
    assert.are.equal("OK", r:multi())
    assert.are.equal("QUEUED", r:set("t:m", "x"))
    assert.are.equal("QUEUED", r:incr("t:m"))
    local ex = r:exec()
    assert.are.equal("OK", ex[1])
    assert.is_true(redis.iserror(ex[2]))
    assert.matches("^ERR value is not an integer", ex[2].err)
    -- a float comes back as redis writes it
    assert.are.equal("0.1", r:incrbyfloat("t:f", 0.1))
    assert.are.equal(1, r:zadd("t:z", 1 / 0, "top"))
    assert.are.equal("inf", r:zscore("t:z", "top"))
  end)

  it("gives error replies as nil, text and stays usable", function()
    local r <close> = connect(addr)
    local v, err = r:call("NOSUCHCMD", "x")
    assert.is_nil(v)
    assert.matches("^ERR unknown command 'NOSUCHCMD'", err)
    r:set("t:str", "x")
    v, err = r:lpush("t:str", "y")
    assert.is_nil(v)
    assert.matches("^WRONGTYPE ", err)
    v, err = r:incr("t:str")
    assert.is_nil(v)
    assert.are.equal("ERR value is not an integer or out of range", err)
    assert.are.equal("x", r:get("t:str"))
  end)

  it("sends arguments as bulk strings; misuse raises before anything is sent", function()
    local r <close> = connect(addr)
    assert.are.equal(5, r:incrby("t:arg", 5))
    assert.are.equal(15, r:incrby("t:arg", 10.0)) -- an integral float: "10"
    assert.are.equal("OK", r:set("t:fl", 0.1 + 0.2))
    assert.are.equal("0.30000000000000004", r:get("t:fl"))
    for _, bad in ipairs({ true, false, {}, print }) do
      assert.has_error(function() r:set("t:bad", bad) end)
    end
    assert.has_error(function() r:set("t:bad", nil, "x") end)
    assert.has_error(function() r:call(42) end)
    assert.are.equal(null, r:get("t:bad")) -- nothing went out
    assert.are.equal("PONG", r:ping())
  end)

  it("fixed resp.encode: numbers in a command array are bulk strings", function()
    local c = assert(net.dial(addr, T))
    c:settimeout(T)
    local rd = resp.reader(c)
    assert(c:write(resp.encode({ "INCRBY", "t:trap", 5 })))
    assert.are.equal(5, rd:read())
    assert(c:write(resp.encode({ "INCRBYFLOAT", "t:trapf", 0.5 })))
    assert.are.equal("0.5", rd:read())
    c:close()
  end)

  it("runs a pipeline of 10,000 commands, replies in order, errors in place", function()
    local r <close> = connect(addr)
    local n = H.scale(10000, 300)
    local replies = assert(r:pipeline(function(p)
      for i = 1, n do
        if i % 1000 == 500 then p:call("NOSUCH", i)
        elseif i % 2 == 1 then p:set("pipe:" .. i, i)
        else p:get("pipe:" .. (i - 1)) end
      end
    end))
    assert.are.equal(n, replies.n)
    for i = 1, n do
      local v = replies[i]
      if i % 1000 == 500 then
        assert.is_true(redis.iserror(v), "reply " .. i)
        assert.matches("^ERR unknown command", v.err)
      elseif i % 2 == 1 then
        assert.are.equal("OK", v, "reply " .. i)
      else
        assert.are.equal(tostring(i - 1), v, "reply " .. i)
      end
    end
    assert.are.same({ n = 0 }, r:pipeline(function() end))
    assert.are.equal("PONG", r:ping()) -- in step after the pipeline
    -- an error inside the function: nothing is sent, the client is fine
    assert.has_error(function() r:pipeline(function(p) p:incr("t:pe"); error("boom") end) end)
    assert.are.equal(null, r:get("t:pe"))
    assert.has_error(function() r:pipeline(function(p) p:subscribe("x") end) end)
  end)

  it("pipelines: every reply type in place, floats, misuse raises at the caller", function()
    local r <close> = connect(addr)
    local replies = assert(r:pipeline(function(p)
      p:del("t:pl", "t:pf")
      p:set("t:pf", 0.5):get("t:pf")                -- a float argument; p:CMD returns p
      p:rpush("t:pl", "a", 1, 2.25)
      p:lrange("t:pl", 0, -1)                        -- an array
      p:get("t:pnone")                               -- a nil bulk
      p:mget("t:pf", "t:pnone")                      -- a nil inside an array
      p:call("NOSUCH")                               -- an error, in place
      p:incrby("t:pi", math.mininteger)              -- an integer
    end))
    assert.are.equal(9, replies.n)
    assert.are.equal("OK", replies[2])
    assert.are.equal("0.5", replies[3])
    assert.are.same({ "a", "1", "2.25" }, replies[5])
    assert.are.equal(null, replies[6])
    assert.are.same({ "0.5", null }, replies[7])
    assert.is_true(redis.iserror(replies[8]))
    assert.are.equal(math.mininteger, replies[9])
    -- misuse raises where p:CMD is called, and nothing goes out
    local ok, err = pcall(r.pipeline, r, function(p) p:set("t:pbad", true) end)
    assert.is_false(ok)
    assert.matches("redis_client_spec.lua:%d+: redis: argument 2 of set is a boolean", err)
    ok, err = pcall(r.pipeline, r, function(p) p:call(42) end)
    assert.matches("redis_client_spec.lua:%d+: redis: command name must be a string", err)
    assert.are.equal(null, r:get("t:pbad"))
    -- a pipeline kept past its run
    local kept
    assert(r:pipeline(function(p) kept = p; p:ping() end))
    ok, err = pcall(function() kept:set("t:pkept", 1) end)
    assert.matches("redis_client_spec.lua:%d+: redis: pipeline used after it ran", err)
    -- a pipeline nested in another one's function: two buffers, two runs
    local inner
    local outer = assert(r:pipeline(function(p)
      p:set("t:pn", "outer")
      inner = assert(r:pipeline(function(q) q:set("t:pn", "inner"); q:get("t:pn") end))
      p:get("t:pn")
    end))
    assert.are.same({ "OK", "inner", n = 2 }, inner)
    assert.are.same({ "OK", "outer", n = 2 }, outer)
    -- after a function that raised, the next pipeline sends its own commands only
    assert.is_false(pcall(r.pipeline, r, function(p) p:set("t:pr", "lost"); error("boom") end))
    assert.are.same({ null, n = 1 }, r:pipeline(function(p) p:get("t:pr") end))
    assert.are.equal("PONG", r:ping())
  end)

  it("pipelines 1 MiB values (a write bigger than the socket buffers)", function()
    local r <close> = connect(addr)
    local big = H.payload(H.scale(1024 * 1024, 4096), 3)
    local n = H.scale(8, 2)
    local replies = assert(r:pipeline(function(p)
      for i = 1, n do p:set("big:" .. i, big); p:get("big:" .. i) end
    end))
    for i = 1, n do assert.are.equal(big, replies[2 * i], "value " .. i) end
  end)

  it("delivers pub/sub messages across goroutines, in order per publisher", function()
    local sub = connect(addr)
    assert.is_true(sub:subscribe("ps:a", "ps:b"))
    assert.is_true(sub:psubscribe("ps:news.*"))
    assert.has_error(function() sub:get("x") end) -- only pub/sub calls now
    -- nothing yet: a timeout leaves the client usable
    local kind, err = sub:next(0.05)
    assert.is_nil(kind)
    assert.are.equal("timeout", err)

    local publishers, per = 4, H.scale(100, 10)
    local done = go.chan(publishers)
    for k = 1, publishers do
      go(function()
        local pub <close> = connect(addr)
        local ch = ({ "ps:a", "ps:b", "ps:news.x", "ps:news.y" })[k]
        for i = 1, per do assert.are.equal(1, pub:publish(ch, k .. ":" .. i)) end
        done:send(true)
      end)
    end
    local last = {}
    for _ = 1, publishers * per do
      local kd, ch, payload, pattern = sub:next(T)
      assert.is_not_nil(kd, ch)
      local k, i = payload:match("^(%d+):(%d+)$")
      k, i = tonumber(k), tonumber(i)
      assert.are.equal((last[k] or 0) + 1, i, "publisher " .. k .. " out of order")
      last[k] = i
      if k <= 2 then
        assert.are.equal("message", kd)
        assert.is_nil(pattern)
      else
        assert.are.equal("pmessage", kd)
        assert.are.equal("ps:news.*", pattern)
      end
    end
    for _ = 1, publishers do assert.is_true(P.recv(done, 10, "a publisher")) end

    assert.is_true(sub:unsubscribe("ps:a"))
    local pub <close> = connect(addr)
    assert.are.equal(0, pub:publish("ps:a", "gone"))
    assert.are.equal(1, pub:publish("ps:b", "still"))
    local kd, ch, payload = sub:next(T)
    assert.are.same({ "message", "ps:b", "still" }, { kd, ch, payload })
    assert.is_true(sub:unsubscribe())
    assert.is_true(sub:punsubscribe())
    assert.are.equal(0, pub:publish("ps:news.z", "none"))
    assert.are.equal("PONG", sub:ping()) -- a normal client again
    sub:close()
    assert.are.same({ nil, "closed" }, { sub:ping() })
  end)

  it("a subscriber without a client timeout: next's timeout does not linger", function()
    local sub = assert(redis.connect(addr))
    assert.is_true(sub:subscribe("ps:quiet"))
    assert.are.same({ nil, "timeout" }, { sub:next(0.02) })
    assert.is_true(sub:unsubscribe("ps:quiet")) -- a read after next's deadline
    assert.are.equal("PONG", sub:ping())
    sub:release()
  end)

  it("serves BLPOP to 50 goroutines at once", function()
    local n = 50
    local got = go.chan(n)
    for _ = 1, n do
      go(function()
        local r <close> = connect(addr, { timeout = 20 })
        local v, err = r:blpop("bl:q", 15)
        got:send(v and v[2] or ("error " .. tostring(err)))
      end)
    end
    local admin <close> = connect(addr)
    assert.is_true(H.wait_until(function()
      return admin:info("clients"):match("blocked_clients:(%d+)") == tostring(n)
    end, 10), "the 50 BLPOPs did not all block")
    for i = 1, n do assert.are.equal(1, admin:rpush("bl:q", "item" .. i)) end
    local seen = {}
    for _ = 1, n do
      local v = P.recv(got, 10, "a BLPOP reply")
      assert.matches("^item%d+$", v)
      assert.is_nil(seen[v], "handed out twice: " .. v)
      seen[v] = true
    end
  end)

  it("SELECTs the db of opts.db, also on a conn coming back from the pool", function()
    local r3 = connect(addr, { db = 3 })
    assert.are.equal("OK", r3:set("db:k", "three"))
    r3:release()
    local r0 = connect(addr)
    assert.are.equal(null, r0:get("db:k"))
    assert.are.equal("OK", r0:select(3)) -- a SELECT by hand is followed too
    assert.are.equal("three", r0:get("db:k"))
    r0:release()
    local again = connect(addr, { db = 0 })
    assert.are.equal(null, again:get("db:k"))
    again:release()
    local bad, err = redis.connect(addr, { db = 99999 })
    assert.is_nil(bad)
    assert.matches("^ERR DB index is out of range", err)
    assert.has_error(function() redis.connect(addr, { db = "x" }) end)
    assert.has_error(function() redis.connect(addr, 5) end)
  end)

  it("fails cleanly on a conn the server closed (CLIENT KILL), fd freed", function()
    H.no_fd_leak(function()
      local victim = connect(addr)
      local id = victim:client("ID")
      assert.are.equal("integer", math.type(id))
      local admin = connect(addr)
      assert.are.equal(1, admin:client("KILL", "ID", id))
      admin:close() -- not pooled: the fd count is checked
      local v, err = victim:get("x")
      assert.is_nil(v)
      H.assert_err(err, { "eof", "connection reset", "broken pipe" })
      assert.are.same({ nil, "closed" }, { victim:get("x") })
      victim:release() -- a no-op on a closed client
    end)
  end)

  it("refuses to share a client between two goroutines at once", function()
    local r <close> = connect(addr)
    local started = go.chan()
    local g = go(function()
      started:send(true)
      return r:blpop("share:q", 0.3)
    end)
    started:recv()
    go.yield()
    local ok, err = pcall(r.get, r, "x")
    assert.is_false(ok)
    assert.matches("two goroutines", err)
    go.wait(g, T)
  end)
end)

---------------------------------------------------------------------------
-- opts.pool takes any object with dial and put: this stand-in keeps a list
-- and counts, so the client's side of pooling (what it puts back, and how
-- it sets up a conn it gets back) is checked whether or not the runtime has
-- net.pool yet
local function list_pool()
  local pool = { idle = {}, dials = 0, reuses = 0, puts = 0 }
  function pool.dial(self, a, opts)
    local c = table.remove(self.idle)
    if c then self.reuses = self.reuses + 1; return c end
    self.dials = self.dials + 1
    return net.dial(a, opts)
  end
  function pool.put(self, c)
    if c:fd() < 0 then -- a discarded conn comes back closed, as net.pool wants
      self.discards = (self.discards or 0) + 1
      return nil, "closed"
    end
    self.puts = self.puts + 1
    self.idle[#self.idle + 1] = c
    return true
  end
  function pool.close(self)
    for _, c in ipairs(self.idle) do c:close() end
    self.idle = {}
  end
  return pool
end

describe("goluarun.redis with a pool", function()
  local srv, addr

  setup(function() srv, addr = start_redis("--requirepass pw") end)
  teardown(function() if srv then srv:stop() end end)

  it("puts back only conns in a known state and sets up reused ones", function()
    H.no_fd_leak(function()
      local pool = list_pool()
      local r = connect(addr, { pool = pool, password = "pw", db = 2 })
      assert.are.equal("OK", r:set("pool:k", "two"))
      r:release()
      assert.are.same({ 1, 1 }, { pool.dials, pool.puts })
      -- same password, db 0: the conn is reused and SELECT 0 sent
      r = connect(addr, { pool = pool, password = "pw" })
      assert.are.equal(1, pool.reuses)
      assert.are.equal(null, r:get("pool:k"))
      assert.are.equal("OK", r:select(2)) -- followed: the next user asks for 2
      r:release()
      r = connect(addr, { pool = pool, password = "pw", db = 2 })
      assert.are.equal("two", r:get("pool:k"))
      r:release()
      -- no password: a conn authenticated by someone else is not handed on
      r = connect(addr, { pool = pool })
      assert.are.equal(2, pool.dials)
      local v, err = r:get("pool:k")
      assert.is_nil(v)
      assert.matches("^NOAUTH", err)
      r:close()
      assert.are.equal(0, #pool.idle)
      -- not put back: a MULTI left open, a subscription, a session change,
      -- a failed call, a closed client
      local function not_pooled(fn)
        local c = connect(addr, { pool = pool, password = "pw" })
        fn(c)
        local puts = pool.puts
        c:release()
        assert.are.equal(puts, pool.puts)
      end
      not_pooled(function(c) assert.are.equal("OK", c:multi()) end)
      not_pooled(function(c) assert.is_true(c:subscribe("pool:ch")) end)
      not_pooled(function(c) assert.are.equal("OK", c:client("SETNAME", "x")) end)
      not_pooled(function(c) c:close() end)
      -- a MULTI closed by EXEC, a subscription ended: back in the pool
      local c = connect(addr, { pool = pool, password = "pw" })
      c:multi(); c:incr("pool:n"); c:exec()
      assert.is_true(c:subscribe("pool:ch"))
      assert.is_true(c:unsubscribe())
      local puts = pool.puts
      c:release()
      assert.are.equal(puts + 1, pool.puts)
      pool:close()
    end)
  end)

  it("with net.pool: released conns are reused, discarded ones free their slot", function()
    H.no_fd_leak(function()
      local pool = net.pool({ max_conns = 1 })
      for i = 1, 3 do
        local r = connect(addr, { pool = pool, password = "pw" })
        assert.are.equal("OK", r:set("np:k", i))
        r:release()
      end
      assert.are.same({ idle = 1, active = 0, dials = 1, reuses = 2 }, pool:stats())
      -- a client left in MULTI is closed, not pooled, and its slot is free:
      -- with max_conns = 1 the next connect would wait for ever otherwise
      local r = connect(addr, { pool = pool, password = "pw" })
      r:multi()
      r:release()
      assert.are.same({ idle = 0, active = 0 }, { idle = pool:stats().idle, active = pool:stats().active })
      r = connect(addr, { pool = pool, password = "pw", timeout = 2 })
      assert.are.equal("3", r:get("np:k"))
      r:close()
      assert.are.equal(0, pool:stats().active)
      pool:close()
    end)
  end)
end)

---------------------------------------------------------------------------
describe("goluarun.redis AUTH", function()
  local srv, addr

  setup(function() srv, addr = start_redis("--requirepass s3cret") end)
  teardown(function() if srv then srv:stop() end end)

  it("authenticates with the right password, refuses a wrong one, frees the fd", function()
    H.no_fd_leak(function()
      local r = connect(addr, { password = "s3cret" })
      assert.are.equal("PONG", r:ping())
      r:release()
      local bad, err = redis.connect(addr, { password = "wrong", timeout = T })
      assert.is_nil(bad)
      assert.matches("^WRONGPASS", err)
      local anon = connect(addr)
      local v, aerr = anon:get("x")
      assert.is_nil(v)
      assert.matches("^NOAUTH", aerr)
      anon:close()
      local user = connect(addr, { username = "default", password = "s3cret" })
      assert.are.equal("PONG", user:ping())
      user:close()
    end)
  end)
end)

---------------------------------------------------------------------------
describe("goluarun.redis across a server restart", function()
  it("a held conn fails cleanly, released ones do not poison later connects", function()
    local port = H.free_port()
    local srv, addr = start_redis(nil, port)
    local held = connect(addr)
    assert.are.equal("OK", held:set("rs:k", "1"))
    for _ = 1, 4 do connect(addr):release() end -- idle (pooled when there is a pool)
    srv:stop()
    assert.is_true(H.wait_until(function() return not srv:alive() end, 5))
    srv = start_redis(nil, port)
    finally(function() srv:stop() end)
    -- the held conn: an error, never a wrong reply, then "closed"
    local v, err = held:get("rs:k")
    assert.is_nil(v)
    H.assert_err(err, { "eof", "connection reset", "broken pipe", "closed" })
    assert.are.same({ nil, "closed" }, { held:get("rs:k") })
    -- new clients work (the pool dropped the dead idle conns)
    for i = 1, 6 do
      local r = connect(addr)
      assert.are.equal(null, r:get("rs:k"), "client " .. i)
      assert.are.equal("OK", r:set("rs:k" .. i, i))
      r:release()
    end
  end)
end)

---------------------------------------------------------------------------
describe("goluarun.redis over TLS", function()
  it("talks to redis-server's TLS port with verification on", function()
    H.require_tool("openssl", "openssl")
    local pki = P.pki("ec")
    local port = H.free_port()
    local srv = start_redis("--tls-port " .. port .. " --tls-cert-file " .. pki.cert
      .. " --tls-key-file " .. pki.key .. " --tls-ca-cert-file " .. pki.ca
      .. " --tls-auth-clients no")
    finally(function() srv:stop() end)
    local r = assert(redis.connect("127.0.0.1:" .. port,
      { timeout = T, tls = { ca = pki.ca, servername = "localhost" } }))
    assert.are.equal("OK", r:set("tls:k", "over tls"))
    assert.are.equal("over tls", r:get("tls:k"))
    r:close()
    local bad, err = redis.connect("127.0.0.1:" .. port, { timeout = T, tls = true })
    assert.is_nil(bad)
    assert.matches("certificate verify failed", err)
  end)
end)

---------------------------------------------------------------------------
describe("goluarun.redis against scripts/redis_lite.lua", function()
  it("GET, SET, INCR, MGET, DEL and a pipeline", function()
    local p, addr = H.start_script("redis_lite.lua")
    finally(function() p:cleanup() end)
    local r <close> = connect(addr)
    assert.are.equal("OK", r:set("lite:k", "v"))
    assert.are.equal("v", r:get("lite:k"))
    assert.are.equal(null, r:get("lite:none"))
    assert.are.equal(1, r:incr("lite:n"))
    assert.are.equal(2, r:incr("lite:n"))
    assert.are.same({ "v", null, "2" }, r:mget("lite:k", "lite:none", "lite:n"))
    assert.are.equal(1, r:del("lite:k"))
    local v, err = r:call("NOSUCH")
    assert.is_nil(v)
    assert.matches("^ERR unknown command", err)
    local n = H.scale(2000, 100)
    local replies = assert(r:pipeline(function(pl)
      for i = 1, n do pl:incr("lite:c") end
    end))
    for i = 1, n do assert.are.equal(i, replies[i]) end
    assert.are.equal("", p:stderr())
  end)
end)

---------------------------------------------------------------------------
describe("goluarun.redis against broken servers", function()
  it("times out on a server that never answers, and frees the fd", function()
    H.no_fd_leak(function()
      local ln, addr = fake_server(function(c) c:read("a") end)
      local r = assert(redis.connect(addr, { timeout = 0.2 }))
      local el, v, err = H.timed(r.get, r, "k")
      assert.is_nil(v)
      assert.are.equal("timeout", err)
      assert.is_true(el >= 0.15 and el < 3, "took " .. el)
      assert.are.same({ nil, "closed" }, { r:get("k") }) -- out of step: closed
      -- a pipeline bigger than the one-write limit (written from a helper
      -- goroutine while the replies are awaited) times out the same way
      local rp = assert(redis.connect(addr, { timeout = H.scale(0.5, 5) }))
      local big = H.payload(H.scale(300 * 1024, 300 * 1024), 1)
      local pv, perr = rp:pipeline(function(p) p:set("a", big); p:get("a") end)
      assert.is_nil(pv)
      assert.are.equal("timeout", perr)
      assert.are.same({ nil, "closed" }, { rp:get("k") })
      -- AUTH on connect against the silent server times out too
      local r2, err2 = redis.connect(addr, { timeout = 0.2, password = "x" })
      assert.is_nil(r2)
      assert.are.equal("timeout", err2)
      ln:close()
    end)
  end)

  it("reports a malformed reply as a protocol error, no crash, fd freed", function()
    local replies = {
      ["$abc\r\n"] = "^protocol error: ",
      ["?what\r\n"] = "^protocol error: ",
      ["$3\r\nabcde\r\n"] = "^protocol error: ",
      ["*2\r\n:1\r\n"] = "^eof", -- closed mid-array
      [":12x\r\n"] = "^protocol error: ",
    }
    H.no_fd_leak(function()
      for wire, pattern in pairs(replies) do
        local ln, addr = fake_server(function(c)
          c:settimeout(T)
          assert(resp.reader(c):read()) -- the whole command
          c:write(wire)
          c:closewrite() -- FIN after the reply (closing with unread bytes would RST)
          c:read("a")
        end)
        local r = assert(redis.connect(addr, { timeout = T }))
        local v, err = r:get("k")
        assert.is_nil(v, wire)
        assert.matches(pattern, err, 1, false, wire)
        assert.are.same({ nil, "closed" }, { r:get("k") })
        ln:close()
      end
    end)
  end)

  it("gives connection refused for a port nobody listens on", function()
    local v, err = redis.connect("127.0.0.1:" .. H.free_port(), { timeout = T })
    assert.is_nil(v)
    H.assert_err(err, "connection refused")
  end)
end)
