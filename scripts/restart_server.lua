-- restart_server.lua: an HTTP server that restarts without dropping a
-- connection (zero-downtime restart, as nginx's binary upgrade or Go's
-- tableflip do it).
--
--   goluarun [flags] scripts/restart_server.lua [host:port]   (default 127.0.0.1:8080)
--
-- GET / answers "hello from PID\n". On SIGHUP the server starts its
-- successor (the same command line, so an upgraded binary or script is
-- picked up) with its listening socket (go.exec's files: the successor's
-- net.listen adopts it through LISTEN_FDS), waits for the successor's
-- "listening on" line, then drains: it stops accepting (the socket stays
-- open in the successor, so connections the kernel queued are the
-- successor's to accept), closes keep-alive connections that are idle
-- between requests, lets the requests in flight finish (answered with
-- "Connection: close") and exits 0. If the successor fails to start, the
-- old server keeps serving.
--
-- Prints "listening on ADDR" on stdout once it accepts (a successor prints
-- it on the pipe its predecessor reads); logs one line per event on stderr:
--   restart_server PID: listening on ADDR
--   restart_server PID: successor NEWPID is listening
--   restart_server PID: drained, exiting
--   restart_server PID: successor failed: ERR
--
-- Started by systemd socket activation (docs/goluarun@.socket) the first
-- instance adopts systemd's socket the same way.
local go = require "go"
local net = require "net"
local http = require "goluarun.http"

local ADDR = arg[1] or "127.0.0.1:8080"
local DRAIN_LIMIT = 10 -- seconds the requests in flight may take
local PID = tonumber(io.open("/proc/self/stat"):read("a"):match("^(%d+)"))

local function log(fmt, ...)
  io.stderr:write(string.format("restart_server %d: " .. fmt .. "\n", PID, ...))
  io.stderr:flush()
end

-- the command line that started us: interpreter, its flags, script, args
local function command_line()
  local first = 0
  while arg[first - 1] do first = first - 1 end
  local argv = {}
  for i = first, #arg do argv[#argv + 1] = arg[i] end
  return argv
end

-- adopts the socket of a predecessor (or systemd) if it passed one
local ln = assert(net.listen(ADDR))

-- conns: conn -> "new" (accepted, no request yet), "busy", "idle"
local conns, draining, active = {}, false, 0

local function handler(req, res)
  conns[req.conn] = "busy"
  res:header("Content-Type", "text/plain")
  if draining then res:header("Connection", "close") end
  res:send("hello from " .. PID .. "\n")
  conns[req.conn] = draining and "busy" or "idle"
end

local function serve(conn)
  http.handle(conn, handler, { idle_timeout = 30 })
  conns[conn] = nil
  active = active - 1
end

local function accept_loop()
  while true do
    local conn = ln:accept()
    if not conn then return end -- closed: the successor accepts now
    active = active + 1 -- counted now: the drain must not miss a conn whose goroutine has not run yet
    conns[conn] = "new"
    go(serve, conn)
  end
end

-- start_successor — our command line with our listener; true once it listens
local function start_successor()
  local p, err = go.exec(command_line(), { files = { ln }, stdin = "null", stderr = "inherit" })
  if not p then return false, err end
  local line, rerr = p.stdout:read("l", 10)
  p.stdout:close()
  if not (line and line:find("^listening on ")) then
    p:kill("SIGKILL")
    p:wait(5)
    return false, rerr or ("unexpected output: " .. tostring(line))
  end
  log("successor %d is listening", p.pid)
  return true
end

local function drain()
  draining = true
  ln:close()
  for conn, state in pairs(conns) do
    if state == "idle" then conn:close() end
  end
  local deadline = go.now() + DRAIN_LIMIT
  while active > 0 and go.now() < deadline do go.sleep(0.01) end
  log("drained, exiting")
  os.exit(active == 0 and 0 or 1)
end

go(accept_loop)
print("listening on " .. ln:addr())
io.stdout:flush()
log("listening on %s", ln:addr())

local hup = go.signal("SIGHUP")
while true do
  hup:recv()
  local ok, err = start_successor()
  if ok then drain() end
  log("successor failed: %s", err)
end
