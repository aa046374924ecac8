-- http_server.lua: HTTP/1.1 server on lua/goluarun/http.lua.
--   goluarun scripts/http_server.lua [port | host:port] [--tls CERT KEY]
-- (default 8080). Prints one line "listening on ADDR" once listening.
-- With --tls CERT KEY (PEM files) it serves HTTPS (http.serve's tls
-- option: ALPN "http/1.1").
--   GET  /       -> "Hello, World!\n" (text/plain)
--   GET  /stats  -> go.stats() as JSON
--   POST /echo   -> the request body (Content-Length or chunked, up to
--                   HTTP_MAX_BODY bytes, default 64 MiB)
local go = require "go"
local http = require "goluarun.http"

local function usage(msg)
  io.stderr:write("http_server: ", msg, "\n",
    "usage: goluarun scripts/http_server.lua [port | host:port] [--tls CERT KEY]\n")
  os.exit(2)
end

-- arguments: one address, and --tls CERT KEY anywhere
local spec, tls
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--tls" then
    if not arg[i + 1] or not arg[i + 2] then usage("--tls needs CERT and KEY") end
    tls = { cert = arg[i + 1], key = arg[i + 2] }
    i = i + 3
  elseif spec then
    usage("unexpected argument " .. a)
  else
    spec, i = a, i + 1
  end
end
spec = spec or "8080"
local addr = spec:find(":") and spec or (":" .. spec)
local max_body = tonumber(os.getenv("HTTP_MAX_BODY") or "") or 64 * 1024 * 1024

local HELLO = "Hello, World!\n"

local app = http.router()

app:get("/", function(_, res)
  res:send(HELLO)
end)

app:get("/stats", function(_, res)
  res:json(go.stats())
end)

app:post("/echo", function(req, res)
  local ct = req.headers["content-type"]
  if ct then res:header("Content-Type", ct) end
  res:send(req:body()) -- a body that cannot be read raises: 413/400/408
end)

local ln, err = http.serve(addr, app, {
  max_body = math.tointeger(max_body),
  tls = tls,
  on_error = function(e)
    -- body errors (413 etc.) are answered by http.lua; log the rest
    if not tostring(e):find("res:send: no body", 1, true) then
      io.stderr:write("http_server: ", tostring(e), "\n")
    end
  end,
})
if not ln then
  io.stderr:write("http_server: cannot listen on ", addr, ": ", tostring(err), "\n")
  os.exit(1)
end
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
