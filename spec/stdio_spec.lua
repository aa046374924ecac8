-- stdio_spec: the standard library's blocking calls (io.read, io.lines,
-- file:read/lines, io.popen files, os.execute) park only the calling
-- goroutine (bindings/lstdio.c) and keep stock Lua 5.4's results.
-- Waits are counts of ticks of a 10 ms ticker goroutine, never durations.
local go = require "go"
local H = require "support.helpers"

local q = H.shquote

-- A child `goluarun -p 1` running `body` after starting a ticker goroutine
-- (global `ticks`), its stdin fed by the shell command `feeder` (or
-- /dev/null). Returns its output and exit code.
-- The ticker also writes its count to the file TICKS, so that a feeder can
-- wait (bounded, `gate N`) until the child has ticked N times while it is
-- reading: the test then holds however slow the machine is, and fails if
-- the read stopped the ticker (the gate gives up after 5 s).
local PRELUDE = [[
local go = require "go"
local tickf = os.getenv("TICKS")
ticks = 0
go(function()
  while true do
    go.sleep(0.01); ticks = ticks + 1
    local f = io.open(tickf, "w"); f:write(ticks, "\n"); f:close()
  end
end)
]]
local GATE = [[gate() { i=0; until [ "$(cat "$TICKS" 2>/dev/null || echo 0)" -ge "$1" ] 2>/dev/null; do
  i=$((i+1)); [ $i -ge 500 ] && return; sleep 0.01; done; }; ]]
local function child(feeder, body)
  local path, ticks = H.tmpname(".lua"), H.tmpname()
  H.write_file(path, PRELUDE .. body .. "\nio.stdout:flush()\nos.exit(0)\n")
  local run = q(H.bin()) .. " -p 1 " .. q(path)
  local cmd = feeder and (GATE .. feeder .. " | " .. run) or run
  local out, code = H.sh("env TICKS=" .. q(ticks) .. " sh -c " .. q(cmd))
  os.remove(path); os.remove(ticks)
  return out, code
end

-- in this VM: a ticker counting until stop() (returns the count)
local function ticker()
  local n, on = 0, true
  local g = go(function() while on do go.sleep(0.01); n = n + 1 end end)
  return function() on = false; go.wait(g, 5); return n end
end

describe("blocking stdio calls do not stop the VM", function()
  it("io.read() on a pipe that stays silent for 200 ms does not stop other goroutines of the VM", function()
    local out, code = child("(sleep 0.2; gate 5; echo hi)",
      [[local l = io.read(); print(l, ticks)]])
    assert.are.equal(0, code, out)
    local line, ticks = out:match("^(%S+)\t(%d+)\n$")
    assert.are.equal("hi", line, out)
    assert.is_true(tonumber(ticks) >= 5, out)
  end)

  it("io.lines() over stdin", function()
    local out, code = child("(sleep 0.2; gate 5; echo a; sleep 0.2; gate 10; echo b)", [[
      local t = {}
      for l in io.lines() do t[#t + 1] = l end
      print(table.concat(t, ","), ticks)]])
    assert.are.equal(0, code, out)
    local lines, ticks = out:match("^(%S+)\t(%d+)\n$")
    assert.are.equal("a,b", lines, out)
    assert.is_true(tonumber(ticks) >= 10, out)
  end)

  it("io.stdin:read('n', 'l') and a count over a slow pipe", function()
    local out, code = child("(printf '4'; sleep 0.2; gate 5; printf '2 rest\\nabcdef')", [[
      print(io.stdin:read("n", "l"))
      print(io.stdin:read(3), io.stdin:read("a"), ticks >= 5)]])
    assert.are.equal(0, code, out)
    assert.are.equal("42\t rest\nabc\tdef\ttrue\n", out)
  end)

  it("io.popen('sleep 0.2; echo x'):read('a')", function()
    local stop = ticker()
    local p = assert(io.popen("sleep 0.2; echo x"))
    local s = p:read("a")
    assert.are.same({ true, "exit", 0 }, { p:close() })
    assert.are.equal("x\n", s)
    assert.is_true(stop() >= 5)
  end)

  it("os.execute('sleep 0.2')", function()
    local stop = ticker()
    assert.are.same({ true, "exit", 0 }, { os.execute("sleep 0.2") })
    assert.is_true(stop() >= 5)
  end)

  it("closing a popen file waits for the child without stopping the VM", function()
    local stop = ticker()
    local p = assert(io.popen("sleep 0.2; exit 4", "w"))
    assert.are.same({ nil, "exit", 4 }, { p:close() })
    assert.is_true(stop() >= 5)
  end)

  it("io.popen is not held up by a goroutine waiting on a silent stdin", function()
    -- popen flushes every stream: it must not wait for the reader's lock.
    -- stdin stays silent until the child says popen returned (DONE), or
    -- until the feeder gives up (5 s) and leaves MARK: then popen waited
    local mark, done = H.tmpname(), H.tmpname()
    os.remove(mark); os.remove(done)
    local feeder = "(i=0; until [ -e " .. q(done) .. " ]; do i=$((i+1)); "
      .. "if [ $i -ge 500 ]; then touch " .. q(mark) .. "; break; fi; sleep 0.01; done; echo late)"
    local out, code = child(feeder, [[
      go(function() io.read("a") end)
      go.sleep(0.05)
      local p = io.popen("echo popen")
      local s = p:read("l"); p:close()
      io.open(]] .. string.format("%q", done) .. [[, "w"):close()
      print(s, io.open(]] .. string.format("%q", mark) .. [[) == nil)]])
    os.remove(mark); os.remove(done)
    assert.are.equal(0, code, out)
    assert.are.equal("popen\ttrue\n", out)
  end)
end)

-- Runs the same snippet under stock lua5.4 and under goluarun; `mode`
-- "file" reads regular files (stock code in place), "pipe" reads
-- io.popen("cat ...") (the worker), "sort" reads pipes from inside a
-- table.sort comparator (the job inline, bracketed).
local SNIPPET = [==[
local mode, P = arg[1], arg[2]
local function w(s) local f = assert(io.open(P, "wb")); f:write(s); f:close() end
local function open()
  if mode == "file" then return assert(io.open(P)) end
  -- 2>/dev/null: popen children inherit the runtime's ignored SIGPIPE
  -- (a known difference of io.popen itself), so cat would complain
  return assert(io.popen("cat " .. P .. " 2>/dev/null"))
end
local function run(fn)
  if mode ~= "sort" then return fn() end
  local r
  table.sort({ 2, 1 }, function(a, b) r = table.pack(fn()); return a < b end)
  return table.unpack(r, 1, r.n)
end
local function show(...)
  local t, o = table.pack(...), {}
  for i = 1, t.n do
    local v = t[i]
    o[#o + 1] = type(v) == "string" and string.format("%q", v) or (math.type(v) or "") .. tostring(v)
  end
  print(table.concat(o, " "))
end
local function try(fn) local ok, e = pcall(fn); if not ok then print("error", e) end end
local cases = {
  { "l\n", { "l", "l", "l" } }, { "a\nb\r\nc", { "l", "L", "l", "l" } },
  { "a\nb\nc\n", { "L", "L", "L", "L" } }, { "hello world", { 5, 0, 100, 0, 3 } },
  { "", { "a", "a", "l", "n", 0, 1 } },
  { "12 3.5 0x1F -7e2 .5 abc", { "n", "n", "n", "n", "n", "n", "l" } },
  { "  42xyz", { "n", "a" } }, { "0x", { "n", "a" } }, { "1e", { "n", "a" } },
  { "--1", { "n", "a" } }, { "1.2.3", { "n", "a" } }, { ("9"):rep(250), { "n", "a" } },
  { "5 6\nline", { "n", "n", "l", "l" } }, { "abc", { "*l", "*a" } },
  { "x\0y\nz", { "l", "a" } }, { "abc\ndef", { "a", "a", "l" } }, { "abc", { "n", "l" } },
  { "", { "n", "x" } }, { "xx", { "l", "x" } }, { "xx", { "l", 1.5 } },
  { "xx", { "l", {} } }, { "xx", { "l", "5" } }, { "1\n2\n3\n", {} },
}
for _, c in ipairs(cases) do
  w(c[1])
  local f = open()
  try(function() show(run(function() return f:read(table.unpack(c[2])) end)) end)
  f:close()
  io.input(open())
  try(function() show(run(function() return io.read(table.unpack(c[2])) end)) end)
  io.input():close()
  f = open()
  try(function()
    local it, n = f:lines(table.unpack(c[2])), 0
    while n < 10 do
      local r = table.pack(run(it))
      if r[1] == nil then break end
      show(table.unpack(r, 1, r.n)); n = n + 1
    end
  end)
  f:close()
end
w("1\n2\n3")
for l in io.lines(P) do io.write(l, ";") end
print()
for a, b in io.lines(P, 1, "l") do show(a, b) end
print(pcall(io.lines, "/nonexistent/x"))
print(select("#", io.lines(P)))
local it, _, _, f4 = io.lines(P)
it(); it(); it(); print(it(), io.type(f4))
print(pcall(it))
local f = open(); f:close()
print(pcall(f.read, f))
print(pcall(f.lines, f))
print(pcall(function() return io.read("x") end))
print(pcall(function() return io.lines(P, "x")() end))
print(pcall(function() return open():read(2 ^ 53) end))
local fw = io.open(P, "a")
show(fw:read("l")); show(fw:read("a")); show(fw:read(0))
fw:close()
print(pcall(io.read))
print(pcall(io.lines))
print(pcall(io.lines, {}))
print(pcall(f.read, 1))
]==]

describe("same results as stock Lua 5.4", function()
  H.require_tool("lua5.4", "lua5.4")
  for _, mode in ipairs({ "file", "pipe", "sort" }) do
    it("formats, errors and io.lines, " .. mode, function()
      local script, data = H.tmpname(".lua"), H.tmpname()
      H.write_file(script, SNIPPET)
      local args = " " .. q(script) .. " " .. mode .. " " .. q(data)
      local want = H.sh("lua5.4" .. args)
      -- read(2^53) must fail with "not enough memory", not abort an ASan build
      local got = H.sh("env ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}"
        .. "allocator_may_return_null=1\" " .. q(H.bin()) .. args)
      got = got:gsub("==%d+==WARNING: AddressSanitizer failed to allocate[^\n]*\n", "")
      os.remove(script); os.remove(data)
      assert.is_true(#want > 2000)
      assert.are.equal(want, got)
    end)
  end
end)

describe("errors", function()
  it("closed files and bad formats raise as stock", function()
    local p = H.write_file(H.tmpname(), "abc\n")
    local f = assert(io.open(p))
    assert.has_error(function() f:read("x") end, "bad argument #1 to 'read' (invalid format)")
    f:close()
    assert.has_error(function() f:read() end, "attempt to use a closed file")
    local c = assert(io.popen("echo y"))
    local ok, err = pcall(function() return c:read("l", "z") end)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'read' %(invalid format%)", err)
    c:close()
    assert.has_error(function() c:read() end, "attempt to use a closed file")
    assert.has_error(function() c:close() end, "attempt to use a closed file")
    local ok2, e2 = pcall(io.lines, "/nonexistent/stdio_spec")
    assert.is_false(ok2)
    assert.matches("cannot open file '/nonexistent/stdio_spec' %(No such file or directory%)", e2)
    os.remove(p)
  end)
end)

describe("os.execute", function()
  it("exit codes and signals", function()
    assert.are.same({ true, "exit", 0 }, { os.execute("true") })
    assert.are.same({ nil, "exit", 3 }, { os.execute("exit 3") })
    assert.are.same({ nil, "exit", 255 }, { os.execute("exit 255") })
    assert.are.same({ nil, "signal", 9 }, { os.execute("kill -KILL $$") })
    assert.are.same({ nil, "signal", 15 }, { os.execute("kill -TERM $$") })
    assert.is_true(os.execute())
    assert.has_error(function() os.execute({}) end)
  end)

  it("the child gets default SIGPIPE and an empty signal mask", function()
    -- the runtime ignores SIGPIPE and its workers block every signal
    assert.are.same({ nil, "signal", 13 }, { os.execute("kill -PIPE $$") })
    assert.are.same({ true, "exit", 0 }, { os.execute("yes | head -c 1 >/dev/null") })
  end)
end)

describe("io.popen close", function()
  it("returns the child's status", function()
    local p = assert(io.popen("exit 5"))
    assert.are.same({ nil, "exit", 5 }, { p:close() })
    p = assert(io.popen("kill -TERM $$"))
    assert.are.same({ nil, "signal", 15 }, { p:close() })
    p = assert(io.popen("true"))
    assert.are.same({ true, "exit", 0 }, { io.close(p) })
    do
      local c <close> = assert(io.popen("exit 2"))
    end
    assert.has_error(function() io.popen("true", "rw") end,
      "bad argument #2 to 'popen' (invalid mode)")
  end)
end)

describe("a file in use by another goroutine", function()
  it("raises instead of racing with the worker; usable again afterwards", function()
    H.no_fd_leak(function()
      local p = assert(io.popen("sleep 0.3; echo late"))
      local started = false
      local g = go(function() started = true; return p:read("l") end)
      assert.is_true(H.wait_until(function() return started end, 5))
      local busy = "file in use by another goroutine"
      for _, fn in ipairs({
        function() return p:read("l") end,
        function() return p:read("a") end,
        function() return p:close() end,
        function() return io.close(p) end,
        function() for _ in p:lines() do end end,
        function() local c <close> = p end,
      }) do
        local ok, err = pcall(fn)
        assert.is_false(ok)
        assert.matches(busy, err, 1, true)
      end
      assert.are.same({ true, "late" }, { go.wait(g, 5) })
      assert.are.equal(nil, p:read("l"))
      assert.are.same({ true, "exit", 0 }, { p:close() })
    end)
  end)

  it("io.read on a busy default input raises too", function()
    local p = assert(io.popen("sleep 0.3; echo z"))
    local old = io.input()
    io.input(p)
    local started = false
    local g = go(function() started = true; return io.read("a") end)
    assert.is_true(H.wait_until(function() return started end, 5))
    local ok, err = pcall(io.read)
    io.input(old)
    assert.is_false(ok)
    assert.matches("file in use by another goroutine", err, 1, true)
    assert.are.same({ true, "z\n" }, { go.wait(g, 5) })
    assert.is_true((p:close()))
  end)
end)

describe("resources", function()
  it("no fd leak across reads, lines, popen and execute", function()
    H.no_fd_leak(function()
      local path = H.write_file(H.tmpname(), "1\n2\n3\n")
      for _ = 1, 3 do
        local t = {}
        for l in io.lines(path) do t[#t + 1] = l end
        assert.are.same({ "1", "2", "3" }, t)
        local p = assert(io.popen("cat " .. q(path)))
        assert.are.same({ "1", "2\n", "3\n" }, { p:read("l", "L", "a") })
        assert.is_true((p:close()))
        assert.is_true((os.execute("true")))
        local g = assert(io.popen("true"))
        g = nil -- closed by __gc
      end
      os.remove(path)
    end)
  end)

  it("many goroutines reading pipes at once", function()
    local gs = {}
    for i = 1, 8 do
      gs[i] = go(function()
        local p = assert(io.popen("sleep 0.05; echo " .. i))
        local s = p:read("n")
        p:close()
        return s
      end)
    end
    for i = 1, 8 do assert.are.same({ true, i }, { go.wait(gs[i], 10) }) end
  end)
end)

describe("where the caller cannot yield", function()
  it("a read inside a table.sort comparator still works", function()
    local p = assert(io.popen("printf '1\\n2\\n3\\n4\\n5\\n6\\n'"))
    local t, got = { 3, 1, 2 }, {}
    table.sort(t, function(a, b) got[#got + 1] = p:read("l"); return a < b end)
    assert.are.same({ 1, 2, 3 }, t)
    assert.is_true(#got >= 2)
    assert.are.equal("1", got[1])
    p:close()
  end)

  it("os.execute and popen close inside a comparator", function()
    local r
    table.sort({ 2, 1 }, function(a, b)
      r = r or { os.execute("exit 7") }
      return a < b
    end)
    assert.are.same({ nil, "exit", 7 }, r)
    local p = assert(io.popen("exit 6"))
    r = nil
    table.sort({ 2, 1 }, function(a, b) r = r or { p:close() }; return a < b end)
    assert.are.same({ nil, "exit", 6 }, r)
  end)
end)

describe("children see default signals", function()
  it("an io.popen child gets the default SIGPIPE and SIGTERM, from any P", function()
    local r = H.run([[
      local function probe(sig)
        local f = assert(io.popen("sh -c 'kill -" .. sig .. " $$; echo alive'"))
        local out = f:read("a")
        return out, select(2, f:close())
      end
      local out, how = probe("PIPE")
      print("PIPE", out == "" and "default" or "ignored", how)
      local h = go.spawn_on(go.nprocs() - 1, "stdio_child:probe", "TERM")
      local ok, o2, how2 = go.wait(h, 10)
      print("TERM", ok and o2 == "" and "default" or "blocked", how2)
    ]], {}, { flags = { "-p", "2" }, timeout = 20 })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("PIPE\tdefault", r.stdout)
    assert.matches("TERM\tdefault", r.stdout)
  end)
end)
