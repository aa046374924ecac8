-- support.helpers: shared fixtures for the busted specs, which run inside
-- goluarun itself (so every blocking call here parks only the calling
-- goroutine, except os.execute / io.popen, which block the VM briefly).
--
--   local H = require "support.helpers"
--
-- Rules the specs follow: every wait is a bounded condition poll
-- (H.wait_until) or an operation with a timeout, never "sleep long
-- enough"; hostile tests run under H.no_fd_leak.
local go = require "go"
local net = require "net"

local H = {}

local have_tu, testutil = pcall(require, "testutil")

---------------------------------------------------------------------------
-- Environment
---------------------------------------------------------------------------

--- Path of the goluarun binary under test.
function H.bin()
  return os.getenv("GOLUARUN_BIN") or "build/goluarun"
end

--- True when the runtime runs in one-byte / EAGAIN mode (GOLUA_MOCKEAGAIN):
--- every socket read/write moves at most one byte and every other call
--- returns EAGAIN, so big sizes must be scaled down.
function H.mock()
  local v = os.getenv("GOLUA_MOCKEAGAIN")
  return v ~= nil and v ~= ""
end

--- `normal` normally, `mocked` under GOLUA_MOCKEAGAIN.
function H.scale(normal, mocked)
  if H.mock() then return mocked end
  return normal
end

--- The testutil C module (build/testutil.so); raises if it is missing.
function H.testutil()
  if not have_tu then
    error("testutil module not found (build/testutil.so on LUA_CPATH?): "
      .. tostring(testutil), 2)
  end
  return testutil
end

---------------------------------------------------------------------------
-- Waiting
---------------------------------------------------------------------------

--- Polls cond() every 5 ms until it is true (-> true) or `timeout`
--- seconds (default 5) have passed (-> false).
function H.wait_until(cond, timeout, interval)
  timeout = timeout or 5
  interval = interval or 0.005
  local deadline = go.now() + timeout
  while true do
    if cond() then return true end
    if go.now() >= deadline then return false end
    go.sleep(interval)
  end
end

--- Runs fn(...) and returns the elapsed seconds, then fn's results.
function H.timed(fn, ...)
  local t0 = go.now()
  local r = table.pack(fn(...))
  return go.now() - t0, table.unpack(r, 1, r.n)
end

--- Runs fn(...) in a goroutine and returns its results; raises if it did
--- not return within `timeout` seconds, or re-raises its error.
function H.must_return(timeout, fn, ...)
  local g = go(fn, ...)
  local r = table.pack(go.wait(g, timeout))
  if r[1] == nil then
    error(string.format("did not return within %.3f s", timeout), 2)
  elseif r[1] == false then
    error(r[2], 0)
  end
  return table.unpack(r, 2, r.n)
end

--- Runs fn(...) in a goroutine and checks that it is still running after
--- `duration` seconds; returns its handle (go.wait it later).
function H.must_not_return(duration, fn, ...)
  local g = go(fn, ...)
  local r = table.pack(go.wait(g, duration))
  if r[1] ~= nil then
    error("returned early with: " .. tostring(r[1]) .. ", " .. tostring(r[2])
      .. ", " .. tostring(r[3]), 2)
  end
  return g
end

--- Does `err` belong to the error class `class` ("timeout", "closed",
--- "connection reset", ...)? Classes may carry ": detail" after them.
function H.is_err(err, class)
  if type(err) ~= "string" then return false end
  return err:sub(1, #class) == class
end

--- Raises unless `err` is of class `class` (or of one of a list).
function H.assert_err(err, class, what)
  local classes = type(class) == "table" and class or { class }
  for _, c in ipairs(classes) do
    if H.is_err(err, c) then return err end
  end
  local got = type(err) == "string" and string.format("%q", err) or tostring(err)
  error(string.format('%sexpected error "%s", got %s', what and (what .. ": ") or "",
    table.concat(classes, '" or "'), got), 2)
end

---------------------------------------------------------------------------
-- File descriptors
---------------------------------------------------------------------------

--- Number of open fds of this process.
function H.nfds()
  return H.testutil().nfds()
end

--- Overwrites the dead stack slots above the caller's frame with nils, so
--- that a value a returned function left there is not kept alive by a
--- stale slot (call it right after the function that dropped the value).
function H.scrub_stack()
  return select("#", table.unpack({}, 1, 250))
end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

--- Counts fds, runs fn(...), collects garbage, waits (bounded) for the
--- count to come back, and raises if it grew. Returns fn's results.
function H.no_fd_leak(fn, ...)
  full_gc()
  local before = H.nfds()
  local r = table.pack(fn(...))
  local after
  local ok = H.wait_until(function()
    full_gc()
    after = H.nfds()
    return after <= before
  end, 5, 0.01)
  if not ok then
    error(string.format("fd leak: %d open before, %d after", before, after), 2)
  end
  return table.unpack(r, 1, r.n)
end

---------------------------------------------------------------------------
-- Sockets
---------------------------------------------------------------------------

--- A connected pair over a fresh listener: client, server, listener.
--- `addr` defaults to "127.0.0.1:0"; for "unix:/path" the same path is
--- dialled.
function H.pair(addr)
  addr = addr or "127.0.0.1:0"
  local ln, err = net.listen(addr)
  if not ln then error("listen " .. addr .. ": " .. tostring(err), 2) end
  local daddr = addr:match("^unix:") and addr or ln:addr()
  local c, derr = net.dial(daddr, 5)
  if not c then
    ln:close()
    error("dial " .. daddr .. ": " .. tostring(derr), 2)
  end
  local s, aerr = ln:accept(5)
  if not s then
    c:close(); ln:close()
    error("accept: " .. tostring(aerr), 2)
  end
  return c, s, ln
end

--- Makes the runtime create whatever it creates lazily (pollers, timers,
--- worker threads) so that fd counts taken afterwards are stable.
function H.warmup()
  local c, s, ln = H.pair()
  c:write("x")
  s:read(1)
  c:close(); s:close(); ln:close()
  go.sleep(0.01)
  local ch = go.after(0.001)
  ch:recv()
  full_gc()
end

--- A deterministic string of n bytes (pattern depends on `seed`).
function H.payload(n, seed)
  seed = seed or 0
  local unit = {}
  for i = 0, 250 do
    unit[#unit + 1] = string.char((i * 7 + seed * 13) % 251)
  end
  local u = table.concat(unit)
  local reps = n // #u + 1
  return (u:rep(reps)):sub(1, n)
end

--- Reads lines from conn until one matches `pattern` (returns it, and
--- the list of every line read), or fails (nil, err, lines).
function H.read_line_matching(conn, pattern, timeout)
  local lines = {}
  local deadline = go.now() + (timeout or 5)
  while true do
    local left = deadline - go.now()
    if left <= 0 then return nil, "timeout", lines end
    conn:setreaddeadline(deadline)
    local line, err = conn:read("l")
    conn:setreaddeadline(nil)
    if not line then return nil, err, lines end
    lines[#lines + 1] = line
    if line:match(pattern) then return line, lines end
  end
end

---------------------------------------------------------------------------
-- Files and subprocesses
---------------------------------------------------------------------------

local function q(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end
H.shquote = q

function H.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

function H.tmpname(suffix)
  local p = os.tmpname()
  if suffix then
    os.remove(p)
    p = p .. suffix
  end
  return p
end

local function is_file_arg(script, opts)
  if opts.file then return true end
  if opts.source then return false end
  if script:find("\n") then return false end
  local f = io.open(script, "r")
  if f then f:close(); return true end
  return false
end

-- Builds the goluarun command line (without redirections).
-- Returns cmd, list of temp files to remove.
local function build_cmd(script, args, opts)
  local tmp = {}
  local parts = {}
  if opts.env then
    parts[#parts + 1] = "env"
    for _, k in ipairs(opts.unsetenv or {}) do
      parts[#parts + 1] = "-u " .. q(k)
    end
    local keys = {}
    for k in pairs(opts.env) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      parts[#parts + 1] = q(k .. "=" .. tostring(opts.env[k]))
    end
  elseif opts.unsetenv then
    parts[#parts + 1] = "env"
    for _, k in ipairs(opts.unsetenv) do
      parts[#parts + 1] = "-u " .. q(k)
    end
  end
  parts[#parts + 1] = q(H.bin())
  for _, f in ipairs(opts.flags or {}) do
    parts[#parts + 1] = q(f)
  end
  if script == "-" then
    parts[#parts + 1] = "-"
  elseif script then
    if is_file_arg(script, opts) then
      parts[#parts + 1] = q(script)
    else
      local p = H.tmpname(".lua")
      H.write_file(p, script)
      tmp[#tmp + 1] = p
      parts[#parts + 1] = q(p)
    end
  end
  for _, a in ipairs(args or {}) do
    parts[#parts + 1] = q(a)
  end
  return table.concat(parts, " "), tmp
end

local function stdin_redirect(opts, tmp)
  if opts.stdin then
    local p = H.tmpname()
    H.write_file(p, opts.stdin)
    tmp[#tmp + 1] = p
    return " < " .. q(p)
  elseif opts.stdin_file then
    return " < " .. q(opts.stdin_file)
  end
  return " < /dev/null"
end

--- Runs goluarun as a subprocess and waits for it.
---   script: source text, a path to a script file, "-" (stdin), or nil
---           (no script argument: use args/flags alone)
---   args:   list of arguments after the script
---   opts:   flags (list before the script, e.g. {"-p", "4"}), env (table),
---           unsetenv (list), stdin (string), stdin_file, timeout (s,
---           default 20; the child is killed with SIGKILL then), file /
---           source (force how `script` is read)
--- Returns {status = exit status (128+signal if killed; 137 after the
--- timeout), stdout = ..., stderr = ..., cmd = ...}.
function H.run(script, args, opts)
  opts = opts or {}
  local cmd, tmp = build_cmd(script, args, opts)
  local out, err = H.tmpname(), H.tmpname()
  local full = "timeout -s KILL " .. tostring(opts.timeout or 20) .. " " .. cmd
    .. stdin_redirect(opts, tmp) .. " > " .. q(out) .. " 2> " .. q(err)
  local _, how, code = os.execute(full)
  local status = code
  if how == "signal" then status = 128 + code end
  local res = {
    status = status,
    stdout = H.read_file(out) or "",
    stderr = H.read_file(err) or "",
    cmd = full,
  }
  os.remove(out); os.remove(err)
  for _, p in ipairs(tmp) do os.remove(p) end
  return res
end

--- Formats a H.run result for assertion messages.
function H.describe_run(r)
  return string.format("status %s\n--- stdout:\n%s\n--- stderr:\n%s",
    tostring(r.status), r.stdout, r.stderr)
end

--- Is the process `pid` alive (and not a zombie)?
function H.alive(pid)
  local s = H.read_file("/proc/" .. tostring(pid) .. "/stat")
  if not s then return false end
  local state = s:match("%)%s+(%S)")
  return state ~= "Z" and state ~= "X"
end

local clk_tck
--- utime+stime of process `pid` in seconds (from /proc/PID/stat), or nil.
function H.proc_cputime(pid)
  if not clk_tck then
    local p = io.popen("getconf CLK_TCK 2>/dev/null")
    clk_tck = tonumber(p and p:read("l") or "") or 100
    if p then p:close() end
  end
  local s = H.read_file("/proc/" .. tostring(pid) .. "/stat")
  if not s then return nil end
  local rest = s:match("%)%s+(.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  -- fields after the comm: f[1] is field 3 (state); utime is field 14
  return (tonumber(f[12]) + tonumber(f[13])) / clk_tck
end

local Proc = {}
Proc.__index = Proc

--- Starts goluarun in the background (same arguments as H.run, plus
--- opts.timeout as a safety kill, default 60 s). Returns a handle:
---   p.pid (the goluarun process), p:stdout(), p:stderr(),
---   p:status() (nil while running), p:wait(timeout) -> status | nil,
---   p:kill([sig]), p:alive(), p:wait_output(pattern, timeout),
---   p:cleanup() (kills it if still running, removes temp files).
function H.spawn(script, args, opts)
  opts = opts or {}
  local cmd, tmp = build_cmd(script, args, opts)
  local p = setmetatable({
    out = H.tmpname(), err = H.tmpname(), pidf = H.tmpname(),
    statf = H.tmpname(), tmp = tmp,
  }, Proc)
  os.remove(p.pidf); os.remove(p.statf)
  local inner = "echo $$ > " .. q(p.pidf) .. "; exec " .. cmd
  local full = "( timeout -s KILL " .. tostring(opts.timeout or 60)
    .. " sh -c " .. q(inner) .. stdin_redirect(opts, tmp)
    .. " > " .. q(p.out) .. " 2> " .. q(p.err)
    .. "; echo $? > " .. q(p.statf) .. " ) > /dev/null 2>&1 &"
  os.execute(full)
  local ok = H.wait_until(function()
    local s = H.read_file(p.pidf)
    p.pid = s and tonumber(s:match("%d+"))
    return p.pid ~= nil
  end, 10)
  if not ok then error("could not start " .. cmd, 2) end
  return p
end

function Proc:stdout() return H.read_file(self.out) or "" end
function Proc:stderr() return H.read_file(self.err) or "" end

function Proc:status()
  local s = H.read_file(self.statf)
  return s and tonumber(s:match("%d+"))
end

function Proc:alive()
  return self:status() == nil and H.alive(self.pid)
end

function Proc:wait(timeout)
  local st
  H.wait_until(function()
    st = self:status()
    return st ~= nil
  end, timeout or 10)
  return st
end

function Proc:kill(sig)
  os.execute("kill -" .. (sig or "KILL") .. " " .. tostring(self.pid)
    .. " 2>/dev/null")
end

--- Waits until stdout matches `pattern`; returns the captures or nil.
function Proc:wait_output(pattern, timeout)
  local caps
  H.wait_until(function()
    caps = table.pack(self:stdout():match(pattern))
    return caps[1] ~= nil or not self:alive()
  end, timeout or 10, 0.01)
  if caps[1] == nil then
    caps = table.pack(self:stdout():match(pattern))
  end
  return table.unpack(caps, 1, caps.n)
end

function Proc:cleanup()
  if self.pid and self:status() == nil then
    self:kill("KILL")
    self:wait(5)
  end
  for _, f in ipairs({ self.out, self.err, self.pidf, self.statf }) do
    os.remove(f)
  end
  for _, f in ipairs(self.tmp) do os.remove(f) end
end

--- A path under /tmp for a unix socket (not created).
function H.sockpath(tag)
  local p = os.tmpname()
  os.remove(p)
  return p .. "-" .. (tag or "sock")
end

--- The repository root (the folder above spec/).
--- H.free_addr() -> "127.0.0.1:PORT" of a loopback port that was free a
--- moment ago (bound on :0, then closed), for a peer the test starts
function H.free_addr()
  local ln = assert(net.listen("127.0.0.1:0"))
  local addr = ln:addr()
  ln:close()
  return addr
end

--- H.free_port() -> the port number of H.free_addr()
function H.free_port()
  return tonumber(H.free_addr():match(":(%d+)$"))
end

function H.root()
  local here = debug.getinfo(1, "S").source:gsub("^@", "")
  return here:match("^(.*)/spec/support/[^/]*$") or "."
end

--- Fails the calling spec file with a clear message if a tool is missing
--- (no silent skip).
function H.require_tool(name, package)
  if not os.execute("command -v " .. name .. " >/dev/null 2>&1") then
    error(name .. " not found: install the Debian package " .. package
      .. " (apt-get install -y " .. package .. ")", 0)
  end
end

--- Runs a shell command bounded to 60 s (stdin from a file or /dev/null);
--- returns its output (stdout and stderr) and exit code.
function H.sh(cmd, stdin_file)
  local out = H.tmpname()
  local full = "timeout -s KILL 60 " .. cmd .. " < " .. H.shquote(stdin_file or "/dev/null")
    .. " > " .. H.shquote(out) .. " 2>&1"
  local _, _, code = os.execute(full)
  local s = H.read_file(out) or ""
  os.remove(out)
  return s, code
end

--- Starts scripts/NAME as a subprocess and waits for its "listening on
--- ADDR" line; returns the process and ADDR. opts: timeout, wait, flags
--- (goluarun's own, e.g. {"-p", "2"}).
function H.start_script(name, args, opts)
  opts = opts or {}
  local p = H.spawn(H.root() .. "/scripts/" .. name, args or { "127.0.0.1:0" },
    { file = true, timeout = opts.timeout or 280, flags = opts.flags })
  local addr = p:wait_output("listening on (%S+)", opts.wait or 10)
  if not addr then
    local msg = "no 'listening on' from " .. name .. ":\n" .. p:stdout() .. "\n" .. p:stderr()
    p:cleanup()
    error(msg, 2)
  end
  return p, addr
end

--- CPU time (seconds) a process has used, from /proc/PID/schedstat (ns).
function H.proc_cpu_ns(pid)
  local s = H.read_file("/proc/" .. tostring(pid) .. "/schedstat")
  return s and tonumber(s:match("^(%d+)")) / 1e9
end

--- Waits (bounded) until every thread of pid is asleep in the kernel, twice
--- in a row: the process has nothing to run. Returns boolean.
function H.wait_all_asleep(pid, timeout)
  local calm = 0
  return H.wait_until(function()
    local p = io.popen("cat /proc/" .. tostring(pid) .. "/task/*/stat 2>/dev/null")
    local all, n = p:read("a"), 0
    p:close()
    for state in all:gmatch("%) (%a) ") do
      if state ~= "S" then calm = 0; return false end
      n = n + 1
    end
    calm = n > 0 and calm + 1 or 0
    return calm >= 2
  end, timeout or 10)
end

return H
