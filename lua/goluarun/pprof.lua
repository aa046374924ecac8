-- pprof.lua: see inside a running goluarun process (Go's net/http/pprof).
--
--   local pprof = require "goluarun.pprof"
--   local srv = assert(pprof.serve("127.0.0.1:6060"))  -- the debug endpoint
--   local folded = pprof.profile(5)                     -- 5 s CPU profile
--   io.open("cpu.svg", "w"):write(pprof.flamegraph(folded))
--
-- pprof.profile(seconds [, opts]) -> folded | nil, err
--   samples what every P runs, opts.hz times a second (default 99, 1..1000)
--   for `seconds` (the caller parks meanwhile). Returns folded stacks, one
--   line "p0;outer (file:line);inner (file:line) COUNT" per distinct stack
--   (flamegraph.pl, speedscope and inferno read them). Frames: "name
--   (file:linedefined)" for Lua functions, "name [C]" for C functions,
--   "[C: OpenSSL]" for time inside OpenSSL; a P not running Lua counts as
--   "pN;[idle]" (blocked in netpoll), "pN;[blocking C call]" (a blocking
--   call under hand-off) or "pN;[scheduler]" (the runtime's own work).
--   err: "profile already running" (one profile at a time per process).
-- pprof.start([opts]) -> true | nil, err;  pprof.stop() -> folded | nil, err
--   the same, in two steps.
-- pprof.flamegraph(folded [, opts]) -> svg
--   a self-contained SVG flame graph: frame widths proportional to samples,
--   "<title>" with name, samples and percentage on every frame (shown on
--   hover), coloured by module (the frame's file). opts.title, opts.width.
-- pprof.goroutines() -> list of { id, p, state, reason, waiting (seconds,
--   to within 10 ms), fd, direction ("read"/"write", for "IO wait"),
--   traceback } of every P (each P lists its own, through go.spawn_on)
-- pprof.dump() -> the same as text: "goroutine N [reason, fd F read, 1.5 s,
--   P k]:" then the traceback, per goroutine
-- pprof.metrics() -> Prometheus text exposition (version 0.0.4) of go.stats()
-- pprof.serve(addr [, opts]) -> server | nil, err
--   listens on addr (use "127.0.0.1:port": it is a debug port) and serves,
--   with goluarun.http, on goroutines of the caller's P:
--     /debug/             index page linking the others
--     /debug/goroutines   pprof.dump()
--     /debug/stats        go.stats() as JSON
--     /debug/profile?seconds=N&format=folded|svg[&hz=H]  (default 30 s, svg)
--     /metrics            pprof.metrics()
--   server:addr(), server:close(), server:release() (close by itself once
--   its goroutines are the only ones left). GOLUA_DEBUG_ADDR=host:port
--   starts one before the main script and releases it when the script
--   returns, so it never keeps a finished program alive.
local go = require "go"
local net = require "net"
local core = require "goluarun.pprof.core"

local M = {}

-- ---------- profiling ----------

local function check_hz(opts, level)
  if opts ~= nil and type(opts) ~= "table" then
    error("pprof: opts must be a table", level + 1)
  end
  local hz = opts and opts.hz or 99
  if math.type(hz) ~= "integer" or hz < 1 or hz > 1000 then
    error("pprof: hz must be an integer in 1..1000", level + 1)
  end
  return hz
end

function M.start(opts)
  return core.start(check_hz(opts, 2))
end

function M.stop()
  return core.stop()
end

function M.profile(seconds, opts)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds <= 0 then
    error("pprof.profile: seconds must be a positive number", 2)
  end
  local ok, err = core.start(check_hz(opts, 2))
  if not ok then return nil, err end
  local slept, serr = pcall(go.sleep, seconds)
  local folded = core.stop()
  if not slept then error(serr, 0) end
  return folded
end

-- ---------- flame graph ----------

local function parse_folded(folded)
  local root = { name = "all", count = 0, kids = {} }
  for line in folded:gmatch("[^\n]+") do
    local stack, n = line:match("^(.-)%s+(%d+)%s*$")
    if stack then
      n = tonumber(n)
      root.count = root.count + n
      local node = root
      for frame in stack:gmatch("[^;]+") do
        local kid = node.kids[frame]
        if not kid then
          kid = { name = frame, count = 0, kids = {} }
          node.kids[frame] = kid
        end
        kid.count = kid.count + n
        node = kid
      end
    end
  end
  return root
end

local function depth_of(node)
  local d = 0
  for _, kid in pairs(node.kids) do
    local k = depth_of(kid)
    if k > d then d = k end
  end
  return d + 1
end

local function escape(s)
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function hash(s)
  local h = 5381
  for i = 1, #s do h = (h * 33 + s:byte(i)) % 2147483647 end
  return h
end

-- colour — by module (the frame's file): warm hues for Lua, blue for C,
-- grey for the runtime's pseudo-frames
local function colour(name)
  if name:sub(1, 1) == "[" or name == "all" or name:match("^p%d+$") then
    return "rgb(190,190,190)"
  end
  if name:match("%[C%]$") then return "rgb(110,160,220)" end
  local file = name:match("%(([^():]+)[:)]") or name
  local h = hash(file)
  return string.format("rgb(%d,%d,%d)", 205 + h % 50, 60 + (h // 50) % 150, 20 + (h // 7500) % 40)
end

local function frame_rect(out, node, x, y, w, total, fh)
  local pct = node.count * 100 / total
  out[#out + 1] = string.format(
    '<g><title>%s (%d samples, %.2f%%)</title><rect x="%.2f" y="%d" width="%.2f" ' ..
    'height="%d" fill="%s" rx="2" ry="2"/>',
    escape(node.name), node.count, pct, x, y, w, fh - 1, colour(node.name))
  local chars = math.floor((w - 6) / 7)
  if chars >= 3 then
    local label = #node.name <= chars and node.name or node.name:sub(1, chars - 2) .. ".."
    out[#out + 1] = string.format('<text x="%.2f" y="%d">%s</text>', x + 3, y + fh - 5,
                                  escape(label))
  end
  out[#out + 1] = "</g>"
end

local function draw(out, node, x, y, scale, total, fh)
  local w = node.count * scale
  if w < 0.1 then return end
  frame_rect(out, node, x, y, w, total, fh)
  local names = {}
  for name in pairs(node.kids) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local kid = node.kids[name]
    draw(out, kid, x, y - fh, scale, total, fh)
    x = x + kid.count * scale
  end
end

function M.flamegraph(folded, opts)
  if type(folded) ~= "string" then error("pprof.flamegraph: folded must be a string", 2) end
  opts = opts or {}
  local width, fh, pad = opts.width or 1200, 16, 10
  local root = parse_folded(folded)
  local depth = depth_of(root)
  local height = depth * fh + 3 * pad + 24
  local out = {
    '<?xml version="1.0" standalone="no"?>',
    string.format('<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="%d" ' ..
                  'height="%d" viewBox="0 0 %d %d">', width, height, width, height),
    '<style>text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }</style>',
    string.format('<rect x="0" y="0" width="%d" height="%d" fill="#f8f8f0"/>', width, height),
    string.format('<text x="%d" y="24" text-anchor="middle" style="font-size:17px">%s</text>',
                  width // 2, escape(opts.title or "Flame Graph")),
    string.format('<text x="%d" y="%d">%d samples</text>', pad, height - pad, root.count),
  }
  if root.count > 0 then
    draw(out, root, pad, height - 2 * pad - fh, (width - 2 * pad) / root.count, root.count, fh)
  end
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

-- ---------- goroutines ----------

-- _goroutines — this P's list (go.spawn_on target)
function M._goroutines()
  return core.goroutines()
end

function M.goroutines()
  local all = core.goroutines()
  local me = go.procid()
  for p = 0, go.nprocs() - 1 do
    if p ~= me then
      local ok, list = go.wait(go.spawn_on(p, "goluarun.pprof:_goroutines"))
      if ok then table.move(list, 1, #list, #all + 1, all) end
    end
  end
  table.sort(all, function(a, b) return a.id < b.id end)
  return all
end

local function describe(g)
  local parts = { g.reason or g.state }
  if g.fd then parts[#parts + 1] = string.format("fd %d %s", g.fd, g.direction) end
  if g.waiting and g.waiting >= 0.01 then
    parts[#parts + 1] = string.format("%.2f s", g.waiting)
  end
  parts[#parts + 1] = "P " .. g.p
  return table.concat(parts, ", ")
end

function M.dump()
  local out = {}
  for _, g in ipairs(M.goroutines()) do
    out[#out + 1] = string.format("goroutine %d [%s]:\n%s\n", g.id, describe(g), g.traceback)
  end
  return table.concat(out, "\n")
end

-- ---------- Prometheus ----------

local GLOBAL = { -- name, type, help, go.stats() field
  { "goluarun_goroutines", "gauge", "Live goroutines.", "goroutines" },
  { "goluarun_runnable", "gauge", "Runnable goroutines waiting in run queues.", "runnable" },
  { "goluarun_threads", "gauge", "OS threads (Ms), pool threads included.", "threads" },
  { "goluarun_procs", "gauge", "Ps (one Lua VM each).", "nprocs" },
  { "goluarun_idle_procs", "gauge", "Ps blocked in netpoll.", "idleprocs" },
  { "goluarun_netpoll_waiters", "gauge", "Goroutines parked on a file descriptor.",
    "netpoll_waiters" },
  { "goluarun_conns_open", "gauge", "Open stream connections.", "conns" },
  { "goluarun_conns_accepted_total", "counter", "Connections accepted.", "accepted" },
  { "goluarun_read_bytes_total", "counter", "Bytes read by stream connections (after TLS).",
    "bytes_read" },
  { "goluarun_written_bytes_total", "counter",
    "Bytes written by stream connections (before TLS).", "bytes_written" },
  { "goluarun_timers", "gauge", "Timers armed.", "timers" },
  { "goluarun_tls_handshakes_total", "counter", "TLS handshakes completed.", "tls_handshakes" },
  { "goluarun_tls_handshake_failures_total", "counter", "TLS handshakes failed.",
    "tls_handshake_failures" },
  { "goluarun_lua_memory_bytes", "gauge", "Bytes held by every VM's Lua allocator.", "memory" },
  { "goluarun_memory_limit_bytes", "gauge", "GOLUA_MEMLIMIT (0: none).", "memlimit" },
  { "goluarun_polldescs", "gauge", "pollDescs in use.", "polldescs" },
  { "goluarun_shared_channels", "gauge", "Live shared channels.", "sharedchans" },
  { "goluarun_spawned_total", "counter", "Goroutines started.", "spawned" },
  { "goluarun_steals_total", "counter", "Portable goroutines stolen.", "steals" },
  { "goluarun_preemptions_total", "counter", "Asynchronous preemptions.", "preemptions" },
  { "goluarun_handoffs_total", "counter", "Blocking calls whose P was handed off.", "handoffs" },
}

local PER_P = {
  { "goluarun_proc_goroutines", "gauge", "Live goroutines of the P.", "goroutines" },
  { "goluarun_proc_runqueue", "gauge", "Runnable goroutines queued on the P.", "runq" },
  { "goluarun_proc_netpoll_waiters", "gauge", "Goroutines of the P parked on a fd.",
    "netpoll_waiters" },
  { "goluarun_proc_timers", "gauge", "Timers armed on the P.", "timers" },
  { "goluarun_proc_lua_memory_bytes", "gauge", "Lua memory of the P's VM (lua_gc count).",
    "lua_memory" },
  { "goluarun_proc_spawned_total", "counter", "Goroutines started on the P.", "spawned" },
  { "goluarun_proc_steals_total", "counter", "Portable goroutines the P stole.", "steals" },
  { "goluarun_proc_preemptions_total", "counter", "Preemptions on the P.", "preemptions" },
  { "goluarun_proc_handoffs_total", "counter", "Hand-offs of the P.", "handoffs" },
  { "goluarun_proc_conns_accepted_total", "counter", "Connections the P accepted.", "accepted" },
  { "goluarun_proc_read_bytes_total", "counter", "Bytes read on the P.", "bytes_read" },
  { "goluarun_proc_written_bytes_total", "counter", "Bytes written on the P.", "bytes_written" },
  { "goluarun_proc_tls_handshakes_total", "counter", "TLS handshakes on the P.",
    "tls_handshakes" },
  { "goluarun_proc_tls_handshake_failures_total", "counter", "TLS handshake failures on the P.",
    "tls_handshake_failures" },
}

-- per-P figures that live in each VM's Lua state (the pools): asked of
-- every P through go.spawn_on, as the goroutine list is
local POOL = {
  { "goluarun_proc_pool_idle_conns", "gauge", "Idle conns in the VM's pools (net.pool).", "idle" },
  { "goluarun_proc_pool_active_conns", "gauge",
    "Conns the VM's pools handed out and did not get back.", "active" },
}

-- _pools — this P's pool totals (go.spawn_on target); zeros before any
-- pool was made there
function M._pools()
  local pool = package.loaded["goluarun.pool"]
  if not pool then return { idle = 0, active = 0 } end
  return pool.totals()
end

local function pools_per_p()
  local all, me = {}, go.procid()
  for p = 0, go.nprocs() - 1 do
    if p == me then all[p] = M._pools()
    else
      local ok, t = go.wait(go.spawn_on(p, "goluarun.pprof:_pools"))
      all[p] = ok and t or { idle = 0, active = 0 }
    end
  end
  return all
end

local function head(out, m)
  out[#out + 1] = "# HELP " .. m[1] .. " " .. m[3]
  out[#out + 1] = "# TYPE " .. m[1] .. " " .. m[2]
end

function M.metrics()
  local s = go.stats()
  s.nprocs = #s.procs
  local out = {}
  for _, m in ipairs(GLOBAL) do
    head(out, m)
    out[#out + 1] = string.format("%s %d", m[1], s[m[4]] or 0)
  end
  for _, m in ipairs(PER_P) do
    head(out, m)
    for _, p in ipairs(s.procs) do
      out[#out + 1] = string.format('%s{p="%d"} %d', m[1], p.id, p[m[4]] or 0)
    end
  end
  local pools = pools_per_p()
  for _, m in ipairs(POOL) do
    head(out, m)
    for p = 0, #s.procs - 1 do
      out[#out + 1] = string.format('%s{p="%d"} %d', m[1], p, pools[p][m[4]])
    end
  end
  return table.concat(out, "\n") .. "\n"
end

-- ---------- the endpoint ----------

local INDEX = [[
<!DOCTYPE html>
<html><head><title>goluarun debug</title></head><body>
<h1>goluarun debug</h1>
<ul>
<li><a href="/debug/goroutines">/debug/goroutines</a> every goroutine: state, wait reason, traceback</li>
<li><a href="/debug/stats">/debug/stats</a> go.stats() as JSON</li>
<li><a href="/debug/profile?seconds=10">/debug/profile?seconds=10</a> 10 s CPU profile, SVG flame graph
 (<a href="/debug/profile?seconds=10&amp;format=folded">folded stacks</a>)</li>
<li><a href="/metrics">/metrics</a> Prometheus metrics</li>
</ul>
</body></html>
]]

local function text(res, ctype, body)
  res:header("Content-Type", ctype)
  return res:send(body)
end

local function bad(res, msg)
  res:status(400)
  return text(res, "text/plain; charset=utf-8", msg .. "\n")
end

local function profile_route(req, res)
  local q = req.query
  local seconds = tonumber(q.seconds or "30")
  local hz = math.tointeger(tonumber(q.hz or "99"))
  local format = q.format or "svg"
  if not seconds or seconds <= 0 or seconds > 3600 then
    return bad(res, "seconds must be a number in (0, 3600]")
  end
  if not hz or hz < 1 or hz > 1000 then return bad(res, "hz must be an integer in 1..1000") end
  if format ~= "svg" and format ~= "folded" then
    return bad(res, "format must be svg or folded")
  end
  local folded, err = M.profile(seconds, { hz = hz })
  if not folded then
    res:status(409)
    return text(res, "text/plain; charset=utf-8", err .. "\n")
  end
  if format == "folded" then return text(res, "text/plain; charset=utf-8", folded) end
  return text(res, "image/svg+xml", M.flamegraph(folded, { title = "CPU profile" }))
end

local function router()
  local http = require "goluarun.http"
  local json = require "goluarun.json"
  local app = http.router()
  local function index(_, res) return text(res, "text/html; charset=utf-8", INDEX) end
  app:get("/debug", index)
  app:get("/debug/", index)
  app:get("/debug/goroutines", function(_, res)
    return text(res, "text/plain; charset=utf-8", M.dump())
  end)
  app:get("/debug/stats", function(_, res)
    return text(res, "application/json", json.encode(go.stats()) .. "\n")
  end)
  app:get("/debug/profile", profile_route)
  app:get("/metrics", function(_, res)
    return text(res, "text/plain; version=0.0.4; charset=utf-8", M.metrics())
  end)
  return app, http
end

local Server = {}
Server.__index = Server

function Server:addr() return self.ln:addr() end

function Server:close()
  if self.closed then return end
  self.closed = true
  self.ln:close()
end

-- release — the main script returned (GOLUA_DEBUG_ADDR): the server closes
-- itself once its own goroutines are the only ones left, so it never keeps
-- a finished program alive
function Server:release()
  self.released = true
end

-- only_mine — no goroutine but the server's (its acceptor, its handlers)
local function only_mine(srv)
  local s = go.stats()
  return s.goroutines <= srv.active + 1 and s.runnable == 0
end

local function accept_loop(srv, app, http)
  while true do
    local conn, err = srv.ln:accept(srv.released and 0.2 or nil)
    if conn then
      srv.active = srv.active + 1
      go(function()
        http.handle(conn, app, { idle_timeout = 30 })
        srv.active = srv.active - 1
      end)
    elseif err ~= "timeout" then
      break -- closed (or shut down)
    end
    if srv.released and only_mine(srv) then srv:close() end
  end
end

function M.serve(addr, opts)
  if type(addr) ~= "string" then error("pprof.serve: addr must be a string", 2) end
  local app, http = router()
  local ln, err = net.listen(addr, opts)
  if not ln then return nil, err end
  local srv = setmetatable({ ln = ln, closed = false, released = false, active = 0 }, Server)
  go(accept_loop, srv, app, http)
  return srv
end

return M
