-- http_hello.lua: minimal HTTP/1.1 "Hello, World!" server with keep-alive,
-- served from every P (every core).
--   goluarun [-p N] scripts/http_hello.lua [port | host:port] [every | one]
--                    [--tls CERT KEY] [--timeout S] [--head-timeout S]
-- (default 8080, every). With --tls CERT KEY (PEM files) it serves HTTPS,
-- ALPN "http/1.1"; the handshake runs on each connection's first read. The file is both the script and the handler
-- module: net.serve(addr, "http_hello") makes every P load it as a module
-- and call its handle(conn). "every" accepts on every P (SO_REUSEPORT, the
-- default of net.serve); "one" accepts on one P and lets idle Ps steal the
-- connections. GET
-- /debug/procs tells how many connections each P has served.
-- Timeouts: each read and write --timeout S (default 60: idle keep-alive
-- connections and clients that stop reading are dropped), and a request
-- head must be complete --head-timeout S (default 10) after its request
-- line.
-- Prints "listening on ADDR" once listening. HTTP/1.1 connections stay
-- open unless the request says "Connection: close"; HTTP/1.0 ones close
-- unless it says "Connection: keep-alive". A malformed request gets a
-- 400 and the connection is closed.
local net = require "net"
local go = require "go"

local modname, modpath = ...
local AS_MODULE = modname == "http_hello" and type(modpath) == "string"

local BODY = "Hello, World!\n"
-- the timeouts, set by the main script for every P's copy of the module
local cfg = go.shared("http_hello.cfg")
local IDLE_TIMEOUT = 60 -- each read and write, so also the write timeout
local HEAD_TIMEOUT = 10 -- from a request line to the end of its head
local MAX_HEADERS = 100

local function respond(conn, status, body, close, head_only)
  return conn:write("HTTP/1.1 ", status, "\r\n",
    "Content-Type: text/plain\r\n",
    "Content-Length: ", #body, "\r\n",
    close and "Connection: close\r\n" or "",
    "\r\n", head_only and "" or body)
end

-- Reads one request head: method, target, minor version, headers (lower-
-- case names); or nil, reason ("eof"/"timeout"/... or "bad request").
local function read_request(conn)
  local line, err = conn:read("l")
  if not line then return nil, err end
  local method, target, major, minor =
    line:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method or major ~= "1" then return nil, "bad request" end
  -- the rest of the head comes within HEAD_TIMEOUT (a client dripping one
  -- header line a minute cannot hold the connection); cleared when done
  conn:setreaddeadline(go.now() + (cfg:get("head_timeout") or HEAD_TIMEOUT))
  local headers = {}
  for _ = 1, MAX_HEADERS + 1 do
    local h, herr = conn:read("l")
    if not h then
      if herr and herr:match("^line too long") then return nil, "bad request" end
      return nil, herr
    end
    if h == "" then
      conn:setreaddeadline(nil)
      return method, target, tonumber(minor), headers
    end
    local name, value = h:match("^([%w!#$%%&'*+%.^_`|~-]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, "bad request" end
    name = name:lower()
    if headers[name] then
      headers[name] = headers[name] .. ", " .. value
    else
      headers[name] = value
    end
  end
  return nil, "bad request"
end

local function has_token(value, token)
  if not value then return false end
  for t in value:gmatch("[^,%s]+") do
    if t:lower() == token then return true end
  end
  return false
end

local procs = go.shared("http_hello.procs")

-- /debug/procs: connections served per P, one "P<n> <count>" line each
local function procs_report()
  local lines = {}
  for p = 0, go.nprocs() - 1 do
    lines[#lines + 1] = ("P%d %d\n"):format(p, procs:get("P" .. p) or 0)
  end
  return table.concat(lines)
end

local function handle(conn)
  procs:incr("P" .. go.procid(), 1, 0)
  conn:settimeout(cfg:get("timeout") or IDLE_TIMEOUT)
  while true do
    local method, err_or_target, minor, headers = read_request(conn)
    if not method then
      if err_or_target == "bad request" then
        respond(conn, "400 Bad Request", "Bad Request\n", true)
      end
      break
    end
    -- discard a request body, if any
    local len = headers["content-length"]
    if len then
      local n = tonumber(len)
      if not n or n < 0 or n ~= math.floor(n) then
        respond(conn, "400 Bad Request", "Bad Request\n", true)
        break
      end
      if n > 0 and not conn:read(math.tointeger(n)) then break end
    elseif headers["transfer-encoding"] then
      respond(conn, "400 Bad Request", "Bad Request\n", true)
      break
    end
    local close
    if minor == 0 then
      close = not has_token(headers["connection"], "keep-alive")
    else
      close = has_token(headers["connection"], "close")
    end
    local body = err_or_target == "/debug/procs" and procs_report() or BODY
    local ok = respond(conn, "200 OK", body, close, method == "HEAD")
    if not ok or close then break end
  end
  conn:close()
end

if AS_MODULE then return { handle = handle } end

local function usage(msg)
  io.stderr:write("http_hello: ", msg, "\n", "usage: goluarun [-p N] ",
    "scripts/http_hello.lua [port | host:port] [every | one] [--tls CERT KEY]",
    " [--timeout S] [--head-timeout S]\n")
  os.exit(2)
end

-- arguments: address, mode, and --tls CERT KEY anywhere
local pos, tls = {}, nil
local i = 1
while arg and arg[i] do
  if arg[i] == "--tls" then
    if not arg[i + 1] or not arg[i + 2] then usage("--tls needs CERT and KEY") end
    tls = { cert = arg[i + 1], key = arg[i + 2], alpn = { "http/1.1" } }
    i = i + 3
  elseif arg[i] == "--timeout" or arg[i] == "--head-timeout" then
    local s = tonumber(arg[i + 1])
    if not s or s <= 0 then usage(arg[i] .. " needs a number of seconds") end
    cfg:set((arg[i]:sub(3):gsub("-", "_")), s)
    i = i + 2
  else
    pos[#pos + 1] = arg[i]
    i = i + 1
  end
end
if #pos > 2 then usage("unexpected argument " .. pos[3]) end
local spec = pos[1] or "8080"
local addr = spec:find(":") and spec or (":" .. spec)
local mode = pos[2] or "every"
if mode ~= "one" and mode ~= "every" then usage("mode must be 'every' or 'one'") end
-- this file's directory first on the path, so every P finds "http_hello"
local dir = (arg and arg[0] or ""):match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local ln, err = net.serve(addr, "http_hello", { accept = mode, tls = tls })
if not ln then
  io.stderr:write("http_hello: cannot listen on ", addr, ": ", tostring(err), "\n")
  os.exit(1)
end
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
